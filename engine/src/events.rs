//! Event bus: every state change is published here; `GET /events` subscribes.
//!
//! The bus keeps the last [`HISTORY`] events so `docker events --since` can replay them, and
//! [`EventFilter`] holds the pure matching rules of `--filter`.
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// How many past events are kept for `since` (dockerd keeps 256).
pub const HISTORY: usize = 1024;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Legacy fields (`status`, `id`, `from`) that dockerd still sends for container and image events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    history: Arc<Mutex<VecDeque<Event>>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus { tx: broadcast::channel(1024).0, history: Arc::new(Mutex::new(VecDeque::with_capacity(HISTORY))) }
    }
}

impl Event {
    pub fn new(typ: &str, action: &str, id: &str, attributes: &[(&str, &str)]) -> Event {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let attributes: BTreeMap<String, String> = attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let legacy = matches!(typ, "container" | "image");
        Event {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: (typ == "container").then(|| attributes.get("image").cloned()).flatten(),
            typ: typ.into(),
            action: action.into(),
            actor: Actor { id: id.into(), attributes },
            scope: "local".into(),
            time: nanos.div_euclid(1_000_000_000),
            time_nano: nanos,
        }
    }
}

impl EventBus {
    pub fn publish(&self, typ: &str, action: &str, id: &str, attributes: &[(&str, &str)]) {
        let ev = Event::new(typ, action, id, attributes);
        tracing::debug!(typ, action, id, "event");
        let mut h = self.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(ev.clone());
        // Sent under the lock, so `subscribe_since` sees every event exactly once.
        let _ = self.tx.send(ev);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Past events at or after `since_nanos` (oldest first) and a receiver for what follows,
    /// with no gap and no duplicate between the two.
    pub fn subscribe_since(&self, since_nanos: Option<i64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let h = self.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let past = match since_nanos {
            Some(s) => h.iter().filter(|e| e.time_nano >= s).cloned().collect(),
            None => vec![],
        };
        (past, self.tx.subscribe())
    }
}

/// Parses `since`/`until`: Unix seconds with an optional fraction (`1700000000.5`), as the
/// CLI sends, or an RFC 3339 time. Returns nanoseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some((secs, frac)) = s.split_once('.').or(Some((s, ""))) {
        if let Ok(secs) = secs.parse::<i64>() {
            if frac.bytes().all(|b| b.is_ascii_digit()) && frac.len() <= 9 {
                let nanos = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse::<i64>().ok()? };
                return Some(secs * 1_000_000_000 + nanos);
            }
        }
    }
    chrono::DateTime::parse_from_rfc3339(s).ok().and_then(|t| t.timestamp_nanos_opt())
}

/// `--filter` of `docker events`: values of one key are OR-ed, keys are AND-ed.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    filters: HashMap<String, Vec<String>>,
}

pub const FILTER_KEYS: &[&str] = &[
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "plugin",
    "scope",
    "type",
    "volume",
    "node",
    "service",
    "secret",
    "config",
];

/// Why a `--filter` of `docker events` is refused (Docker's text).
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("invalid filter '{0}'")]
    UnknownKey(String),
}

impl crate::Classify for FilterError {
    fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::InvalidParameter
    }
}

impl EventFilter {
    /// Refuses unknown keys with Docker's text.
    pub fn new(filters: HashMap<String, Vec<String>>) -> Result<Self, FilterError> {
        if let Some(k) = filters.keys().find(|k| !FILTER_KEYS.contains(&k.as_str())) {
            return Err(FilterError::UnknownKey(k.clone()));
        }
        Ok(EventFilter { filters })
    }

    fn any(&self, key: &str, f: impl Fn(&str) -> bool) -> bool {
        match self.filters.get(key) {
            Some(vals) if !vals.is_empty() => vals.iter().any(|v| f(v)),
            _ => true,
        }
    }

    pub fn matches(&self, e: &Event) -> bool {
        let attr = |k: &str| e.actor.attributes.get(k).map(String::as_str).unwrap_or("");
        let id_or_name = |v: &str| e.actor.id == v || attr("name") == v || (v.len() >= 3 && e.actor.id.starts_with(v));
        self.any("type", |v| e.typ == v)
            && self.any("event", |v| e.action == v || e.action.split(':').next() == Some(v))
            && self.any("scope", |v| e.scope == v)
            && self.any("container", |v| (e.typ == "container" && id_or_name(v)) || attr("container") == v)
            && self.any("image", |v| {
                let img = attr("image");
                let short = |s: &str| s.strip_suffix(":latest").unwrap_or(s).to_string();
                (e.typ == "image" && id_or_name(v)) || (!img.is_empty() && (img == v || short(img) == short(v)))
            })
            && self.any("network", |v| e.typ == "network" && id_or_name(v))
            && self.any("volume", |v| e.typ == "volume" && e.actor.id == v)
            && self.any("daemon", |v| e.typ == "daemon" && id_or_name(v))
            && self.any("label", |v| match v.split_once('=') {
                Some((k, val)) => attr(k) == val && e.actor.attributes.contains_key(k),
                None => e.actor.attributes.contains_key(v),
            })
            && ["plugin", "node", "service", "secret", "config"].iter().all(|k| self.any(k, |_| e.typ == *k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn f(pairs: &[(&str, &[&str])]) -> EventFilter {
        EventFilter::new(pairs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()).unwrap()
    }
    #[test]
    fn legacy_fields_for_containers_only() {
        let e = Event::new("container", "start", "abc", &[("image", "busybox"), ("name", "c1")]);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!((v["status"].as_str(), v["id"].as_str(), v["from"].as_str()), (Some("start"), Some("abc"), Some("busybox")));
        let v = serde_json::to_value(Event::new("volume", "create", "v", &[("driver", "local")])).unwrap();
        assert!(v.get("status").is_none() && v.get("from").is_none());
        assert_eq!(v["Actor"]["Attributes"]["driver"], "local");
    }
    #[test]
    fn history_and_since() {
        let bus = EventBus::default();
        bus.publish("volume", "create", "a", &[]);
        let mid = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        bus.publish("volume", "create", "b", &[]);
        let (past, mut rx) = bus.subscribe_since(Some(mid));
        assert_eq!(past.iter().map(|e| e.actor.id.as_str()).collect::<Vec<_>>(), ["b"]);
        bus.publish("volume", "create", "c", &[]);
        assert_eq!(rx.try_recv().unwrap().actor.id, "c");
        assert!(bus.subscribe_since(None).0.is_empty());
        for i in 0..HISTORY + 5 {
            bus.publish("volume", "create", &i.to_string(), &[]);
        }
        assert_eq!(bus.subscribe_since(Some(0)).0.len(), HISTORY);
    }
    #[test]
    fn times() {
        assert_eq!(parse_time("12"), Some(12_000_000_000));
        assert_eq!(parse_time("12.5"), Some(12_500_000_000));
        assert_eq!(parse_time("12.000000001"), Some(12_000_000_001));
        assert_eq!(parse_time("1970-01-01T00:00:02Z"), Some(2_000_000_000));
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("x"), None);
    }
    #[test]
    fn filters() {
        let start = Event::new("container", "start", "abcdef", &[("image", "busybox:latest"), ("name", "web"), ("a", "b")]);
        let vol = Event::new("volume", "mount", "v1", &[("container", "abcdef"), ("destination", "/d")]);
        let exec = Event::new("container", "exec_start: sh", "abcdef", &[("name", "web")]);
        assert!(f(&[]).matches(&start));
        assert!(f(&[("type", &["container"])]).matches(&start));
        assert!(!f(&[("type", &["container"])]).matches(&vol));
        assert!(f(&[("type", &["volume", "container"])]).matches(&vol));
        assert!(f(&[("event", &["start", "die"])]).matches(&start));
        assert!(f(&[("event", &["exec_start"])]).matches(&exec));
        assert!(!f(&[("event", &["die"])]).matches(&start));
        assert!(f(&[("container", &["web"])]).matches(&start));
        assert!(f(&[("container", &["abc"])]).matches(&start));
        assert!(f(&[("container", &["abcdef"])]).matches(&vol));
        assert!(!f(&[("container", &["other"])]).matches(&start));
        assert!(f(&[("image", &["busybox"])]).matches(&start));
        assert!(!f(&[("image", &["alpine"])]).matches(&start));
        assert!(f(&[("label", &["a=b"])]).matches(&start));
        assert!(f(&[("label", &["a"])]).matches(&start));
        assert!(!f(&[("label", &["a=c"])]).matches(&start));
        assert!(f(&[("volume", &["v1"])]).matches(&vol));
        assert!(!f(&[("volume", &["v1"])]).matches(&start));
        assert!(!f(&[("type", &["container"]), ("event", &["die"])]).matches(&start));
        assert!(EventFilter::new([("bogus".to_string(), vec![])].into_iter().collect()).is_err());
    }
}
