//! The manager end to end against simulated nodes (no root, no processes): the router is driven
//! in memory, the nodes are real HTTP servers on loopback ports.
use super::*;
use crate::cluster::{Cluster, ClusterOpts};
use axum::body::Body;
use axum::Router;
use std::time::Duration;
use tower::ServiceExt;

const GIB: i64 = 1 << 30;

struct Setup {
    cluster: Cluster,
    app: Router,
    nodes: Vec<Arc<SimNode>>,
    _stop: tokio_util::sync::DropGuard,
}

async fn setup(nodes: Vec<Arc<SimNode>>, strategy: &str) -> Setup {
    let stop = CancellationToken::new();
    let addrs = serve(nodes.clone(), stop.clone()).await.unwrap();
    let opts = ClusterOpts {
        strategy: strategy.into(),
        refresh_min: Duration::from_secs(1),
        refresh_max: Duration::from_secs(2),
        ..Default::default()
    };
    let cluster = Cluster::new(opts, None, stop.clone()).unwrap();
    let entries: Vec<discovery::Entry> = addrs.iter().map(|a| discovery::Entry::parse(a).unwrap()).collect();
    cluster.sync(&entries);
    for _ in 0..200 {
        if cluster.views().len() == nodes.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cluster.views().len(), nodes.len(), "nodes validated");
    let app = crate::api::router(cluster.clone());
    Setup { cluster, app, nodes, _stop: stop.drop_guard() }
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
    let mut b = axum::http::Request::builder().method(method).uri(uri);
    if body.is_some() {
        b = b.header("Content-Type", "application/json");
    }
    let req = b.body(Body::from(body.map(|v| v.to_string()).unwrap_or_default())).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes))))
}

async fn create(app: &Router, name: &str, body: Value) -> (u16, Value) {
    let uri = if name.is_empty() { "/v1.41/containers/create".to_string() } else { format!("/v1.41/containers/create?name={name}") };
    call(app, "POST", &uri, Some(body)).await
}

async fn node_of(app: &Router, name: &str) -> String {
    let (s, v) = call(app, "GET", &format!("/v1.41/containers/{name}/json"), None).await;
    assert_eq!(s, 200, "{v}");
    v["Node"]["Name"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn placement_names_info_and_events() {
    let s = setup(
        vec![
            SimNode::new("n1", 2, GIB, &["zone=a"]),
            SimNode::new("n2", 2, GIB, &["zone=b"]),
            SimNode::new("n3", 2, GIB, &["zone=b", "containerslots=1"]),
        ],
        "spread",
    )
    .await;
    let mut events = s.cluster.hub.subscribe();
    let (st, v) = create(&s.app, "web", json!({"Image": "busybox", "Env": ["constraint:node==n2"]})).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(node_of(&s.app, "web").await, "n2");
    assert_eq!(node_of(&s.app, "n2/web").await, "n2", "node/name form");
    let (st, _) = create(&s.app, "buddy", json!({"Image": "busybox", "Env": ["affinity:container==web"]})).await;
    assert_eq!(st, 201);
    assert_eq!(node_of(&s.app, "buddy").await, "n2");
    let (st, v) = create(&s.app, "web", json!({"Image": "busybox"})).await;
    assert_eq!(st, 409, "{v}");

    // containerslots=1 on n3: one container, then n3 is full.
    let (st, _) = create(&s.app, "only", json!({"Image": "busybox", "Env": ["constraint:node==n3"]})).await;
    assert_eq!(st, 201);
    let (st, v) = create(&s.app, "", json!({"Image": "busybox", "Env": ["constraint:node==n3"]})).await;
    assert_eq!(st, 500);
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("[available container slots]") && msg.contains("n3: containerslots: all 1 container slots are used"), "{msg}");

    // Impossible: each node and why.
    let (_, v) = create(&s.app, "", json!({"Image": "busybox", "Labels": {"com.docker.swarm.constraints": "[\"zone==c\"]"}})).await;
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("n1: constraint: constraint zone==c: label zone=a") && msg.contains("n2: constraint"), "{msg}");

    let (_, ps) = call(&s.app, "GET", "/v1.41/containers/json?all=1", None).await;
    let mut names: Vec<&str> = ps.as_array().unwrap().iter().map(|r| r["Names"][0].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, vec!["/n2/buddy", "/n2/web", "/n3/only"]);
    let (_, ps) = call(&s.app, "GET", "/containers/json?all=1&filters=%7B%22node%22%3A%5B%22n3%22%5D%7D", None).await;
    assert_eq!(ps.as_array().unwrap().len(), 1);

    let (_, info) = call(&s.app, "GET", "/info", None).await;
    let status: Vec<(String, String)> =
        info["SystemStatus"].as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into())).collect();
    assert!(status.contains(&("Nodes".into(), "3".into())), "{status:?}");
    assert!(status.contains(&("  └ Containers".into(), "2 (0 Running, 0 Paused, 2 Stopped)".into())), "{status:?}");
    assert_eq!(info["Containers"], 3);
    assert_eq!(info["NCPU"], 6);

    // Node events arrive merged, with the node attached.
    let ev = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let ev = events.recv().await.unwrap();
            if ev["Type"] == "container" {
                return ev;
            }
        }
    })
    .await
    .expect("a container event");
    assert!(ev["node"]["Name"].as_str().is_some_and(|n| n.starts_with('n')), "{ev}");

    let (st, _) = call(&s.app, "DELETE", "/v1.41/containers/buddy", None).await;
    assert_eq!(st, 204);
    let (st, _) = call(&s.app, "GET", "/v1.41/containers/buddy/json", None).await;
    assert_eq!(st, 404);
    assert_eq!(s.nodes[1].container_count(), 1);
    let (st, _) = call(&s.app, "GET", "/v1.41/services", None).await;
    assert_eq!(st, 404);
    let (st, v) = call(&s.app, "GET", "/v1.12/info", None).await;
    assert_eq!(st, 400, "{v}");
}

#[tokio::test]
async fn concurrent_creates_never_overbook() {
    let s = setup((0..3).map(|i| SimNode::new(&format!("c{i}"), 4, GIB, &[])).collect(), "spread").await;
    // 1 GiB + 5 % per node holds four 256 MiB containers: twelve in all, whatever the order.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = s.app.clone();
            tokio::spawn(async move { create(&app, "", json!({"Image": "busybox", "HostConfig": {"Memory": 256 << 20}})).await.0 })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 201 {
            ok += 1;
        }
    }
    assert_eq!(ok, 12);
    assert!(s.nodes.iter().all(|n| n.container_count() == 4), "spread evenly");
    let (_, v) = create(&s.app, "", json!({"Image": "busybox", "HostConfig": {"Memory": 256 << 20}})).await;
    assert!(v["message"].as_str().unwrap().contains("no resources available to schedule container"), "{v}");
    // Swarm's CpuShares are CPUs: 2 CPUs become 2*1024/4 real shares on a 4-CPU node.
    let (st, v) = create(&s.app, "cpu", json!({"Image": "busybox", "HostConfig": {"CpuShares": 2}})).await;
    assert_eq!(st, 201, "{v}");
    let (_, v) = call(&s.app, "GET", "/containers/cpu/json", None).await;
    assert_eq!(v["HostConfig"]["CpuShares"], 512);
}

#[tokio::test]
async fn a_create_answered_without_an_id_fails_and_frees_its_reservation() {
    let s = setup(vec![SimNode::new("noid", 4, GIB, &[])], "spread").await;
    s.nodes[0].create_without_id.store(true, std::sync::atomic::Ordering::Relaxed);
    let half = json!({"Image": "busybox", "HostConfig": {"Memory": GIB / 2}});
    let (st, v) = create(&s.app, "", half.clone()).await;
    assert_eq!(st, 500, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("invalid answer from") && msg.contains("the create answer has no container Id"), "{v}");
    // The failed create's reservation is gone: beside the container the node made anyway, half
    // of the node's memory is free, and a leaked reservation would hold it.
    s.nodes[0].create_without_id.store(false, std::sync::atomic::Ordering::Relaxed);
    let (st, v) = create(&s.app, "", half).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["Id"].as_str().map(str::len), Some(64), "{v}");
}

#[tokio::test]
async fn binpack_fills_one_node_first() {
    let s = setup((0..2).map(|i| SimNode::new(&format!("b{i}"), 2, GIB, &[])).collect(), "binpack").await;
    for i in 0..4 {
        let (st, v) = create(&s.app, &format!("x{i}"), json!({"Image": "busybox", "HostConfig": {"Memory": 256 << 20}})).await;
        assert_eq!(st, 201, "{v}");
    }
    let mut counts: Vec<usize> = s.nodes.iter().map(|n| n.container_count()).collect();
    counts.sort();
    assert_eq!(counts, vec![0, 4]);
}

#[tokio::test]
async fn lookups_name_conflicts_and_listing() {
    let s = setup(vec![SimNode::new("node-1", 4, 4 * GIB, &[]), SimNode::new("node-2", 4, 4 * GIB, &[])], "spread").await;
    let (st, web) = create(&s.app, "web", json!({"Image": "busybox", "Labels": {"com.docker.swarm.id": "abcdef0123456789"}})).await;
    assert_eq!(st, 201, "{web}");
    let id = web["Id"].as_str().unwrap().to_string();
    let (st, v) = create(&s.app, "web", json!({"Image": "busybox"})).await;
    assert_eq!(st, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains(&format!("already in use by container \"{id}\"")), "{v}");
    for _ in 0..50 {
        create(&s.app, "", json!({"Image": "busybox"})).await;
    }
    let node = node_of(&s.app, "web").await;
    // By name, /node/name, 12-char ID, unique ID prefix, swarm ID and its prefix.
    for q in
        ["web".to_string(), format!("{node}/web"), id[..12].to_string(), id[..20].to_string(), "abcdef0123456789".into(), "abcdef01".into()]
    {
        let (st, v) = call(&s.app, "GET", &format!("/v1.41/containers/{q}/json"), None).await;
        assert_eq!((st, v["Id"].as_str()), (200, Some(id.as_str())), "lookup {q}: {v}");
    }
    let other = if node == "node-1" { "node-2" } else { "node-1" };
    let (st, _) = call(&s.app, "GET", &format!("/v1.41/containers/{other}/web/json"), None).await;
    assert_eq!(st, 404, "web is not on {other}");
    let (st, rows) = call(&s.app, "GET", "/v1.41/containers/json?all=1", None).await;
    assert_eq!(st, 200);
    assert_eq!(rows.as_array().unwrap().len(), 51, "{rows}");
    assert!(rows.as_array().unwrap().iter().any(|r| r["Names"] == json!([format!("/{node}/web")])));
    let total: usize = s.nodes.iter().map(|n| n.container_count()).sum();
    assert_eq!(total, 51);
}

/// `reschedule:on-node-failure` through the watchdog's pass: a failed node's flagged container
/// waits while nothing fits (it is not dropped), moves when a fitting node joins, keeps its
/// name and swarm ID, starts because the old one ran; the unflagged one is left alone; the
/// stale copy goes when the failed node returns; `rm` drops the record.
#[tokio::test]
async fn reschedule_waits_for_a_fitting_node_and_removes_stale_copies() {
    let (n1, n2) = (SimNode::new("n1", 2, GIB, &["zone=a"]), SimNode::new("n2", 2, GIB, &["zone=b"]));
    let s = setup(vec![n1.clone(), n2.clone()], "spread").await;
    let addr_of = |name: &str| s.cluster.engines().into_iter().find(|e| e.name() == name).map(|e| e.addr.clone()).unwrap();
    let (a1, a2) = (addr_of("n1"), addr_of("n2"));
    let (st, v) = create(&s.app, "web", json!({"Image": "busybox", "Env": ["reschedule:on-node-failure", "constraint:zone==a"]})).await;
    assert_eq!(st, 201, "{v}");
    let old = v["Id"].as_str().unwrap().to_string();
    assert_eq!(call(&s.app, "POST", "/v1.41/containers/web/start", None).await.0, 204);
    assert_eq!(create(&s.app, "plain", json!({"Image": "busybox", "Env": ["constraint:zone==a"]})).await.0, 201);
    let recs = s.cluster.records.list().await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].name.as_str(), recs[0].id.as_str(), recs[0].node.as_str()), ("web", old.as_str(), a1.as_str()));
    let swarm_id = recs[0].swarm_id.clone();

    // n1 leaves discovery: nothing else has zone=a, so the move is recorded and waits.
    let entry = |a: &str| discovery::Entry::parse(a).unwrap();
    s.cluster.sync(&[entry(&a2)]);
    s.cluster.reconcile_reschedules().await.unwrap();
    let recs = s.cluster.records.list().await.unwrap();
    assert_eq!(recs.len(), 1, "the record is kept");
    assert_eq!(recs[0].moving.as_ref().map(|m| (m.from.as_str(), m.old_id.as_str(), m.start)), Some((a1.as_str(), old.as_str(), true)));
    assert_eq!(n2.container_count(), 0);

    // A node with zone=a joins: the next pass moves it there.
    let n3 = SimNode::new("n3", 2, GIB, &["zone=a"]);
    let stop3 = CancellationToken::new();
    let _g = stop3.clone().drop_guard();
    let a3 = serve(vec![n3.clone()], stop3).await.unwrap().remove(0);
    s.cluster.sync(&[entry(&a2), entry(&a3)]);
    for _ in 0..200 {
        if s.cluster.views().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut events = s.cluster.hub.subscribe();
    s.cluster.reconcile_reschedules().await.unwrap();
    assert_eq!(node_of(&s.app, "web").await, "n3");
    let (_, v) = call(&s.app, "GET", "/v1.41/containers/web/json", None).await;
    assert_eq!(v["State"]["Running"], true);
    assert_eq!(v["Config"]["Labels"]["com.docker.swarm.id"], json!(swarm_id));
    let new = v["Id"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let recs = s.cluster.records.list().await.unwrap();
    assert_eq!((recs[0].id.as_str(), recs[0].node.as_str(), recs[0].moving.is_none()), (new.as_str(), a3.as_str(), true));
    let ev = loop {
        let ev = events.recv().await.unwrap();
        if ev["Action"] == "reschedule" {
            break ev;
        }
    };
    assert_eq!(
        (ev["Actor"]["Attributes"]["oldID"].as_str(), ev["Actor"]["Attributes"]["newID"].as_str()),
        (Some(old.as_str()), Some(new.as_str()))
    );
    assert_eq!((ev["Actor"]["Attributes"]["fromNode"].as_str(), ev["Actor"]["Attributes"]["toNode"].as_str()), (Some("n1"), Some("n3")));

    // n1 comes back with its stale copy (and the unflagged container): only the copy goes.
    assert_eq!(n1.container_count(), 2);
    s.cluster.sync(&[entry(&a1), entry(&a2), entry(&a3)]);
    for _ in 0..200 {
        if s.cluster.views().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.cluster.reconcile_reschedules().await.unwrap();
    assert_eq!(n1.container_count(), 1, "the stale copy is removed, `plain` stays");
    assert_eq!(node_of(&s.app, "plain").await, "n1");
    let (_, list) = call(&s.app, "GET", "/v1.41/containers/json?all=1", None).await;
    let webs = list.as_array().unwrap().iter().filter(|c| c["Names"].to_string().contains("/web")).count();
    assert_eq!(webs, 1, "{list}");

    // Removed by the user: the record goes at the next pass.
    assert_eq!(call(&s.app, "DELETE", "/v1.41/containers/web?force=1", None).await.0, 204);
    s.cluster.reconcile_reschedules().await.unwrap();
    assert!(s.cluster.records.list().await.unwrap().is_empty());
}

/// The node sends a create's event before its answer (as dockerd does): the manager builds
/// the record from the create and its answer, named as asked, and inspects nothing.
#[tokio::test]
async fn a_create_is_recorded_without_an_inspect() {
    let n = SimNode::new("n1", 2, GIB, &[]);
    let gauge = InspectGauge::new(Duration::ZERO);
    n.count_inspects(gauge.clone()).unwrap();
    let s = setup(vec![n], "spread").await;
    let engine = s.cluster.engine_named("n1").unwrap();
    for _ in 0..250 {
        if engine.events_live() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(engine.events_live(), "the node's event stream is followed");
    let before = gauge.total();
    for i in 0..20 {
        let name = if i % 2 == 0 { format!("c{i}") } else { String::new() };
        let (st, v) = create(&s.app, &name, json!({"Image": "busybox", "Cmd": ["sleep", "1"]})).await;
        assert_eq!(st, 201, "{v}");
    }
    let (_, ps) = call(&s.app, "GET", "/v1.41/containers/json?all=1", None).await;
    let mut names: Vec<String> = ps.as_array().unwrap().iter().map(|r| r["Names"][0].as_str().unwrap().to_string()).collect();
    names.sort();
    assert_eq!(names.len(), 20, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("/n1/") && n.len() > 4), "every record named: {names:?}");
    assert!(names.contains(&"/n1/c0".to_string()), "{names:?}");
    assert_eq!(ps[0]["Command"], "sleep 1");
    assert_eq!(gauge.total() - before, 0, "no container inspected");
}

/// However many nodes join at once, at most `max_learning` of them are learnt together: the
/// container inspects in flight (each answered after a delay, as by a loaded node) never pass
/// `max_learning` × the per-node inspect concurrency, and every container is still inspected
/// on first sight.
#[tokio::test]
async fn learning_many_nodes_bounds_the_inspects_in_flight() {
    let (nodes, per_node, max_learning) = (24, 20, 2);
    let gauge = InspectGauge::new(Duration::from_millis(5));
    let nodes: Vec<_> = (0..nodes)
        .map(|i| {
            let n = SimNode::new(&format!("n{i}"), 2, GIB, &[]);
            n.prefill(per_node);
            n.count_inspects(gauge.clone()).unwrap();
            n
        })
        .collect();
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let addrs = serve(nodes.clone(), stop.clone()).await.unwrap();
    let opts =
        ClusterOpts { max_learning, refresh_min: Duration::from_secs(30), refresh_max: Duration::from_secs(60), ..Default::default() };
    let cluster = Cluster::new(opts, None, stop.clone()).unwrap();
    cluster.sync(&addrs.iter().map(|a| discovery::Entry::parse(a).unwrap()).collect::<Vec<_>>());
    let app = crate::api::router(cluster.clone());
    let want = nodes.len() * per_node;
    let mut listed = 0;
    for _ in 0..500 {
        let (st, v) = call(&app, "GET", "/v1.41/containers/json?all=1", None).await;
        assert_eq!(st, 200, "{v}");
        listed = v.as_array().unwrap().len();
        if listed == want && cluster.views().len() == nodes.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((listed, cluster.views().len()), (want, nodes.len()), "every node and container learnt");
    assert!(gauge.total() >= want, "each container inspected on first sight: {} inspects", gauge.total());
    let bound = max_learning * crate::cluster::INSPECT_CONCURRENCY;
    assert!(gauge.max() <= bound, "{} inspects in flight at once, more than {bound}", gauge.max());
    assert!(gauge.max() > crate::cluster::INSPECT_CONCURRENCY, "the nodes are learnt side by side: {} at most", gauge.max());
}

/// Two nodes under one daemon ID: the second to validate is refused with classic Swarm's
/// "ID duplicated" error, and is taken once the first leaves discovery.
#[tokio::test]
async fn a_duplicate_daemon_id_is_refused_until_the_other_node_leaves() {
    let nodes = vec![SimNode::new("twin", 2, GIB, &[]), SimNode::new("twin", 2, GIB, &[]), SimNode::new("other", 2, GIB, &[])];
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let addrs = serve(nodes.clone(), stop.clone()).await.unwrap();
    let opts = ClusterOpts { refresh_min: Duration::from_millis(500), refresh_max: Duration::from_secs(1), ..Default::default() };
    let cluster = Cluster::new(opts, None, stop.clone()).unwrap();
    let entries: Vec<discovery::Entry> = addrs.iter().map(|a| discovery::Entry::parse(a).unwrap()).collect();
    cluster.sync(&entries);
    let refused = || {
        cluster.engines().into_iter().filter(|e| !e.is_validated()).map(|e| (e.addr.clone(), e.lock().error.clone())).collect::<Vec<_>>()
    };
    for _ in 0..200 {
        if cluster.views().len() == 2 && refused().iter().all(|(_, err)| err.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cluster.views().len(), 2, "one twin and the other node");
    let out = refused();
    assert_eq!(out.len(), 1, "{out:?}");
    let (twin, err) = &out[0];
    assert!(err.as_deref().is_some_and(|e| e.contains("ID duplicated")), "{err:?}");
    // The twin that was taken leaves: the other one is taken at its next attempt.
    let taken = if twin == &addrs[0] { &addrs[1] } else { &addrs[0] };
    let rest: Vec<discovery::Entry> = addrs.iter().filter(|a| *a != taken).map(|a| discovery::Entry::parse(a).unwrap()).collect();
    cluster.sync(&rest);
    for _ in 0..300 {
        if cluster.validated().len() == 2 && cluster.validated().iter().any(|e| &e.addr == twin) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now: Vec<String> = cluster.validated().iter().map(|e| e.addr.clone()).collect();
    assert!(now.len() == 2 && now.contains(twin), "{now:?}");
}

/// What learning a container costs the manager, in-process: the simulator's answers (shaped as
/// Docker 20.10's) read as a tree of values first, as before, and straight from their bytes,
/// as the refresh does now; CPU of the test thread:
/// `ROWS=100000 cargo test --release -p manager --lib --features sim inspect_speed -- --ignored --nocapture`
#[test]
#[ignore]
fn inspect_speed() {
    use crate::cluster::model::PsRowIn;
    use crate::cluster::status::speed::thread_cpu;
    use crate::cluster::Container;
    let n: usize = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let node = SimNode::new("speed", 2, GIB, &[]);
    node.prefill(n);
    let now = chrono::Utc::now();
    let (bodies, list) = {
        let st = node.lock();
        let bodies: Vec<Vec<u8>> = st.containers.iter().map(|(id, c)| serde_json::to_vec(&wire::inspect(&node, id, c)).unwrap()).collect();
        let rows: Vec<Value> = st.containers.iter().map(|(id, c)| wire::ps_row(&node, id, c, false, now)).collect();
        (bodies, serde_json::to_vec(&rows).unwrap())
    };
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    eprintln!("{n} inspects, {} bytes each; list {} MiB", bytes / n, list.len() >> 20);
    let mut records = Vec::with_capacity(n);
    let cpu = thread_cpu();
    for b in &bodies {
        let v: Value = serde_json::from_slice(b).unwrap();
        records.push(Container::from_inspect(&v, 2));
    }
    let tree = thread_cpu() - cpu;
    let first: Vec<_> = std::mem::take(&mut records);
    let cpu = thread_cpu();
    for b in &bodies {
        records.push(Container::from_inspect_bytes(b, 2).unwrap());
    }
    let direct = thread_cpu() - cpu;
    eprintln!(
        "inspect to record: through a Value {:?} ({} ns each), from the bytes {:?} ({} ns each)",
        tree,
        tree.as_nanos() / n as u128,
        direct,
        direct.as_nanos() / n as u128
    );
    for (a, b) in first.iter().zip(&records) {
        assert_eq!((a.id(), &a.name, a.state, a.created), (b.id(), &b.name, b.state, b.created));
        assert_eq!(a.networks.value(), b.networks.value());
    }
    let cpu = thread_cpu();
    let v: Value = serde_json::from_slice(&list).unwrap();
    let rows: Vec<PsRowIn> = serde::Deserialize::deserialize(&v).unwrap();
    let tree = thread_cpu() - cpu;
    assert_eq!(rows.len(), n);
    drop(rows);
    drop(v);
    let cpu = thread_cpu();
    let rows = PsRowIn::parse_all(&list).unwrap();
    let direct = thread_cpu() - cpu;
    assert_eq!(rows.len(), n);
    eprintln!("list of {n}: through a Value {tree:?}, from the bytes {direct:?}");
}
