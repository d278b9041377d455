//! dockerd's JSON progress messages (jsonmessage.JSONMessage), one per line.
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Sends progress lines; a closed receiver (client gone) is not an error for the producer.
#[derive(Clone)]
pub struct Progress {
    tx: mpsc::Sender<Value>,
}

impl Progress {
    pub fn new(tx: mpsc::Sender<Value>) -> Self {
        Progress { tx }
    }

    /// A progress sink that drops everything.
    pub fn discard() -> Self {
        let (tx, _) = mpsc::channel(1);
        Progress { tx }
    }

    pub async fn send(&self, v: Value) {
        let _ = self.tx.send(v).await;
    }

    /// From a blocking thread.
    pub fn send_blocking(&self, v: Value) {
        let _ = self.tx.blocking_send(v);
    }

    pub async fn status(&self, status: &str) {
        self.send(json!({ "status": status })).await
    }

    pub async fn status_id(&self, status: &str, id: &str) {
        self.send(json!({ "status": status, "id": id })).await
    }

    /// `{"status":..,"progressDetail":{},"id":..}`
    pub async fn layer(&self, status: &str, id: &str) {
        self.send(layer_msg(status, id)).await
    }

    pub async fn error(&self, msg: &str) {
        self.send(error_msg(msg)).await
    }
}

pub fn layer_msg(status: &str, id: &str) -> Value {
    json!({ "status": status, "progressDetail": {}, "id": id })
}

/// `{"status":"Downloading","progressDetail":{"current":N,"total":T},"progress":"[==> ] a/b","id":..}`
pub fn bar_msg(status: &str, id: &str, current: u64, total: u64) -> Value {
    json!({
        "status": status,
        "progressDetail": { "current": current, "total": total },
        "progress": bar(current, total),
        "id": id,
    })
}

pub fn error_msg(msg: &str) -> Value {
    json!({ "errorDetail": { "message": msg }, "error": msg })
}

/// JSONProgress.String() for a wide terminal: `[=====>      ]  1.2MB/2.3MB`.
pub fn bar(current: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let pct = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    let pb = format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct));
    let nums =
        if current > total { format!("{:>8}", human_size(current)) } else { format!("{:>8}/{}", human_size(current), human_size(total)) };
    pb + &nums
}

/// go-units HumanSize: decimal units, 4 significant digits (`1.069MB`, `32.77kB`, `512B`).
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut size = n as f64;
    let mut i = 0;
    while size >= 1000.0 && i < units.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", g4(size), units[i])
}

/// `%.4g`: 4 significant digits, trailing zeros removed.
fn g4(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let digits = x.abs().log10().floor() as i32 + 1;
    let decimals = (4 - digits).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(32768), "32.77kB");
        assert_eq!(human_size(1_069_160), "1.069MB");
        assert_eq!(human_size(2_000_000), "2MB");
        let b = bar(534_580, 1_069_160);
        assert!(b.starts_with(&format!("[{}>{}] ", "=".repeat(25), " ".repeat(25))), "{b}");
        assert!(b.ends_with("534.6kB/1.069MB"), "{b}");
        assert_eq!(bar(10, 10).matches('=').count(), 50);
        let m = bar_msg("Downloading", "abc", 1, 2);
        assert_eq!(m["progressDetail"]["total"], 2);
        assert_eq!(error_msg("x")["errorDetail"]["message"], "x");
    }
}
