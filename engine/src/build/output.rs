//! The classic builder's JSON stream: `{"stream": "Step 1/3 : FROM busybox\n"}`,
//! `{"aux": {"ID": "sha256:..."}}`, and `{"errorDetail": {...}, "error": "..."}` at the end
//! of a failed build. With `q` only the final id and errors are sent.
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct Output {
    tx: mpsc::UnboundedSender<Value>,
    quiet: bool,
}

impl Output {
    pub fn new(quiet: bool) -> (Self, mpsc::UnboundedReceiver<Value>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Output { tx, quiet }, rx)
    }
    pub fn stream(&self, s: impl Into<String>) {
        if !self.quiet {
            let _ = self.tx.send(json!({ "stream": s.into() }));
        }
    }
    /// Sent even when quiet (the image id of `docker build -q`).
    pub fn final_stream(&self, s: impl Into<String>) {
        let _ = self.tx.send(json!({ "stream": s.into() }));
    }
    pub fn aux_id(&self, id: &str) {
        let _ = self.tx.send(json!({ "aux": { "ID": id } }));
    }
    pub fn error(&self, message: &str, code: Option<i64>) {
        let mut detail = json!({ "message": message });
        if let Some(c) = code {
            detail["code"] = json!(c);
        }
        let _ = self.tx.send(json!({ "errorDetail": detail, "error": message }));
    }
}
