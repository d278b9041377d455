//! Healthchecks: `--health-*` options and the image's HEALTHCHECK run in the container;
//! State.Health, health_status events, the ps status and its health= filter.
mod common;
use common::*;
use std::time::Duration;

fn health(e: &Engine, name: &str) -> String {
    inspect(e, name, "{{.State.Health.Status}}")
}

#[test]
fn health_options_drive_state_events_and_ps() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("hc");
    let t0 = chrono_now();
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--health-cmd",
        "test -f /tmp/ok && echo fine",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "--health-timeout",
        "2s",
        "busybox",
        "sleep",
        "1000",
    ]);
    // "starting" until the first probe: checked on a container whose first probe is an hour
    // away, as the one above may be unhealthy after 400 ms on a loaded host.
    let slow = e.unique("hcslow");
    e.docker_ok(&["run", "-d", "--name", &slow, "--health-cmd", "true", "--health-interval", "1h", "busybox", "sleep", "1000"]);
    assert_eq!(health(&e, &slow), "starting");
    assert!(e.docker_ok(&["ps", "--format", "{{.Status}}", "--filter", &format!("name={slow}")]).contains("(health: starting)"));
    e.docker_ok(&["rm", "-f", &slow]);
    assert!(wait_until(Duration::from_secs(10), || health(&e, &name) == "unhealthy"), "{}", health(&e, &name));
    assert!(inspect(&e, &name, "{{.State.Health.FailingStreak}}").parse::<i64>().unwrap() >= 2);
    assert_eq!(inspect(&e, &name, "{{(index .State.Health.Log 0).ExitCode}}"), "1");
    assert!(e.docker_ok(&["ps", "--format", "{{.Status}}", "--filter", "health=unhealthy"]).contains("(unhealthy)"));
    e.docker_ok(&["exec", &name, "touch", "/tmp/ok"]);
    assert!(wait_until(Duration::from_secs(10), || health(&e, &name) == "healthy"), "{}", health(&e, &name));
    let log = e.docker_ok(&["inspect", "-f", "{{json .State.Health.Log}}", &name]);
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let entries = log.as_array().unwrap();
    assert!(entries.len() <= 5, "{log}");
    assert_eq!(entries.last().unwrap()["Output"], "fine\n");
    assert_eq!(entries.last().unwrap()["ExitCode"], 0);
    let id = inspect(&e, &name, "{{.Id}}");
    assert_eq!(e.docker_ok(&["ps", "-q", "--no-trunc", "--filter", "health=healthy"]).trim(), id);
    assert_eq!(e.docker_ok(&["ps", "-q", "--filter", "health=unhealthy"]).trim(), "");
    assert_eq!(e.docker_ok(&["ps", "-q", "--filter", "health=none"]).trim(), "");
    let ev = e.docker_ok(&["events", "--since", &t0, "--until", &chrono_now(), "--filter", &format!("container={name}")]);
    let statuses: Vec<&str> =
        ev.lines().filter_map(|l| l.split("health_status: ").nth(1)).map(|r| r.split_whitespace().next().unwrap_or("")).collect();
    assert_eq!(statuses, ["unhealthy", "healthy"], "{ev}");
    e.docker_ok(&["rm", "-f", &name]);
}

fn chrono_now() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// A `docker save`-style archive of busybox whose config has a HEALTHCHECK.
fn image_with_healthcheck(tag: &str) -> Vec<u8> {
    let layer = std::fs::read(testground::image::busybox_rootfs_tar()).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Env": [testground::image::DEFAULT_PATH], "Cmd": ["sleep", "1000"],
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 200_000_000u64, "Retries": 1}
        },
        "rootfs": {"type": "layers", "diff_ids": [testground::image::sha256_digest(&layer)]}
    });
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]}]);
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("layer.tar", layer),
        ("config.json", serde_json::to_vec(&config).unwrap()),
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn image_healthcheck_is_inherited_and_can_be_turned_off() {
    require_root!();
    let e = engine();
    let tag = format!("{}:hc", e.unique("hcimg"));
    let o = e.docker_full(&["load"], Some(&image_with_healthcheck(&tag)), Duration::from_secs(60));
    e.expect_ok(&o);
    let name = e.unique("hcimg");
    e.docker_ok(&["run", "-d", "--name", &name, &tag]);
    assert_eq!(inspect(&e, &name, "{{json .Config.Healthcheck.Test}}"), r#"["CMD","true"]"#);
    assert!(wait_until(Duration::from_secs(10), || health(&e, &name) == "healthy"), "{}", health(&e, &name));
    // The user's interval over the image's, the image's test kept.
    let over = e.unique("hcover");
    e.docker_ok(&["run", "-d", "--name", &over, "--health-interval", "5s", &tag]);
    assert_eq!(inspect(&e, &over, "{{.Config.Healthcheck.Interval}} {{json .Config.Healthcheck.Test}}"), r#"5s ["CMD","true"]"#);
    // --no-healthcheck: no health at all.
    let off = e.unique("hcoff");
    e.docker_ok(&["run", "-d", "--name", &off, "--no-healthcheck", &tag]);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(inspect(&e, &off, "{{json .State.Health}}"), "null");
    assert!(!e.docker_ok(&["ps", "--filter", &format!("name={off}"), "--format", "{{.Status}}"]).contains("health"));
    e.docker_ok(&["rm", "-f", &name, &over, &off]);
    // Bad values are refused.
    let o = e.docker(&["run", "--rm", "--health-cmd", "true", "--health-retries", "-1", &tag]);
    assert!(!o.success(), "{o}");
}

const COMPOSE_HEALTHY: &str = r#"version: "2.4"
services:
  db:
    image: busybox
    command: ["sh", "-c", "sleep 2; touch /tmp/ready; exec sleep 1000"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 200ms
      retries: 50
  app:
    image: busybox
    depends_on:
      db:
        condition: service_healthy
    command: ["sleep", "1000"]
"#;

/// docker-compose 1.29's `depends_on: condition: service_healthy` waits for the healthcheck.
#[test]
fn compose_waits_for_a_healthy_dependency() {
    require_root!();
    let compose = ["/usr/local/bin/docker-compose", "/opt/docker-compose-venv/bin/docker-compose"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("docker-compose 1.29 is not installed: run scripts/install-deps.sh");
    let e = engine_with_busybox();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docker-compose.yml"), COMPOSE_HEALTHY).unwrap();
    let project = e.unique("hcproj");
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(compose);
        c.current_dir(dir.path()).args(["--ansi", "never", "-p", &project]).args(args);
        for (k, v) in e.docker_env() {
            c.env(k, v);
        }
        testground::cmd::run(&mut c, None, Duration::from_secs(120))
    };
    let o = run(&["up", "-d"]);
    assert!(o.success(), "{o}");
    let started = |svc: &str| {
        let id = e.docker_ok(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.service={svc}"),
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ]);
        let t = inspect(&e, id.trim(), "{{.State.StartedAt}}");
        chrono_like_secs(&t)
    };
    let (db, app) = (started("db"), started("app"));
    assert!(app - db >= 1.9, "app started {:.2}s after db", app - db);
    let db_id = e.docker_ok(&["ps", "-q", "--filter", "label=com.docker.compose.service=db"]);
    assert_eq!(health(&e, db_id.trim()), "healthy");
    let o = run(&["down", "-t", "1"]);
    assert!(o.success(), "{o}");
}

/// Seconds of an RFC 3339 time (`2026-12-03T14:40:01.123456789Z`) within its day.
fn chrono_like_secs(t: &str) -> f64 {
    let time = t.split('T').nth(1).unwrap_or_default().trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next().unwrap_or("0").parse().unwrap_or(0.0);
    let m: f64 = parts.next().unwrap_or("0").parse().unwrap_or(0.0);
    let s: f64 = parts.next().unwrap_or("0").parse().unwrap_or(0.0);
    h * 3600.0 + m * 60.0 + s
}
