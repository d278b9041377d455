//! The simulator's answers, through its router in memory: what a classic Swarm manager reads.
use super::*;
use axum::body::Body;
use axum::Router;
use futures_util::StreamExt;
use tower::ServiceExt;

fn app(nodes: &[Arc<SimNode>]) -> Router {
    let group = Arc::new(Group { nodes: nodes.to_vec() });
    handler::router(nodes[0].clone(), group)
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("Content-Type", "application/json")
        .body(Body::from(body.map(|v| v.to_string()).unwrap_or_default()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes))))
}

#[tokio::test]
async fn info_version_and_ping_carry_what_classic_reads() {
    let n = SimNode::new("sim-7", 4, 8 << 30, &["zone=a", "disk=ssd"]);
    n.prefill(3);
    let app = app(std::slice::from_ref(&n));
    let (st, info) = call(&app, "GET", "/v1.24/info", None).await;
    assert_eq!(st, 200);
    assert_eq!(info["ID"], json!(n.id));
    assert_eq!(info["ID"].as_str().unwrap().split(':').count(), 12, "Docker's daemon ID form");
    assert_eq!((info["Name"].as_str(), info["NCPU"].as_i64(), info["MemTotal"].as_i64()), (Some("sim-7"), Some(4), Some(8 << 30)));
    assert_eq!(info["Labels"], json!(["zone=a", "disk=ssd"]));
    assert_eq!(
        (info["Containers"].as_u64(), info["ContainersRunning"].as_u64(), info["ContainersStopped"].as_u64()),
        (Some(3), Some(2), Some(1))
    );
    for k in ["ServerVersion", "KernelVersion", "OperatingSystem", "OSType", "Architecture", "DockerRootDir", "Driver", "SystemTime"] {
        assert!(info[k].as_str().is_some_and(|s| !s.is_empty()), "{k}: {}", info[k]);
    }
    assert!(chrono::DateTime::parse_from_rfc3339(info["SystemTime"].as_str().unwrap()).is_ok());
    let (_, v) = call(&app, "GET", "/v1.41/version", None).await;
    assert_eq!(v["ApiVersion"], apiserve::API_VERSION);
    let major: u32 = v["Version"].as_str().unwrap().split('.').next().unwrap().parse().unwrap();
    assert!(major >= 17, "a version classic Swarm accepts (>= 1.6.0): {v}");
    let resp = app.clone().oneshot(axum::http::Request::get("/_ping").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.headers()["Api-Version"], apiserve::API_VERSION);
}

#[tokio::test]
async fn containers_list_filter_inspect_and_operate() {
    let n = SimNode::new("n1", 2, 1 << 30, &[]);
    n.prefill(4);
    let app = app(std::slice::from_ref(&n));
    let (_, all) = call(&app, "GET", "/v1.41/containers/json?all=1", None).await;
    let all = all.as_array().unwrap().clone();
    assert_eq!(all.len(), 4);
    let row = &all[0];
    for k in ["Id", "Image", "ImageID", "Command", "Status", "State"] {
        assert!(row[k].as_str().is_some_and(|s| !s.is_empty()), "{k}: {row}");
    }
    assert!(row["Created"].is_i64() && row["Ports"].is_array() && row["Labels"].is_object() && row["Mounts"].is_array(), "{row}");
    assert_eq!(row["HostConfig"]["NetworkMode"], "default");
    assert!(row["NetworkSettings"]["Networks"]["bridge"].is_object(), "{row}");
    assert!(row["Names"][0].as_str().unwrap().starts_with("/pre_n1_"));
    let (_, running) = call(&app, "GET", "/containers/json", None).await;
    assert_eq!(running.as_array().unwrap().len(), 2);

    // Classic's refresh of one container: `filters={"id":[ID]}`, then inspect.
    let id = row["Id"].as_str().unwrap();
    let f = form_urlencoded::byte_serialize(json!({"id": [id]}).to_string().as_bytes()).collect::<String>();
    let (_, one) = call(&app, "GET", &format!("/v1.24/containers/json?all=1&filters={f}"), None).await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    let (st, v) = call(&app, "GET", "/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", None).await;
    assert_eq!((st, v["message"].as_str()), (400, Some("Invalid filter 'bogus'")));

    let body = json!({"Image": "busybox", "Cmd": ["sleep", "9"], "Labels": {"app": "web"},
        "HostConfig": {"Memory": 4096, "PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}});
    let (st, v) = call(&app, "POST", "/v1.41/containers/create?name=web", Some(body)).await;
    assert_eq!(st, 201, "{v}");
    let id = v["Id"].as_str().unwrap().to_string();
    assert_eq!(call(&app, "POST", "/containers/create?name=web", Some(json!({}))).await.0, 409);
    assert_eq!(call(&app, "POST", "/v1.41/containers/web/start", None).await.0, 204);
    let (_, i) = call(&app, "GET", &format!("/v1.41/containers/{}/json", &id[..12]), None).await;
    assert_eq!((i["Id"].as_str(), i["Name"].as_str()), (Some(id.as_str()), Some("/web")));
    assert_eq!((i["State"]["Status"].as_str(), i["State"]["Running"].as_bool()), (Some("running"), Some(true)));
    assert_eq!((i["Path"].as_str(), i["Args"].clone()), (Some("sleep"), json!(["9"])));
    assert_eq!(i["Config"]["Labels"]["app"], "web");
    assert_eq!(i["HostConfig"]["Memory"], 4096);
    assert_eq!(i["HostConfig"]["RestartPolicy"]["Name"], "no", "defaults are filled in");
    assert_eq!(i["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"], "8080");
    assert!(i["NetworkSettings"]["Networks"]["bridge"]["IPAddress"].as_str().unwrap().starts_with("172.17."));
    let f = form_urlencoded::byte_serialize(br#"{"label":["app=web"]}"#).collect::<String>();
    let (_, rows) = call(&app, "GET", &format!("/containers/json?filters={f}"), None).await;
    assert_eq!(rows[0]["Ports"], json!([{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}]));
    assert_eq!(call(&app, "DELETE", "/containers/web", None).await.0, 409, "running, no force");
    assert_eq!(call(&app, "POST", "/containers/web/stop", None).await.0, 204);
    let (_, i) = call(&app, "GET", "/containers/web/json", None).await;
    assert_eq!(i["State"]["Status"], "exited");
    assert_eq!(call(&app, "DELETE", "/v1.41/containers/web", None).await.0, 204);
    assert_eq!(call(&app, "GET", "/containers/web/json", None).await.0, 404);
}

#[tokio::test]
async fn images_networks_volumes() {
    let n = SimNode::new("n1", 2, 1 << 30, &[]);
    let app = app(std::slice::from_ref(&n));
    let (_, imgs) = call(&app, "GET", "/v1.41/images/json", None).await;
    assert_eq!(imgs[0]["RepoTags"], json!(["busybox:latest"]));
    assert_eq!(call(&app, "GET", "/images/busybox/json", None).await.0, 200);
    assert_eq!(call(&app, "GET", "/images/alpine/json", None).await.0, 404);
    let (_, nets) = call(&app, "GET", "/v1.41/networks", None).await;
    let names: Vec<&str> = nets.as_array().unwrap().iter().map(|n| n["Name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["bridge", "host", "none"]);
    let id = nets[0]["Id"].as_str().unwrap();
    assert_eq!(call(&app, "GET", &format!("/networks/{id}"), None).await.1["Name"], "bridge");
    let other = SimNode::new("n2", 2, 1 << 30, &[]);
    assert_ne!(wire::network_id(&n, "bridge"), wire::network_id(&other, "bridge"), "network IDs differ per node");
    assert_eq!(call(&app, "GET", "/v1.41/volumes", None).await.1, json!({"Volumes": [], "Warnings": []}));
}

#[tokio::test]
async fn events_stream_counts_and_reset_restores_the_prefill() {
    let (a, b) = (SimNode::new("a", 2, 1 << 30, &[]), SimNode::new("b", 2, 1 << 30, &[]));
    a.prefill(2);
    b.prefill(2);
    let app = app(&[a.clone(), b.clone()]);
    let resp = app.clone().oneshot(axum::http::Request::get("/v1.41/events").body(Body::empty()).unwrap()).await.unwrap();
    let mut stream = resp.into_body().into_data_stream();
    assert_eq!(call(&app, "POST", "/containers/create?name=x", Some(json!({"Image": "busybox"}))).await.0, 201);
    let line = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap();
    let ev: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(
        (ev["Type"].as_str(), ev["Action"].as_str(), ev["Actor"]["Attributes"]["name"].as_str()),
        (Some("container"), Some("create"), Some("x"))
    );
    let (_, stats) = call(&app, "GET", "/_sim/stats", None).await;
    let stats: SimStats = serde_json::from_value(stats).unwrap();
    assert_eq!((stats.nodes, stats.containers, stats.event_streams), (2, 5, 1));

    assert_eq!(call(&app, "POST", "/v1.41/containers/pre_a_0/stop", None).await.0, 204);
    assert_eq!(call(&app, "POST", "/_sim/reset", None).await.0, 204);
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), async { while stream.next().await.is_some() {} }).await;
    assert!(end.is_ok(), "the event stream ends at a reset");
    let (_, stats) = call(&app, "GET", "/_sim/stats", None).await;
    assert_eq!((stats["containers"].as_u64(), stats["event_streams"].as_u64()), (Some(4), Some(0)));
    let (_, i) = call(&app, "GET", "/containers/pre_a_0/json", None).await;
    assert_eq!(i["State"]["Status"], "running", "prefilled containers are back as they were");
}
