//! `/_ping`, `/version`, `/info` (classic Swarm's SystemStatus layout), `/events` (merged),
//! `/metrics`.
use super::{ApiError, Ctx, API_VERSION, MIN_API_VERSION, SWARM_VERSION};
use crate::cluster::engine::Health;
use crate::cluster::model::NodeEvent;
use crate::cluster::Cluster;
use crate::cluster::Summary;
use crate::metrics::Gauges;
use crate::scheduler::strategy::weigh::human_bytes;
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::json;
use std::cmp::Ordering;

pub fn ping() -> Response {
    let mut r = "OK".into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    // Builds go to a node's classic builder (`POST /build`): the docker CLI then uses it, and
    // does not look for BuildKit.
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn host() -> (String, String, String) {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
        .unwrap_or_else(|| "linux".into());
    (read("/proc/sys/kernel/hostname"), read("/proc/sys/kernel/osrelease"), os)
}

pub fn version(cl: &Cluster) -> Response {
    let (_, kernel, _) = host();
    let experimental = cl.opts.experimental;
    Json(json!({
        "Platform": {"Name": "Flotilla Swarm"},
        "Components": [{"Name": "Swarm", "Version": SWARM_VERSION, "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Experimental": experimental.to_string()}}],
        "Experimental": experimental,
        "Version": SWARM_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "flotilla",
        "GoVersion": "rust",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": kernel,
        "BuildTime": "",
    }))
    .into_response()
}

/// Natural order: `node-2` before `node-10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    while !x.is_empty() && !y.is_empty() {
        if x[0].is_ascii_digit() && y[0].is_ascii_digit() {
            let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
            let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
            let (dx, dy) = (std::str::from_utf8(&x[..nx]).unwrap_or("0"), std::str::from_utf8(&y[..ny]).unwrap_or("0"));
            let (tx, ty) = (dx.trim_start_matches('0'), dy.trim_start_matches('0'));
            let o = tx.len().cmp(&ty.len()).then(tx.cmp(ty));
            if o != Ordering::Equal {
                return o;
            }
            x = &x[nx..];
            y = &y[ny..];
        } else {
            if x[0] != y[0] {
                return x[0].cmp(&y[0]);
            }
            x = &x[1..];
            y = &y[1..];
        }
    }
    x.len().cmp(&y.len())
}

/// The per-node lines of `docker info`.
pub fn node_status(s: &Summary) -> Vec<[String; 2]> {
    let name = if s.validated && !s.info.name.is_empty() { s.info.name.clone() } else { "(unknown)".into() };
    let mut v = vec![[format!(" {name}"), s.addr.clone()]];
    let mut add = |k: &str, val: String| v.push([format!("  └ {k}"), val]);
    add("ID", if s.validated { format!("{}|{}", s.info.id, s.addr) } else { s.addr.clone() });
    add("Status", s.health.to_string());
    let stopped = s.containers - s.running - s.paused;
    add(
        "Containers",
        if s.health == Health::Healthy {
            format!("{} ({} Running, {} Paused, {} Stopped)", s.containers, s.running, s.paused, stopped)
        } else {
            s.containers.to_string()
        },
    );
    add("Reserved CPUs", format!("{} / {}", s.used_cpus, s.total_cpus));
    add("Reserved Memory", format!("{} / {}", human_bytes(s.used_memory), human_bytes(s.total_memory)));
    add("Labels", s.info.labels.iter().map(|(k, x)| format!("{k}={x}")).collect::<Vec<_>>().join(", "));
    if let Some(e) = &s.error {
        add("Error", e.clone());
    }
    add("UpdatedAt", s.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    add("ServerVersion", s.info.server_version.clone());
    v
}

/// A node's `SystemStatus` rows as JSON, without the enclosing brackets (cached per node).
fn render_node(s: &Summary) -> Box<str> {
    let rows = serde_json::to_string(&node_status(s)).unwrap_or_else(|_| "[]".into());
    rows[1..rows.len() - 1].into()
}

/// `docker info`'s order of the nodes: by name (naturally), then address.
fn by_name(a: &Summary, b: &Summary) -> Ordering {
    natural_cmp(&a.info.name, &b.info.name).then(a.addr.cmp(&b.addr))
}

/// `GET /info`: the counts are summed from per-node counters and each node's rows are
/// rendered once per change, so the answer is mostly a copy of cached text.
pub fn info(cl: &Cluster) -> Response {
    info_in_frames(cl, INFO_FRAME)
}

/// `info` sent in frames of `frame` bytes or more (one row a frame at 0; speed tests compare).
pub(crate) fn info_in_frames(cl: &Cluster, frame: usize) -> Response {
    let all = cl.node_statuses(render_node, by_name);
    let mut status: Vec<[String; 2]> = vec![["Role".into(), cl.ha.role().into()]];
    if !cl.ha.is_primary() {
        status.push(["Primary".into(), cl.ha.primary().unwrap_or_default()]);
    }
    status.extend([
        ["Strategy".into(), cl.scheduler.strategy_name().into()],
        ["Filters".into(), cl.scheduler.filter_names().join(", ")],
        ["Nodes".into(), all.nodes.to_string()],
    ]);
    let (containers, running, paused, images, ncpu, mem) = (all.containers, all.running, all.paused, all.images, all.ncpu, all.memory);
    let (hostname, kernel, os) = host();
    let head = json!({
        "ID": "",
        "Containers": containers,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": containers - running - paused,
        "Images": images,
        "Driver": "",
        "DriverStatus": null,
        "Plugins": {"Volume": null, "Network": null, "Log": null},
        "MemoryLimit": true, "SwapLimit": true, "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true,
        "PidsLimit": true, "IPv4Forwarding": true, "BridgeNfIptables": true, "BridgeNfIp6tables": true, "OomKillDisable": true,
        "Debug": false, "NFd": 0, "NGoroutines": 0,
        "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "LoggingDriver": "", "CgroupDriver": "",
        "NEventsListener": cl.hub.listeners(),
        "KernelVersion": kernel, "OperatingSystem": os, "OSType": "linux", "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"InsecureRegistryCIDRs": [], "IndexConfigs": {}, "Mirrors": []},
        "NCPU": ncpu, "MemTotal": mem,
        "DockerRootDir": "", "Name": hostname, "Labels": [],
        "ExperimentalBuild": cl.opts.experimental, "ServerVersion": SWARM_VERSION,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "Warnings": null,
    });
    // `SystemStatus` is spliced in as text: the head's rows, then every node's cached rows.
    let mut body = Vec::with_capacity(8192);
    serde_json::to_writer(&mut body, &head).expect("a JSON value serializes");
    body.pop(); // the closing brace
    body.extend_from_slice(b",\"SystemStatus\":");
    let rows = serde_json::to_vec(&status).expect("strings serialize");
    body.extend_from_slice(&rows[..rows.len() - 1]);
    let body = InfoBody { head: Bytes::from(body), all, next: 0, frame, tail: Bytes::from_static(b"]}") };
    ([(header::CONTENT_TYPE, "application/json")], Body::new(body)).into_response()
}

/// The size `info`'s body is sent in: the nodes' rows (~600 bytes each) are copied into frames
/// this large, so the answer leaves in few large writes (one segment per row group costs the
/// sender and the receiver more than the copy; hyper gathers at most 16 frames a write).
const INFO_FRAME: usize = 128 << 10;

/// `info`'s body: the head, every node's row as it is kept, then the tail, sent in frames of
/// about [`INFO_FRAME`] bytes (the buffers recycled, as `ps`'s); its length known
/// (`Content-Length`).
struct InfoBody {
    head: Bytes,
    all: std::sync::Arc<crate::cluster::status::Statuses>,
    /// The next row to send.
    next: usize,
    /// Bytes a frame holds at least (but the last).
    frame: usize,
    tail: Bytes,
}

impl hyper::body::Body for InfoBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let b = &mut *self;
        if b.is_end_stream() {
            return std::task::Poll::Ready(None);
        }
        let rows = &b.all.rows;
        let mut buf = crate::cluster::ps::buffer(b.frame + 4096);
        buf.extend_from_slice(&std::mem::take(&mut b.head));
        while let Some(row) = rows.get(b.next) {
            buf.extend_from_slice(row);
            b.next += 1;
            if buf.len() >= b.frame {
                break;
            }
        }
        if b.next >= rows.len() {
            buf.extend_from_slice(&std::mem::take(&mut b.tail));
        }
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(crate::cluster::ps::pooled(buf)))))
    }
    fn is_end_stream(&self) -> bool {
        self.head.is_empty() && self.next >= self.all.rows.len() && self.tail.is_empty()
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        let rows = if self.next == 0 { self.all.bytes } else { self.all.rows[self.next..].iter().map(|r| r.len()).sum() };
        hyper::body::SizeHint::with_exact((self.head.len() + rows + self.tail.len()) as u64)
    }
}

/// Does `ev` pass the `filters` (type, event, container, image, node, label)? Old-style
/// fields (`status`, `id`) are not matched, as classic Swarm.
fn keep(ev: &NodeEvent, f: &std::collections::BTreeMap<String, Vec<String>>) -> bool {
    let attr = |k: &str| ev.attr(k).unwrap_or("");
    f.iter().all(|(k, vals)| {
        let any = |cands: &[&str]| {
            vals.iter().any(|v| cands.iter().any(|c| !c.is_empty() && (c == v || (v.len() >= 12 && c.starts_with(v.as_str())))))
        };
        match k.as_str() {
            "type" => any(&[&ev.typ]),
            "event" => vals.iter().any(|v| ev.action.split(':').next() == Some(v.as_str())),
            "container" => ev.typ == "container" && any(&[&ev.actor.id, attr("name")]),
            "image" => any(&[attr("image"), &ev.actor.id]),
            "node" => any(&[&ev.node.name, &ev.node.id]),
            "label" => vals.iter().all(|v| match v.split_once('=') {
                Some((lk, lv)) => ev.attr(lk) == Some(lv),
                None => ev.attr(v).is_some(),
            }),
            _ => true,
        }
    })
}

/// `GET /events`: follows every node's stream (merged) until `until` or the client leaves.
pub fn events(cl: &Cluster, ctx: &Ctx) -> Result<Response, ApiError> {
    let f = super::containers::parse_filters(ctx.query.get("filters"))?;
    let until = ctx.query.get("until").and_then(|u| u.split('.').next().and_then(|s| s.parse::<i64>().ok()));
    let rx = cl.hub.subscribe();
    let deadline =
        until.map(|u| tokio::time::Instant::now() + std::time::Duration::from_secs((u - chrono::Utc::now().timestamp()).max(0) as u64));
    let s = futures_util::stream::unfold((rx, f), move |(mut rx, f)| async move {
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                    Ok(r) => r,
                    Err(_) => return None,
                },
                None => rx.recv().await,
            };
            match next {
                Ok(ev) => {
                    let read = NodeEvent::read(&ev);
                    if until.is_some_and(|u| read.time > u) {
                        return None;
                    }
                    if !keep(&read, &f) {
                        continue;
                    }
                    let mut b = serde_json::to_vec(&*ev).unwrap_or_default();
                    b.push(b'\n');
                    return Some((Ok::<_, std::io::Error>(Bytes::from(b)), (rx, f)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "events client is too slow; events dropped");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let mut r = Response::new(Body::from_stream(s));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

pub fn metrics(cl: &Cluster) -> Response {
    let mut counts = [0usize; 4];
    let (mut containers, mut running, mut images) = (0, 0, 0);
    for e in cl.engines() {
        let s = e.summary(cl);
        counts[s.health as usize] += 1;
        containers += s.containers;
        running += s.running;
        images += s.images;
    }
    let g = Gauges {
        nodes: vec![("pending", counts[0]), ("healthy", counts[1]), ("unhealthy", counts[2]), ("disconnected", counts[3])],
        containers,
        running,
        images,
        event_listeners: cl.hub.listeners(),
        primary: cl.ha.is_primary(),
        elections: cl.ha.elections(),
    };
    let mut r = cl.metrics.render(&g).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::engine::NodeInfo;

    #[test]
    fn natural_order() {
        let mut v = vec!["node-10", "node-2", "node-1", "alpha"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["alpha", "node-1", "node-2", "node-10"]);
    }

    #[test]
    fn node_lines() {
        let s = Summary {
            addr: "127.0.0.1:2375".into(),
            health: Health::Healthy,
            info: NodeInfo {
                id: "ABC".into(),
                name: "node-1".into(),
                labels: [("zone".to_string(), "x".to_string())].into(),
                server_version: "28.0".into(),
                ..Default::default()
            },
            validated: true,
            error: None,
            updated_at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            containers: 3,
            running: 1,
            paused: 1,
            images: 1,
            used_cpus: 1,
            used_memory: 1 << 30,
            total_cpus: 2,
            total_memory: 2 << 30,
        };
        let l = node_status(&s);
        assert_eq!(l[0], [" node-1".to_string(), "127.0.0.1:2375".to_string()]);
        assert_eq!(l[1][1], "ABC|127.0.0.1:2375");
        assert_eq!(l[2], ["  └ Status".to_string(), "Healthy".to_string()]);
        assert_eq!(l[3][1], "3 (1 Running, 1 Paused, 1 Stopped)");
        assert_eq!(l[5][1], "1 GiB / 2 GiB");
        assert_eq!(l[6][1], "zone=x");
        assert_eq!(l[7][0], "  └ UpdatedAt");
    }

    /// The body as the nodes' own buffers is the document the joined rows made: every node's
    /// rows in order, the length announced, and a node's change shows in the next answer only.
    #[tokio::test]
    async fn info_sends_the_joined_rows() {
        use crate::cluster::view::Container;
        use crate::cluster::ClusterOpts;
        let c = Cluster::new(ClusterOpts::default(), None, tokio_util::sync::CancellationToken::new()).unwrap();
        let names = ["node-10", "node-2", "node-1"];
        let es: Vec<_> = names.iter().enumerate().map(|(i, n)| c.test_node(&format!("10.0.0.{i}:2375"), n)).collect();
        for e in &es {
            let mut st = e.lock();
            (st.validated, st.health) = (true, Health::Healthy);
        }
        let answer = |r: Response| async move {
            let exact = hyper::body::Body::size_hint(r.body()).exact();
            let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
            assert_eq!(exact, Some(body.len() as u64), "Content-Length is the body's");
            body
        };
        // The rows joined as before: each node's lines after a comma, in `docker info`'s order.
        let joined = || {
            let mut nodes: Vec<_> = es.iter().map(|e| e.status(&c, render_node)).collect();
            nodes.sort_by(|a, b| by_name(&a.summary, &b.summary));
            nodes.iter().map(|s| format!(",{}", s.lines())).collect::<String>() + "]}"
        };
        let rows = |v: &serde_json::Value| v["SystemStatus"].as_array().unwrap().clone();
        let first = answer(info(&c)).await;
        assert!(first.ends_with(joined().as_bytes()), "the body ends with the joined rows");
        let v: serde_json::Value = serde_json::from_slice(&first).unwrap();
        let shown: Vec<_> = rows(&v).iter().filter_map(|r| r[0].as_str().filter(|k| k.starts_with(" node")).map(String::from)).collect();
        assert_eq!(shown, [" node-1", " node-2", " node-10"]);
        let sent = c.node_statuses(render_node, by_name);
        let sent_rows = sent.rows.concat();
        es[1].upsert(Container::from_inspect(&json!({"Id": "a", "Name": "/a", "State": {"Status": "running"}}), 1));
        let second = answer(info(&c)).await;
        assert!(second.ends_with(joined().as_bytes()), "the body ends with the joined rows");
        assert_eq!(sent.rows.concat(), sent_rows, "an answer being sent keeps its rows");
        let w: serde_json::Value = serde_json::from_slice(&second).unwrap();
        assert_eq!(w["Containers"], 1);
        let changed: Vec<_> =
            rows(&w).iter().zip(rows(&v)).filter(|(a, b)| *a != b && a[0] != "  └ UpdatedAt").map(|(a, _)| a[1].clone()).collect();
        assert_eq!(changed, [json!("1 (1 Running, 0 Paused, 0 Stopped)")], "only node-2's containers changed");
    }

    /// What a user sees change on a node (its health, labels, CPUs, a node leaving or coming)
    /// is in the very next `docker info`, whatever the size of the body's frames.
    #[tokio::test]
    async fn a_node_change_shows_in_the_next_info() {
        use crate::cluster::ClusterOpts;
        let c = Cluster::new(ClusterOpts::default(), None, tokio_util::sync::CancellationToken::new()).unwrap();
        let es: Vec<_> = (1..=3).map(|i| c.test_node(&format!("10.0.0.{i}:2375"), &format!("node-{i}"))).collect();
        for e in &es {
            let mut st = e.lock();
            (st.validated, st.health, st.info.ncpu) = (true, Health::Healthy, 2);
        }
        let answer = |frame: usize| {
            let r = info_in_frames(&c, frame);
            async move {
                let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
                let mut v = serde_json::from_slice::<serde_json::Value>(&body).unwrap();
                v["SystemTime"] = json!(null); // the clock's, not the nodes'
                v
            }
        };
        // The rows under a node's name, as `docker info` prints them.
        let node = |v: &serde_json::Value, name: &str| -> Vec<(String, String)> {
            let rows = v["SystemStatus"].as_array().unwrap();
            let at = rows.iter().position(|r| r[0] == format!(" {name}")).expect("the node is listed");
            rows[at + 1..]
                .iter()
                .take_while(|r| r[0].as_str().unwrap().starts_with("  └"))
                .map(|r| (r[0].as_str().unwrap().trim_start_matches("  └ ").to_string(), r[1].as_str().unwrap().to_string()))
                .collect()
        };
        let get = |rows: &[(String, String)], k: &str| rows.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
        let first = answer(INFO_FRAME).await;
        assert_eq!(first, answer(0).await, "frames of one row or many make one document");
        assert_eq!((first["NCPU"].as_i64(), get(&node(&first, "node-2"), "Status")), (Some(6), "Healthy".to_string()));
        {
            let mut st = es[1].lock();
            st.health = Health::Unhealthy;
            st.error = Some("connection refused".into());
            st.info.labels.insert("zone".into(), "eu".into());
            st.info.ncpu = 8;
            st.invalidate(); // as a refresh does: the scheduler's view is built again
        }
        let next = answer(INFO_FRAME).await;
        let n2 = node(&next, "node-2");
        assert_eq!(get(&n2, "Status"), "Unhealthy");
        assert_eq!(get(&n2, "Error"), "connection refused");
        assert_eq!(get(&n2, "Labels"), "zone=eu");
        assert_eq!(get(&n2, "Reserved CPUs"), "0 / 8");
        assert_eq!(next["NCPU"], 12);
        assert_eq!(node(&next, "node-1"), node(&first, "node-1"), "the other nodes are as they were");
        c.test_remove_node("10.0.0.3:2375");
        let gone = answer(INFO_FRAME).await;
        let nodes = |v: &serde_json::Value| v["SystemStatus"].as_array().unwrap().iter().find(|r| r[0] == "Nodes").unwrap()[1].clone();
        assert_eq!((nodes(&gone), gone["NCPU"].as_i64()), (json!("2"), Some(10)));
        assert!(!gone.to_string().contains("node-3"));
        let back = c.test_node("10.0.0.3:2375", "node-3");
        {
            let mut st = back.lock();
            (st.validated, st.health) = (true, Health::Healthy);
        }
        let again = answer(0).await;
        assert_eq!(nodes(&again), json!("3"));
        assert_eq!(get(&node(&again, "node-3"), "Status"), "Healthy");
    }

    #[test]
    fn event_filters() {
        let ev = NodeEvent::read(
            &json!({"Type": "container", "Action": "start", "Actor": {"ID": "abcdef0123456789", "Attributes": {"name": "web", "com.x": "1"}}, "node": {"Name": "node-1"}}),
        );
        let f = |k: &str, v: &str| [(k.to_string(), vec![v.to_string()])].into_iter().collect();
        assert!(keep(&ev, &f("container", "web")));
        assert!(keep(&ev, &f("node", "node-1")));
        assert!(!keep(&ev, &f("node", "node-2")));
        assert!(keep(&ev, &f("event", "start")));
        assert!(!keep(&ev, &f("type", "image")));
        assert!(keep(&ev, &f("container", "abcdef012345")));
        assert!(keep(&ev, &f("label", "com.x=1")) && keep(&ev, &f("label", "com.x")) && !keep(&ev, &f("label", "com.x=2")));
        // Old-style events (no `Type`) are not containers to the filter.
        let old = NodeEvent::read(&json!({"status": "start", "id": "abcdef0123456789", "from": "busybox", "time": 1}));
        assert!(!keep(&old, &f("container", "abcdef012345")));
    }
}
