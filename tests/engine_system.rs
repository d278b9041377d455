//! System routes: `docker version`, `docker info`, `/_ping`, version prefixes, unknown routes.
//! (Error shapes of the container and image routes are tested with those routes.)
mod common;
use common::*;
use serde_json::Value;

fn meminfo_total_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = s.lines().find(|l| l.starts_with("MemTotal:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn online_cpus() -> i64 {
    // SAFETY: sysconf(3) has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }
}

#[test]
fn version_shows_engine_and_api_1_41() {
    require_root!();
    let e = engine();
    let out = e.docker_ok(&["version"]);
    assert!(out.contains("Server:"), "{out}");
    let v: Value = serde_json::from_str(&e.docker_ok(&["version", "--format", "{{json .Server}}"])).unwrap();
    assert_eq!(v["ApiVersion"], "1.41", "{v}");
    assert!(v["Version"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Arch"], "amd64");
    assert_eq!(v["MinAPIVersion"].as_str().map(|s| s <= "1.24"), Some(true), "{v}");
    // The CLI negotiated down to 1.41.
    let client: Value = serde_json::from_str(&e.docker_ok(&["version", "--format", "{{json .Client}}"])).unwrap();
    assert_eq!(client["ApiVersion"], "1.41", "{client}");
}

#[test]
fn info_shows_real_figures_and_labels() {
    require_root!();
    let e = Engine::start_with(opts().label("flotilla.test=yes").label("zone=t1"));
    let info: Value = serde_json::from_str(&e.docker_ok(&["info", "--format", "{{json .}}"])).unwrap();
    assert_eq!(info["Driver"], "overlay2", "{info}");
    assert_eq!(info["CgroupDriver"], "cgroupfs");
    assert_eq!(info["CgroupVersion"], "1");
    assert_eq!(info["OSType"], "linux");
    assert_eq!(info["LoggingDriver"], "json-file");
    let labels: Vec<&str> = info["Labels"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(labels.contains(&"flotilla.test=yes") && labels.contains(&"zone=t1"), "{labels:?}");
    assert_eq!(info["NCPU"].as_i64(), Some(online_cpus()));
    let mem = info["MemTotal"].as_u64().unwrap();
    let real = meminfo_total_bytes();
    assert!(mem.abs_diff(real) < real / 50, "MemTotal {mem} vs /proc/meminfo {real}");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(info["KernelVersion"], kernel.trim());
    assert!(info["OperatingSystem"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(info["DockerRootDir"].as_str(), e.data_root().to_str());
    assert!(info["ServerVersion"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!((info["Containers"].as_i64(), info["Images"].as_i64()), (Some(0), Some(0)));
    let cidrs = info["RegistryConfig"]["InsecureRegistryCIDRs"].to_string();
    assert!(cidrs.contains("127.0.0.0/8"), "{cidrs}");

    // The plain text view shows them too.
    let text = e.docker_ok(&["info"]);
    for needle in ["Storage Driver: overlay2", "Cgroup Driver: cgroupfs", "flotilla.test=yes"] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[test]
fn ping_headers_and_version_prefixes() {
    require_root!();
    let e = engine();
    for method in ["HEAD", "GET"] {
        let r = e.api(method, "/_ping", None).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Api-Version"), Some("1.41"));
        assert_eq!(r.header("Ostype"), Some("linux"));
        assert_eq!(r.header("Docker-Experimental"), Some("false"));
        if method == "GET" {
            assert_eq!(r.text(), "OK");
        }
    }
    for prefix in ["", "/v1.24", "/v1.40", "/v1.41"] {
        let r = e.api("GET", &format!("{prefix}/version"), None).unwrap();
        assert_eq!(r.status, 200, "{prefix}/version: {}", r.text());
        assert_eq!(r.json().unwrap()["ApiVersion"], "1.41");
        let r = e.api("GET", &format!("{prefix}/info"), None).unwrap();
        assert_eq!(r.status, 200, "{prefix}/info: {}", r.text());
        let r = e.api("GET", &format!("{prefix}/_ping"), None).unwrap();
        assert_eq!(r.status, 200, "{prefix}/_ping");
    }
}

/// `swarm --experimental engine` (classic Swarm's global flag) shows in info, version and the
/// `Docker-Experimental` header.
#[test]
fn experimental_flag_is_reported() {
    require_root!();
    let e = Engine::start_with(opts().arg("--experimental"));
    assert_eq!(e.docker_ok(&["info", "--format", "{{.ExperimentalBuild}}"]).trim(), "true");
    assert_eq!(e.docker_ok(&["version", "--format", "{{.Server.Experimental}}"]).trim(), "true");
    assert_eq!(e.api("GET", "/_ping", None).unwrap().header("Docker-Experimental"), Some("true"));
}

#[test]
fn unknown_routes_are_json_404s() {
    require_root!();
    let e = engine();
    for path in ["/v1.41/no/such/route", "/nosuchroute"] {
        let r = e.api("GET", path, None).unwrap();
        assert_eq!(r.status, 404, "{path}");
        assert!(r.json().unwrap()["message"].is_string(), "{path}: {}", r.text());
    }
}
