//! The indexed pick against the full scan, on random clusters (seeded, so a failure repeats).
use super::*;
use crate::scheduler::node::ContainerView;
use crate::scheduler::testing::req_with;
use crate::scheduler::Scheduler;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const GIB: i64 = 1 << 30;

fn random_node(rng: &mut StdRng, name: &str) -> NodeView {
    let total_cpus = [1, 2, 4, 8][rng.random_range(0..4)];
    let total_memory = [GIB, 2 * GIB, 4 * GIB][rng.random_range(0..3)];
    let health = [100, 100, 100, 50, 0][rng.random_range(0..5)];
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("zone".to_string(), ["eu", "us", "asia"][rng.random_range(0..3)].to_string());
    if rng.random_bool(0.5) {
        labels.insert("disk".to_string(), ["ssd", "hdd"][rng.random_range(0..2)].to_string());
    }
    if rng.random_bool(0.2) {
        labels.insert("containerslots".to_string(), rng.random_range(0..4).to_string());
    }
    let containers =
        (0..rng.random_range(0..6)).map(|i| Arc::new(ContainerView { id: format!("{name}-c{i}").into(), ..Default::default() })).collect();
    NodeView {
        id: format!("id-{name}"),
        name: name.to_string(),
        addr: format!("{name}:2375"),
        ip: "127.0.0.1".into(),
        labels,
        containers,
        total_cpus,
        total_memory,
        // Sometimes over what the node has (a node whose capacity shrank).
        used_cpus: rng.random_range(0..=total_cpus + 1),
        used_memory: rng.random_range(0..=total_memory / (256 << 20) + 1) * (256 << 20),
        health,
        healthy: health > 0 || rng.random_bool(0.5),
        ..Default::default()
    }
}

fn random_request(rng: &mut StdRng, names: &[String]) -> Request {
    let pick_name = |rng: &mut StdRng| names.get(rng.random_range(0..names.len().max(1))).cloned().unwrap_or_else(|| "none".into());
    let mut env = vec![];
    let options = ["constraint:zone==eu", "constraint:zone==~us", "constraint:disk!=ssd", "constraint:zone==e*", "constraint:disk==ssd"];
    for o in options {
        if rng.random_bool(0.15) {
            env.push(o.to_string());
        }
    }
    if rng.random_bool(0.15) {
        env.push(format!("constraint:node=={}", pick_name(rng)));
    }
    if rng.random_bool(0.1) {
        env.push(format!("constraint:node==~{}", pick_name(rng)));
    }
    let env: Vec<&str> = env.iter().map(String::as_str).collect();
    let mut req = req_with(&env);
    req.cpus = [0, 0, 1, 2][rng.random_range(0..4)];
    req.memory = [0, 0, 256 << 20, GIB][rng.random_range(0..4)];
    req
}

fn outcome(r: Result<&NodeView, crate::scheduler::SchedError>) -> Result<String, String> {
    r.map(|n| n.name.clone()).map_err(|e| e.to_string())
}

/// How many requests were checked, and how many of them the index answered alone.
fn compare(strategy: &str, seed: u64) -> (usize, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let sched = Scheduler::new(&[], strategy).unwrap();
    let (mut checked, mut by_index) = (0, 0);
    for _ in 0..150 {
        let mut idx = NodeIndex::default();
        let mut names: Vec<String> = vec![];
        for _ in 0..rng.random_range(0..60) {
            let name = format!("n{}", rng.random_range(0..1000));
            if !names.contains(&name) {
                idx.apply(&format!("{name}:2375"), Some(Arc::new(random_node(&mut rng, &name))), sched.strategy());
                names.push(name);
            }
        }
        for _ in 0..25 {
            // Some nodes change (containers placed, health, labels), join or leave.
            for _ in 0..rng.random_range(0..4) {
                let name = if names.is_empty() || rng.random_bool(0.2) {
                    format!("n{}", rng.random_range(0..1000))
                } else {
                    names[rng.random_range(0..names.len())].clone()
                };
                if rng.random_bool(0.1) {
                    idx.apply(&format!("{name}:2375"), None, sched.strategy());
                    names.retain(|n| *n != name);
                } else {
                    idx.apply(&format!("{name}:2375"), Some(Arc::new(random_node(&mut rng, &name))), sched.strategy());
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            let req = random_request(&mut rng, &names);
            let want = outcome(sched.pick(&req, idx.nodes()));
            let got = outcome(sched.pick_indexed(&req, &mut idx));
            by_index += usize::from(sched.indexed(&req, &idx).is_some());
            assert_eq!(got, want, "{strategy}, seed {seed}: request {req:?}");
            checked += 1;
        }
    }
    (checked, by_index)
}

#[test]
fn spread_matches_the_full_scan() {
    let (checked, by_index) = compare("spread", 18);
    assert_eq!(checked, 3750);
    assert!(by_index > checked / 2, "the index answered {by_index} of {checked}");
}

#[test]
fn binpack_matches_the_full_scan() {
    let (checked, by_index) = compare("binpack", 1803);
    assert_eq!(checked, 3750);
    assert!(by_index > checked / 2, "the index answered {by_index} of {checked}");
}

#[test]
fn random_picks_only_accepted_nodes_and_all_of_them() {
    let mut rng = StdRng::seed_from_u64(7);
    let sched = Scheduler::new(&[], "random").unwrap();
    let mut idx = NodeIndex::default();
    for i in 0..40 {
        let name = format!("n{i}");
        idx.apply(&format!("{name}:2375"), Some(Arc::new(random_node(&mut rng, &name))), sched.strategy());
    }
    for env in [&[][..], &["constraint:zone==eu"][..], &["constraint:zone==~asia"][..]] {
        let req = req_with(env);
        let accepted: BTreeSet<String> = sched.select(&req, idx.nodes()).unwrap().into_iter().map(|n| n.name.clone()).collect();
        let mut seen = BTreeSet::new();
        for _ in 0..2000 {
            let n = sched.pick_indexed(&req, &mut idx).unwrap().name.clone();
            assert!(accepted.contains(&n), "{n} is not accepted for {env:?}");
            seen.insert(n);
        }
        assert_eq!(seen, accepted, "every accepted node is drawn for {env:?}");
    }
}

#[test]
fn a_shape_is_ranked_the_second_time_and_kept_current() {
    let sched = Scheduler::new(&[], "spread").unwrap();
    let mut idx = NodeIndex::default();
    let mut rng = StdRng::seed_from_u64(3);
    for i in 0..10 {
        let name = format!("n{i}");
        idx.apply(&format!("{name}:2375"), Some(Arc::new(random_node(&mut rng, &name))), sched.strategy());
    }
    let req = Request { memory: 256 << 20, ..Default::default() };
    idx.prepare(&req, sched.strategy());
    assert!(idx.ranked(Shape::of(&req)).is_none());
    idx.prepare(&req, sched.strategy());
    let ranked: Vec<String> = idx.ranked(Shape::of(&req)).unwrap().map(|n| n.name.clone()).collect();
    let full: Vec<String> = sched
        .strategy()
        .rank(&req, idx.nodes().iter().map(|n| n.as_ref()).collect())
        .unwrap()
        .into_iter()
        .map(|n| n.name.clone())
        .collect();
    assert_eq!(ranked, full, "the rank is the strategy's order");
    idx.apply("n3:2375", None, sched.strategy());
    assert!(idx.ranked(Shape::of(&req)).unwrap().all(|n| n.name != "n3"));
    assert!(idx.candidates(&req_with(&["constraint:node==n3"])).unwrap().next().is_none());
    assert_eq!(idx.candidates(&req_with(&["constraint:node==id-n4"])).unwrap().map(|n| n.name.clone()).collect::<Vec<_>>(), ["n4"]);
}
