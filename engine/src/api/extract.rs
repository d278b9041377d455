//! Extractors that answer bad input the Docker way: 400 with `{"message": ...}`.
use super::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// A JSON body; unknown fields are ignored, an empty body is `{}` where the type allows it.
pub struct DockerJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for DockerJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("failed to read request body: {e}")))?;
        let data: &[u8] = if bytes.iter().all(|b| b.is_ascii_whitespace()) { b"{}" } else { &bytes };
        serde_json::from_slice(data).map(DockerJson).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    }
}

/// Query parameters with Docker's lenient booleans (`1`, `true`, `True`; `0`, `false`, empty).
#[derive(Debug, Default, Clone)]
pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn parse(query: &str) -> Self {
        Params(url_pairs(query).into_iter().collect())
    }
    pub fn str(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(|s| s.as_str())
    }
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.str(k).map(|s| s.to_ascii_lowercase()).as_deref(), Some("1" | "true" | "yes"))
    }
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.str(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}"))),
        }
    }
    /// `filters={"label":{"a=b":true}}` or the old `{"label":["a=b"]}` form.
    pub fn filters(&self) -> Result<HashMap<String, Vec<String>>, ApiError> {
        parse_filters(self.str("filters").unwrap_or(""))
    }
}

pub fn parse_filters(raw: &str) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let mut out = HashMap::new();
    if raw.trim().is_empty() {
        return Ok(out);
    }
    let v: serde_json::Value = serde_json::from_str(raw).map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let obj = v.as_object().ok_or_else(|| ApiError::bad_request("invalid filter: not an object"))?;
    for (k, val) in obj {
        let vals: Vec<String> = match val {
            serde_json::Value::Object(m) => m.iter().filter(|(_, b)| b.as_bool().unwrap_or(true)).map(|(s, _)| s.clone()).collect(),
            serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
            serde_json::Value::String(s) => vec![s.clone()],
            _ => return Err(ApiError::bad_request(format!("invalid filter {k:?}"))),
        };
        out.insert(k.clone(), vals);
    }
    Ok(out)
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

/// Every value of `key` in a raw query (`names=a&names=b`), decoded.
pub fn all_values(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| pct_decode(k) == key)
        .map(|(_, v)| pct_decode(v))
        .collect()
}

/// Percent-decoding with `+` as space (form encoding, as Go's url.Values).
pub fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::parse(parts.uri.query().unwrap_or("")))
    }
}

/// Refuses the kernel memory limits of API 1.41 that the body types no longer have (they would
/// be dropped when the body is read): `obj` is the object that holds them, `prefix` names it in
/// the message (`HostConfig.` for a create, none for an update).
pub fn refuse_kernel_memory(obj: &serde_json::Value, prefix: &str) -> Result<(), ApiError> {
    for key in ["KernelMemory", "KernelMemoryTCP"] {
        if obj[key].as_i64().is_some_and(|v| v != 0) {
            return Err(ApiError::bad_request(format!(
                "{prefix}{key} (--kernel-memory) is not supported by this engine (cgroup kernel memory limits are deprecated)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn params() {
        let p = Params::parse("all=1&name=a%2Fb&x=true&t=5&f=&repo=busybox%3Alatest&s=a+b");
        assert!(p.flag("all"));
        assert!(p.flag("x"));
        assert!(!p.flag("f"));
        assert!(!p.flag("missing"));
        assert_eq!(p.str("name"), Some("a/b"));
        assert_eq!(p.str("repo"), Some("busybox:latest"));
        assert_eq!(p.str("s"), Some("a b"));
        assert_eq!(p.int("t").unwrap(), Some(5));
        assert!(Params::parse("t=x").int("t").is_err());
        assert_eq!(pct_decode("%"), "%");
        assert_eq!(pct_decode("a%2"), "a%2");
    }
    #[test]
    fn filters() {
        let f = parse_filters(r#"{"label":{"a=b":true},"status":["exited"]}"#).unwrap();
        assert_eq!(f["label"], vec!["a=b"]);
        assert_eq!(f["status"], vec!["exited"]);
        assert!(parse_filters("{bad").is_err());
    }
}
