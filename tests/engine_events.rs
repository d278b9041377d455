//! `docker events`: past events with `--since/--until`, live streaming, filters; container,
//! image, volume and network events.
mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// `docker events --since S --until U` with a format and filters, as lines.
fn past(e: &Engine, since: u64, extra: &[&str]) -> Vec<String> {
    // `until` = this very moment (with nanoseconds), so the command ends at once.
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let (s, u) = (since.to_string(), format!("{}.{:09}", t.as_secs(), t.subsec_nanos()));
    let mut args = vec!["events", "--since", &s, "--until", &u];
    args.extend_from_slice(extra);
    lines(&e.docker_ok(&args))
}

/// True when `want` appears in `got` in this order (other lines may come between).
fn in_order(got: &[String], want: &[&str]) -> bool {
    let mut it = got.iter();
    want.iter().all(|w| it.any(|g| g == w))
}

#[test]
fn past_events_in_order_with_filters() {
    require_root!();
    let e = engine_with_busybox();
    let t0 = now() - 1;
    let name = e.unique("ev");
    let vol = e.unique("evvol");
    e.docker_ok(&["run", "--rm", "--name", &name, "-l", "team=blue", "-v", &format!("{vol}:/v"), "busybox", "true"]);
    e.docker_ok(&["volume", "rm", &vol]);
    e.docker_ok(&["tag", "busybox", "evtag:1"]);
    e.docker_ok(&["rmi", "evtag:1"]);

    let fmt = ["--format", "{{.Type}} {{.Action}}"];
    let all = past(&e, t0, &fmt);
    assert!(
        in_order(
            &all,
            &[
                "volume create",
                "container create",
                "network connect",
                "volume mount",
                "container start",
                "container die",
                "network disconnect",
                "volume unmount",
                "container destroy",
                "volume destroy",
                "image tag",
                "image untag"
            ]
        ),
        "{all:#?}"
    );
    let containers = past(&e, t0, &["--filter", "type=container", "--format", "{{.Action}} {{.Actor.Attributes.name}}"]);
    let want: Vec<String> = ["create", "start", "die", "destroy"].iter().map(|a| format!("{a} {name}")).collect();
    assert_eq!(containers, want);
    // Filters: event (OR), container by name, label, volume, image.
    assert_eq!(past(&e, t0, &["--filter", "event=start", "--filter", "event=die", "--format", "{{.Action}}"]), ["start", "die"]);
    assert_eq!(past(&e, t0, &["--filter", &format!("container={name}"), "--filter", "type=container", "--format", "{{.Action}}"]).len(), 4);
    assert_eq!(past(&e, t0, &["--filter", "label=team=blue", "--format", "{{.Action}}"]), ["create", "start", "die", "destroy"]);
    assert!(past(&e, t0, &["--filter", "label=team=red"]).is_empty());
    assert_eq!(past(&e, t0, &["--filter", &format!("volume={vol}"), "--format", "{{.Action}}"]), ["create", "mount", "unmount", "destroy"]);
    let img = past(&e, t0, &["--filter", "type=image", "--format", "{{.Action}} {{.Actor.Attributes.name}}"]);
    assert!(img.iter().any(|l| l == "tag evtag:1") && img.iter().any(|l| l.starts_with("untag sha256:")), "{img:?}");
    // The JSON a client sees: legacy fields for containers, Actor attributes.
    let raw = past(&e, t0, &["--filter", "event=die", "--format", "{{json .}}"]);
    let v: serde_json::Value = serde_json::from_str(&raw[0]).unwrap();
    assert_eq!((v["status"].as_str(), v["from"].as_str()), (Some("die"), Some("busybox")), "{v}");
    assert_eq!(v["Actor"]["Attributes"]["exitCode"], "0", "{v}");
    assert_eq!(v["Actor"]["Attributes"]["team"], "blue", "{v}");
    // `--until` in the past ends at once; a bad filter is refused.
    let t = Instant::now();
    assert!(past(&e, now() + 100, &[]).is_empty());
    assert!(t.elapsed() < Duration::from_secs(10));
    let o = e.docker(&["events", "--filter", "bogus=1", "--until", "1"]);
    assert!(!o.success() && o.stderr.contains("invalid filter 'bogus'"), "{o}");
}

#[test]
fn live_events_stream() {
    require_root!();
    let e = engine_with_busybox();
    let mut c = Command::new(testground::engine::docker_cli());
    c.args(["events", "--filter", "type=container", "--format", "{{.Action}}"]).stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in e.docker_env() {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    // Live events start when the client has subscribed: create and remove a container until the
    // stream shows one (a loaded host may take the CLI longer than any fixed sleep), then run one.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut subscribed = false;
    while !subscribed && Instant::now() < deadline {
        let id = e.docker_ok(&["create", "busybox", "true"]).trim().to_string();
        e.docker_ok(&["rm", &id]);
        let wait = Instant::now() + Duration::from_secs(2);
        while let Some(left) = wait.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if l == "destroy" => {
                    subscribed = true;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    assert!(subscribed, "the live stream showed no event within 30 s");
    e.docker_ok(&["run", "--rm", "busybox", "true"]);
    let mut got = vec![];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !got.contains(&"destroy".to_string()) && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            got.push(l);
        }
    }
    assert!(in_order(&got, &["create", "start", "die", "destroy"]), "{got:?}");
}
