//! `GET /containers/json` streamed: rows are written straight from the manager's records into
//! the chunk being sent, 1,024 rows at a time, with no per-row value, map or string built on
//! the way (a list of a million containers never sits in memory, and costs little more than
//! copying its bytes). The output is the JSON [`super::view::PsRow`] serializes to; a test
//! holds the two together.
use super::packed::{escaped, int, string, PsPort};
use super::view::Container;
use super::NodeInfo;
use std::sync::{Arc, Mutex};

/// Rows serialized per chunk of the answer.
pub const PS_CHUNK: usize = 1024;

/// Chunk buffers sent and given back, for the next chunks (of this answer or another): a
/// `ps` of a million rows writes ~700 MiB through a few warm buffers instead of through that
/// much fresh memory (a page fault every 4 KiB, and memory the allocator may keep afterwards).
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// Buffers kept at most, and the largest kept.
const SPARE_MAX: usize = 8;
const SPARE_CAP: usize = 4 << 20;

/// A chunk's buffer, given back to [`SPARE`] once sent.
struct Chunk(Vec<u8>);

/// `buf` (from [`buffer`]) as bytes to send; its memory goes back to the spare buffers once
/// sent.
pub(crate) fn pooled(buf: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from_owner(Chunk(buf))
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() > SPARE_CAP {
            return;
        }
        buf.clear();
        let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < SPARE_MAX {
            spare.push(buf);
        }
    }
}

/// An empty buffer of at least `size` bytes, a spare one if any.
pub(crate) fn buffer(size: usize) -> Vec<u8> {
    let spare = SPARE.lock().unwrap_or_else(|p| p.into_inner()).pop();
    match spare {
        Some(mut b) => {
            b.reserve(size);
            b
        }
        None => Vec::with_capacity(size),
    }
}

/// One row to send: the container, its node, and whether the node is healthy (if not, the
/// status is `Host Down`).
pub struct PsRecord {
    /// Sort key, held inline so sorting a million rows does not chase a million pointers.
    pub created: i64,
    pub c: Arc<Container>,
    pub node: Arc<NodeInfo>,
    pub healthy: bool,
}

impl PsRecord {
    pub fn new(c: Arc<Container>, node: Arc<NodeInfo>, healthy: bool) -> PsRecord {
        PsRecord { created: c.created, c, node, healthy }
    }
}

/// Appends one row (as [`Container::ps_row`] would serialize), with no allocation of its own.
pub fn write_row(buf: &mut Vec<u8>, r: &PsRecord, now: chrono::DateTime<chrono::Utc>) {
    let (c, s) = (&r.c, &r.c.sched);
    buf.extend_from_slice(b"{\"Id\":");
    string(buf, &s.id);
    buf.extend_from_slice(b",\"Names\":[\"/");
    escaped(buf, &r.node.name);
    buf.push(b'/');
    escaped(buf, &c.name);
    buf.extend_from_slice(b"\"],\"Image\":");
    string(buf, &s.image);
    buf.extend_from_slice(b",\"ImageID\":");
    string(buf, &s.image_id);
    buf.extend_from_slice(b",\"Command\":");
    string(buf, &c.command);
    buf.extend_from_slice(b",\"Created\":");
    int(buf, c.created);
    buf.extend_from_slice(b",\"Ports\":[");
    for (i, p) in c.ports.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        if let Some((ip, port)) = &p.public {
            buf.extend_from_slice(b"{\"IP\":");
            string(buf, if PsPort::any_address(ip) { &r.node.ip } else { ip });
            buf.extend_from_slice(b",\"PrivatePort\":");
            int(buf, p.private_port);
            buf.extend_from_slice(b",\"PublicPort\":");
            int(buf, *port);
        } else {
            buf.extend_from_slice(b"{\"PrivatePort\":");
            int(buf, p.private_port);
        }
        buf.extend_from_slice(b",\"Type\":");
        string(buf, &p.typ);
        buf.push(b'}');
    }
    buf.extend_from_slice(b"],\"Labels\":{");
    for (i, (k, v)) in s.labels.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        string(buf, k);
        buf.push(b':');
        string(buf, v);
    }
    buf.extend_from_slice(b"},\"State\":\"");
    buf.extend_from_slice(c.state.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"Status\":");
    if !r.healthy {
        buf.extend_from_slice(b"\"Host Down\"");
    } else if c.plain_status() {
        buf.push(b'"');
        c.write_status(buf, now);
        buf.push(b'"');
    } else {
        string(buf, &c.status_text(now));
    }
    buf.extend_from_slice(b",\"HostConfig\":{\"NetworkMode\":");
    string(buf, if s.network_mode.is_empty() { "default" } else { &s.network_mode });
    buf.extend_from_slice(b"},\"NetworkSettings\":{\"Networks\":");
    buf.extend_from_slice(c.networks.text().unwrap_or("{}").as_bytes());
    buf.extend_from_slice(b"},\"Mounts\":");
    buf.extend_from_slice(c.mounts.text().unwrap_or("[]").as_bytes());
    buf.push(b'}');
}

/// The answer as a stream of chunks, serialized as it is sent.
pub fn ps_stream(
    records: Vec<PsRecord>,
    now: chrono::DateTime<chrono::Utc>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    // The state: the next row, and the size of the last chunk (the next one is sized after it).
    futures_util::stream::unfold(Some((0usize, PS_CHUNK * 448)), move |next| {
        let out = next.map(|(start, size)| {
            let end = (start + PS_CHUNK).min(records.len());
            let mut buf = buffer(size + size / 8 + 2);
            buf.push(if start == 0 { b'[' } else { b',' });
            for (i, r) in records[start..end].iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                write_row(&mut buf, r, now);
            }
            if end == records.len() {
                buf.push(b']');
                (Ok(bytes::Bytes::from_owner(Chunk(buf))), None)
            } else {
                let size = buf.len();
                (Ok(bytes::Bytes::from_owner(Chunk(buf))), Some((end, size)))
            }
        });
        std::future::ready(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use serde_json::{json, Value};

    fn sample(i: usize) -> Value {
        let status = ["running", "exited", "created", "paused"][i % 4];
        json!({
            "Id": format!("id{i}"), "Name": if i.is_multiple_of(3) { "/we\"b".to_string() } else { format!("/web{i}") },
            "Created": "2024-01-01T00:00:00Z", "Path": "httpd", "Args": ["-f", "a\\b"],
            "Image": "sha256:img",
            "State": {"Status": status, "Running": i.is_multiple_of(4), "ExitCode": 3,
                      "StartedAt": "2024-01-01T00:00:00Z", "FinishedAt": "2024-01-01T00:01:00Z",
                      "Health": if i.is_multiple_of(5) { json!({"Status": "healthy"}) } else { Value::Null }},
            "Config": {"Image": "busybox", "Labels": {"com.docker.swarm.id": "sw1", "q\"uote": "line\nbreak"}, "ExposedPorts": {"80/tcp": {}}},
            "HostConfig": {"Memory": 1048576, "NetworkMode": if i.is_multiple_of(2) { "bridge" } else { "" }},
            "NetworkSettings": if i.is_multiple_of(2) {
                json!({"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "53/udp": null}, "Networks": {"bridge": {"IPAddress": "10.0.0.2"}}})
            } else { json!({}) },
            "Mounts": if i.is_multiple_of(2) { json!([{"Type": "volume"}]) } else { Value::Null },
        })
    }

    #[test]
    fn rows_are_what_ps_row_serializes_to() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:05:00Z").unwrap().with_timezone(&chrono::Utc);
        for i in 0..40 {
            let c = Arc::new(Container::from_inspect(&sample(i), 4));
            let node = Arc::new(NodeInfo {
                name: if i.is_multiple_of(7) { "n\"1".into() } else { "node-1".into() },
                ip: "10.0.0.5".into(),
                ..Default::default()
            });
            let healthy = i % 6 != 0;
            let mut want = serde_json::to_value(c.ps_row(&node.name, &node.ip, now)).unwrap();
            if !healthy {
                want["Status"] = json!("Host Down");
            }
            let mut buf = vec![];
            write_row(&mut buf, &PsRecord::new(c, node, healthy), now);
            let got: Value = serde_json::from_slice(&buf).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&buf)));
            assert_eq!(got, want, "row {i}");
        }
    }

    #[tokio::test]
    async fn ps_streams_valid_json() {
        let info = Arc::new(NodeInfo { name: "node-1".into(), ip: "10.0.0.5".into(), ..Default::default() });
        let now = chrono::Utc::now();
        for n in [0, 1, PS_CHUNK, PS_CHUNK + 3] {
            let records: Vec<_> =
                (0..n).map(|i| PsRecord::new(Arc::new(Container::from_inspect(&sample(i), 4)), info.clone(), i != 0)).collect();
            let chunks: Vec<_> = ps_stream(records, now).collect().await;
            let body: Vec<u8> = chunks.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
            let rows: Vec<Value> = serde_json::from_slice(&body).unwrap();
            assert_eq!(rows.len(), n);
            if n > 1 {
                assert_eq!(rows[0]["Status"], "Host Down");
                assert_eq!(rows[n - 1]["Id"], format!("id{}", n - 1));
                assert_eq!(rows[1]["Names"], json!(["/node-1/web1"]));
            }
        }
    }
}
