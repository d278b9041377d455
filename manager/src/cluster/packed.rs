//! The compact pieces of a container's record (`view.rs`): documents the manager only passes
//! on, kept as their compact JSON text instead of a tree of values (a `NetworkSettings.Networks`
//! of one endpoint is ~350 bytes of text and ~3 KiB as a `Value`), `docker ps` port entries as
//! typed fields, and a JSON string writer for the `ps` rows (`ps.rs`).
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

/// Strings shared by [`share`]: at most this many, of at most `SHARED_LEN` bytes.
const SHARED_MAX: usize = 4096;
const SHARED_LEN: usize = 128;
static SHARED: LazyLock<Mutex<HashSet<Arc<str>>>> = LazyLock::new(Default::default);

/// `s`, shared with every other record's equal string while the set of shared strings is small
/// (commands: a cluster runs a few over and over). Past the bound, or for a long string, a copy
/// of its own: the set never grows without bound.
pub fn share(s: &str) -> Arc<str> {
    if s.len() > SHARED_LEN {
        return Arc::from(s);
    }
    let mut set = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(x) = set.get(s) {
        return x.clone();
    }
    let x: Arc<str> = Arc::from(s);
    if set.len() < SHARED_MAX {
        set.insert(x.clone());
    }
    x
}

static EMPTY_ARRAY: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("[]"));
static EMPTY_OBJECT: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("{}"));

/// A JSON document held as its compact text; `null` holds nothing. Clones share the text.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct RawJson(Option<Arc<str>>);

impl RawJson {
    pub fn new(v: &Value) -> RawJson {
        match v {
            Value::Null => RawJson(None),
            Value::Array(a) if a.is_empty() => RawJson(Some(EMPTY_ARRAY.clone())),
            Value::Object(m) if m.is_empty() => RawJson(Some(EMPTY_OBJECT.clone())),
            v => RawJson(Some(serde_json::to_string(v).expect("a JSON value serializes").into())),
        }
    }

    /// A document as the node sent it (`None`: null or absent), held as its text with any
    /// whitespace between tokens taken out; the node's key order and escapes are kept.
    pub fn from_raw(raw: Option<&serde_json::value::RawValue>) -> RawJson {
        let Some(raw) = raw else { return RawJson(None) };
        let text = compact(raw.get());
        match &*text {
            "null" => RawJson(None),
            "[]" => RawJson(Some(EMPTY_ARRAY.clone())),
            "{}" => RawJson(Some(EMPTY_OBJECT.clone())),
            t => RawJson(Some(t.into())),
        }
    }

    /// Whether both hold the same text in one place.
    pub fn same(&self, other: &RawJson) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// The compact text; `None` for `null`.
    pub fn text(&self) -> Option<&str> {
        self.0.as_deref()
    }

    pub fn is_null(&self) -> bool {
        self.0.is_none()
    }

    /// The document as a value (parsed on each call: for the rare readers, such as filters).
    pub fn value(&self) -> Value {
        self.0.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
    }
}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_deref().unwrap_or("null"))
    }
}

impl From<Value> for RawJson {
    fn from(v: Value) -> RawJson {
        RawJson::new(&v)
    }
}

/// Where a byte of a JSON text falls: inside a string (quotes and escapes included) or not.
#[derive(Default)]
struct Strings {
    in_str: bool,
    escape: bool,
}

impl Strings {
    /// Takes the next byte; true if it is whitespace between tokens.
    fn is_token_space(&mut self, c: u8) -> bool {
        if self.in_str {
            match (self.escape, c) {
                (true, _) => self.escape = false,
                (false, b'\\') => self.escape = true,
                (false, b'"') => self.in_str = false,
                _ => {}
            }
            false
        } else if c == b'"' {
            self.in_str = true;
            false
        } else {
            matches!(c, b' ' | b'\n' | b'\r' | b'\t')
        }
    }
}

/// `json` (valid JSON) without the whitespace between its tokens; borrowed when it has none.
pub fn compact(json: &str) -> std::borrow::Cow<'_, str> {
    let b = json.as_bytes();
    let mut strings = Strings::default();
    let Some(first) = b.iter().position(|&c| strings.is_token_space(c)) else {
        return std::borrow::Cow::Borrowed(json);
    };
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..first]);
    out.extend(b[first + 1..].iter().copied().filter(|&c| !strings.is_token_space(c)));
    std::borrow::Cow::Owned(String::from_utf8(out).expect("only ASCII whitespace was taken out"))
}

/// The last few distinct documents a node's records held, to share their text: the containers
/// of a node that are not running have equal networks (no address), as have many that run the
/// same way. Most recently seen first.
#[derive(Default)]
pub struct Recent(Vec<RawJson>);

impl Recent {
    const LEN: usize = 8;

    /// `doc`, or an equal document seen lately (then held once).
    pub fn share(&mut self, doc: RawJson) -> RawJson {
        if doc.is_null() {
            return doc;
        }
        match self.0.iter().position(|d| *d == doc) {
            Some(i) => {
                let d = self.0.remove(i);
                self.0.insert(0, d.clone());
                d
            }
            None => {
                if self.0.len() == Recent::LEN {
                    self.0.pop();
                }
                self.0.insert(0, doc.clone());
                doc
            }
        }
    }
}

/// One `Ports` entry of a `docker ps` row: `{"PrivatePort","Type"}`, or with a binding
/// `{"IP","PrivatePort","PublicPort","Type"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsPort {
    /// The binding's host address and port; `None` for a port that is not published.
    pub public: Option<(Arc<str>, i64)>,
    pub private_port: i64,
    /// `tcp`, `udp`, … (interned).
    pub typ: Arc<str>,
}

impl PsPort {
    /// Binds on every address: `ps` shows the node's address instead.
    pub fn any_address(ip: &str) -> bool {
        matches!(ip, "0.0.0.0" | "::")
    }

    /// The entry as the reference serializer writes it, with `node_ip` for an any-address binding.
    pub fn to_value(&self, node_ip: &str) -> Value {
        match &self.public {
            Some((ip, port)) => {
                let ip = if PsPort::any_address(ip) { node_ip } else { ip };
                json!({"IP": ip, "PrivatePort": self.private_port, "PublicPort": port, "Type": &*self.typ})
            }
            None => json!({"PrivatePort": self.private_port, "Type": &*self.typ}),
        }
    }
}

/// True when `s` goes into a JSON string as it is (what serde_json escapes: `"`, `\`, controls).
/// Eight bytes at a time: a byte below 0x20, or equal to `"` or `\`, sets its high bit in one of
/// the three words (the classic "has a zero byte" test).
pub fn plain(s: &str) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut chunks = s.as_bytes().chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        let control = v.wrapping_sub(ONES * 0x20) & !v & HIGH;
        if control | zero(v ^ (ONES * b'"' as u64)) | zero(v ^ (ONES * b'\\' as u64)) != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Appends `s` escaped as serde_json escapes it, without quotes.
pub fn escaped(buf: &mut Vec<u8>, s: &str) {
    if plain(s) {
        buf.extend_from_slice(s.as_bytes());
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in s.bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0x08 => buf.extend_from_slice(b"\\b"),
            0x0c => buf.extend_from_slice(b"\\f"),
            b if b < 0x20 => buf.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]),
            b => buf.push(b),
        }
    }
}

/// Appends `s` as a JSON string.
pub fn string(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    escaped(buf, s);
    buf.push(b'"');
}

/// Appends an integer.
pub fn int(buf: &mut Vec<u8>, n: i64) {
    let mut b = itoa_buf(n);
    buf.extend_from_slice(b.as_slice());
}

/// An integer's decimal digits, without an allocation.
fn itoa_buf(n: i64) -> Digits {
    let mut d = Digits { b: [0; 20], start: 20 };
    let neg = n < 0;
    let mut u = n.unsigned_abs();
    loop {
        d.start -= 1;
        d.b[d.start] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        d.start -= 1;
        d.b[d.start] = b'-';
    }
    d
}

struct Digits {
    b: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_slice(&mut self) -> &[u8] {
        &self.b[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_integers_are_written_as_serde_writes_them() {
        for s in ["", "plain", "q\"uote", "back\\slash", "line\nbreak\r\t", "\u{1}\u{8}\u{c}\u{1f}", "ünï€ode", "mix\"\\\u{7f}"] {
            let mut buf = vec![];
            string(&mut buf, s);
            assert_eq!(String::from_utf8(buf).unwrap(), serde_json::to_string(s).unwrap(), "{s:?}");
        }
        for n in [0, 7, -1, 42, i64::MAX, i64::MIN, 1_700_000_000] {
            let mut buf = vec![];
            int(&mut buf, n);
            assert_eq!(String::from_utf8(buf).unwrap(), n.to_string());
        }
    }

    #[test]
    fn plain_finds_every_byte_json_escapes() {
        let naive = |s: &str| s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
        for len in [1, 7, 8, 9, 16, 23, 64] {
            for at in 0..len {
                for b in 0u8..0x80 {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    let s = String::from_utf8(v).unwrap();
                    assert_eq!(plain(&s), naive(&s), "{s:?}");
                }
                let s: String = (0..len).map(|i| if i == at { 'é' } else { 'x' }).collect();
                assert!(plain(&s));
            }
        }
        assert!(plain("") && plain(&"\u{7f}\u{80}ÿ€".repeat(5)));
    }

    #[test]
    fn raw_json_keeps_the_document() {
        let v = json!({"bridge": {"IPAddress": "172.17.0.2", "IPPrefixLen": 16, "Aliases": null, "DriverOpts": {}}});
        let r = RawJson::new(&v);
        assert_eq!(r.value(), v);
        assert_eq!(r.text().unwrap(), serde_json::to_string(&v).unwrap());
        assert!(RawJson::new(&Value::Null).is_null());
        assert_eq!(RawJson::new(&Value::Null).value(), Value::Null);
        assert_eq!(RawJson::new(&json!([])).text(), Some("[]"));
        assert!(RawJson::new(&json!({})).same(&RawJson::new(&json!({}))));
    }

    #[test]
    fn raw_documents_are_compacted_and_kept() {
        let raw = |t: &str| RawJson::from_raw(Some(&serde_json::value::RawValue::from_string(t.into()).unwrap()));
        let t = "{ \"b\" : [1, 2 ],\n\t\"a\":\"x y\\\" z\\\\\" , \"c\":{} }";
        assert_eq!(raw(t).text(), Some(r#"{"b":[1,2],"a":"x y\" z\\","c":{}}"#));
        assert_eq!(raw(t).value(), serde_json::from_str::<Value>(t).unwrap());
        assert_eq!(&*compact(r#"{"a":"b c"}"#), r#"{"a":"b c"}"#);
        assert!(matches!(compact(r#"{"a":"b c"}"#), std::borrow::Cow::Borrowed(_)));
        assert!(raw("null").is_null() && RawJson::from_raw(None).is_null());
        assert!(raw(" [ ] ").same(&RawJson::new(&json!([]))));
        assert!(raw("{}").same(&RawJson::new(&json!({}))));
    }

    #[test]
    fn equal_documents_and_strings_are_held_once() {
        let mut recent = Recent::default();
        let down = || RawJson::new(&json!({"bridge": {"IPAddress": ""}}));
        let first = recent.share(down());
        for i in 0..20 {
            let up = recent.share(RawJson::new(&json!({"bridge": {"IPAddress": format!("172.17.0.{i}")}})));
            assert_eq!(up.value()["bridge"]["IPAddress"], format!("172.17.0.{i}"));
            let again = recent.share(down());
            assert!(again.same(&first) && again == down());
        }
        assert!(Arc::ptr_eq(&share("sleep 1"), &share("sleep 1")));
        let long = "x".repeat(SHARED_LEN + 1);
        assert!(!Arc::ptr_eq(&share(&long), &share(&long)));
        assert_eq!(&*share(&long), long);
    }
}
