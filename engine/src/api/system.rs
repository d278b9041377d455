//! `/_ping`, `/version`, `/info`.
use super::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/_too_old/{ver}", axum::routing::any(too_old))
}

async fn ping() -> Response {
    let mut r = "OK".into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    // The classic builder (`POST /build`): the docker CLI then uses it, not BuildKit.
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

async fn too_old(Path(ver): Path<String>) -> ApiError {
    ApiError::bad_request(format!(
        "client version {ver} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
        crate::MIN_API_VERSION
    ))
}

async fn version(State(st): State<AppState>) -> Json<serde_json::Value> {
    let h = crate::sysinfo::host_info();
    let experimental = st.config.experimental;
    Json(json!({
        "Platform": {"Name": "Flotilla Engine"},
        "Components": [{
            "Name": "Engine",
            "Version": crate::ENGINE_VERSION,
            "Details": {
                "ApiVersion": crate::API_VERSION,
                "MinAPIVersion": crate::MIN_API_VERSION,
                "Os": "linux", "Arch": "amd64",
                "KernelVersion": h.kernel_version,
                "GitCommit": "flotilla", "GoVersion": "rust", "Experimental": experimental.to_string(),
            }
        }],
        "Version": crate::ENGINE_VERSION,
        "Experimental": experimental,
        "ApiVersion": crate::API_VERSION,
        "MinAPIVersion": crate::MIN_API_VERSION,
        "GitCommit": "flotilla",
        "GoVersion": "rust",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": h.kernel_version,
        "BuildTime": "",
    }))
}

async fn info(State(st): State<AppState>) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let h = crate::sysinfo::host_info();
    let counts = st.containers.counts();
    let labels: Vec<String> = st.config.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut insecure = vec!["127.0.0.0/8".to_string()];
    insecure.extend(st.config.insecure_registries.iter().cloned());
    let index_configs: serde_json::Map<String, serde_json::Value> = st
        .config
        .insecure_registries
        .iter()
        .map(|r| (r.clone(), json!({"Name": r, "Mirrors": [], "Secure": false, "Official": false})))
        .collect();
    let store = st.network.cluster_store();
    let mut warnings = vec![format!("WARNING: {}: containers run without an AppArmor profile", crate::container::secopts::apparmor_note())];
    if let Some(why) = store.as_ref().and_then(|s| s.unreachable.as_ref()) {
        warnings.push(format!("WARNING: cluster store unreachable, overlay networks are unavailable until it answers: {why}"));
    }
    let mut net_plugins = vec!["bridge", "host", "null"];
    if store.is_some() {
        net_plugins.push("overlay");
    }
    Ok((
        StatusCode::OK,
        Json(json!({
            "ID": st.containers.daemon_id(),
            "Containers": counts.total,
            "ContainersRunning": counts.running,
            "ContainersPaused": counts.paused,
            "ContainersStopped": counts.stopped,
            "Images": st.images.count(),
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Native Overlay Diff", "true"]],
            "Plugins": {"Volume": ["local"], "Network": net_plugins, "Log": ["json-file", "local", "none"]},
            "MemoryLimit": true,
            "SwapLimit": true,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "CPUSet": true,
            "PidsLimit": true,
            "IPv4Forwarding": std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "1"),
            "BridgeNfIptables": true,
            "BridgeNfIp6tables": true,
            "Debug": false,
            "NFd": std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
            "OomKillDisable": true,
            "NGoroutines": 0,
            "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "LoggingDriver": st.config.run_defaults.log_driver.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| "json-file".into()),
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": h.cgroup_version,
            "NEventsListener": 0,
            "KernelVersion": h.kernel_version,
            "OperatingSystem": h.operating_system,
            "OSVersion": h.os_version,
            "OSType": "linux",
            "Architecture": "x86_64",
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": insecure,
                "IndexConfigs": index_configs,
                "Mirrors": st.config.pull.mirrors.iter().map(|m| format!("{m}/")).collect::<Vec<_>>()
            },
            "NCPU": h.ncpu,
            "MemTotal": h.mem_total,
            "DockerRootDir": st.config.data_root,
            "Name": st.config.name.clone().unwrap_or(h.hostname),
            "Labels": labels,
            "ExperimentalBuild": st.config.experimental,
            "ServerVersion": crate::ENGINE_VERSION,
            // One runtime, under the name clients pass (`--runtime runc`) and inspect shows.
            "Runtimes": {"runc": {"path": st.config.shim_binary}},
            "DefaultRuntime": "runc",
            "LiveRestoreEnabled": false,
            "Isolation": "",
            "InitBinary": "",
            "SecurityOptions": crate::runtime::seccomp::info_entry().into_iter().chain(["name=cgroupns"]).collect::<Vec<_>>(),
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
            "ClusterStore": store.as_ref().map(|s| s.url.clone()).unwrap_or_default(),
            "ClusterAdvertise": store.as_ref().map(|s| s.advertise.clone()).unwrap_or_default(),
            // `--security-opt apparmor=<profile>` is refused: say why; and an unreachable cluster store.
            "Warnings": warnings,
        })),
    ))
}
