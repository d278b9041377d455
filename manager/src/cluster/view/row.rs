//! What a container's record turns into for `docker ps`: Docker's status text (go-units'
//! HumanDuration) computed at list time, and the row as seen through the manager (`/node/name`,
//! node IP in ports), serialized (the reference for the streamed writer in `ps.rs`).
use super::Container;
use crate::cluster::model::ContainerState;
use crate::cluster::packed;
use crate::scheduler::Labels;
use serde_json::{Map, Value};

impl Container {
    /// Docker's status text (`Up 5 minutes`, `Exited (0) 2 seconds ago`, …) at `now`.
    pub fn status_text(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let mut buf = Vec::with_capacity(32);
        self.write_status(&mut buf, now);
        String::from_utf8(buf).expect("status text is UTF-8")
    }

    /// Appends the status text (as it is: only the health can hold what JSON escapes, see
    /// [`Container::plain_status`]).
    pub fn write_status(&self, buf: &mut Vec<u8>, now: chrono::DateTime<chrono::Utc>) {
        let ago = |buf: &mut Vec<u8>, t: Option<chrono::DateTime<chrono::Utc>>| {
            write_human_duration(buf, t.map_or(0, |t| (now - t).num_seconds()))
        };
        let code = |buf: &mut Vec<u8>, word: &[u8]| {
            buf.extend_from_slice(word);
            buf.extend_from_slice(b" (");
            packed::int(buf, self.exit_code);
            buf.extend_from_slice(b") ");
            ago(buf, self.finished_at);
            buf.extend_from_slice(b" ago");
        };
        match self.state {
            ContainerState::Running | ContainerState::Paused => {
                buf.extend_from_slice(b"Up ");
                ago(buf, self.started_at);
                if self.state == ContainerState::Paused {
                    buf.extend_from_slice(b" (Paused)");
                } else if let Some(h) = &self.health {
                    buf.extend_from_slice(b" (");
                    buf.extend_from_slice(h.as_bytes());
                    buf.push(b')');
                }
            }
            ContainerState::Restarting => code(buf, b"Restarting"),
            ContainerState::Removing => buf.extend_from_slice(b"Removal In Progress"),
            ContainerState::Dead => buf.extend_from_slice(b"Dead"),
            ContainerState::Created => buf.extend_from_slice(b"Created"),
            _ if self.started_at.is_none() => buf.extend_from_slice(b"Created"),
            _ if self.finished_at.is_none() => {}
            _ => code(buf, b"Exited"),
        }
    }

    /// Whether the status text needs no escaping in a JSON string.
    pub fn plain_status(&self) -> bool {
        self.health.as_deref().is_none_or(packed::plain)
    }

    /// A `GET /containers/json` row, as seen through the manager (the reference for the
    /// writer in `ps.rs`).
    pub fn ps_row<'a>(&'a self, node_name: &str, node_ip: &str, now: chrono::DateTime<chrono::Utc>) -> PsRow<'a> {
        PsRow {
            id: &self.sched.id,
            names: [format!("/{node_name}/{}", self.name)],
            image: &self.sched.image,
            image_id: &self.sched.image_id,
            command: &self.command,
            created: self.created,
            ports: self.ports.iter().map(|p| p.to_value(node_ip)).collect(),
            labels: &self.sched.labels,
            state: self.state,
            status: self.status_text(now),
            host_config: PsHostConfig {
                network_mode: if self.sched.network_mode.is_empty() { "default" } else { &self.sched.network_mode },
            },
            network_settings: PsNetworks {
                networks: if self.networks.is_null() { Value::Object(Map::new()) } else { self.networks.value() },
            },
            mounts: if self.mounts.is_null() { Value::Array(vec![]) } else { self.mounts.value() },
        }
    }
}

/// One `docker ps` row, serialized from the manager's record (the reference for the streamed
/// writer in `ps.rs`).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PsRow<'a> {
    pub id: &'a str,
    pub names: [String; 1],
    pub image: &'a str,
    #[serde(rename = "ImageID")]
    pub image_id: &'a str,
    pub command: &'a str,
    pub created: i64,
    pub ports: Vec<Value>,
    pub labels: &'a Labels,
    pub state: ContainerState,
    pub status: String,
    pub host_config: PsHostConfig<'a>,
    pub network_settings: PsNetworks,
    pub mounts: Value,
}

#[derive(Debug, serde::Serialize)]
pub struct PsHostConfig<'a> {
    #[serde(rename = "NetworkMode")]
    pub network_mode: &'a str,
}

#[derive(Debug, serde::Serialize)]
pub struct PsNetworks {
    #[serde(rename = "Networks")]
    pub networks: Value,
}

/// go-units' HumanDuration.
pub fn human_duration(secs: i64) -> String {
    let mut buf = vec![];
    write_human_duration(&mut buf, secs);
    String::from_utf8(buf).expect("durations are ASCII")
}

/// Appends go-units' HumanDuration of `secs`.
pub fn write_human_duration(buf: &mut Vec<u8>, secs: i64) {
    let secs = secs.max(0);
    let minutes = secs / 60;
    let hours = (secs as f64 / 3600.0 + 0.5) as i64;
    let (n, unit): (i64, &[u8]) = match () {
        _ if secs < 1 => return buf.extend_from_slice(b"Less than a second"),
        _ if secs == 1 => return buf.extend_from_slice(b"1 second"),
        _ if secs < 60 => (secs, b" seconds"),
        _ if minutes == 1 => return buf.extend_from_slice(b"About a minute"),
        _ if minutes < 60 => (minutes, b" minutes"),
        _ if hours == 1 => return buf.extend_from_slice(b"About an hour"),
        _ if hours < 48 => (hours, b" hours"),
        _ if hours < 24 * 7 * 2 => (hours / 24, b" days"),
        _ if hours < 24 * 30 * 2 => (hours / 24 / 7, b" weeks"),
        _ if hours < 24 * 365 * 2 => (hours / 24 / 30, b" months"),
        _ => (secs / 3600 / 24 / 365, b" years"),
    };
    packed::int(buf, n);
    buf.extend_from_slice(unit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::view::tests::sample;
    use serde_json::json;

    #[test]
    fn ps_rows_carry_the_node() {
        let c = Container::from_inspect(&sample(), 4);
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:05:00Z").unwrap().with_timezone(&chrono::Utc);
        let row = serde_json::to_value(c.ps_row("node-1", "10.0.0.5", now)).unwrap();
        assert_eq!(row["Names"], json!(["/node-1/web"]));
        assert_eq!(row["Status"], "Up 5 minutes");
        assert_eq!(row["Ports"][0]["IP"], "10.0.0.5");
        assert_eq!(row["Ports"][0]["PublicPort"], 8080);
    }

    #[test]
    fn status_texts() {
        let mut v = sample();
        v["State"] = json!({"Status": "exited", "ExitCode": 3, "StartedAt": "2024-01-01T00:00:00Z", "FinishedAt": "2024-01-01T00:00:10Z"});
        let c = Container::from_inspect(&v, 1);
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:12Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(c.status_text(now), "Exited (3) 2 seconds ago");
        v["State"] = json!({"Status": "created"});
        assert_eq!(Container::from_inspect(&v, 1).status_text(now), "Created");
        assert_eq!(human_duration(3600 * 3), "3 hours");
        assert_eq!(human_duration(61), "About a minute");
        let all = [0, 1, 5, 59, 60, 119, 120, 3599, 3600, 5400, 7200, 86_400 * 3, 86_400 * 20, 86_400 * 100, 86_400 * 800];
        let got: Vec<String> = all.iter().map(|s| human_duration(*s)).collect();
        assert_eq!(
            got,
            [
                "Less than a second",
                "1 second",
                "5 seconds",
                "59 seconds",
                "About a minute",
                "About a minute",
                "2 minutes",
                "59 minutes",
                "About an hour",
                "2 hours",
                "2 hours",
                "3 days",
                "2 weeks",
                "3 months",
                "2 years"
            ]
        );
        v["State"] =
            json!({"Status": "restarting", "ExitCode": 1, "StartedAt": "2024-01-01T00:00:00Z", "FinishedAt": "2024-01-01T00:00:10Z"});
        assert_eq!(Container::from_inspect(&v, 1).status_text(now), "Restarting (1) 2 seconds ago");
        v["State"] = json!({"Status": "running", "StartedAt": "2024-01-01T00:00:00Z", "Health": {"Status": "un\"healthy"}});
        assert_eq!(Container::from_inspect(&v, 1).status_text(now), "Up 12 seconds (un\"healthy)");
    }
}
