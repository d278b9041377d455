//! A Docker Registry HTTP API v2 client: endpoint probing (https, then http for insecure
//! registries), bearer-token and basic auth, manifests and blobs.
use super::manifest;
use super::ImageError;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use std::sync::Mutex;

/// Credentials from the `X-Registry-Auth` header.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

impl Credentials {
    /// Decodes the base64url JSON header (`e30=` = `{}` = none). Malformed headers count as none.
    pub fn from_header(h: &str) -> Option<Credentials> {
        let bytes = base64_decode(h.trim())?;
        let c: Credentials = serde_json::from_slice(&bytes).ok()?;
        (!c.username.is_empty() || !c.identity_token.is_empty() || !c.registry_token.is_empty()).then_some(c)
    }
}

/// Standard or URL-safe base64, padding optional.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// 127.0.0.0/8 and localhost always; then `--insecure-registry` entries (CIDRs or host[:port]).
pub fn is_insecure(host: &str, insecure: &[String]) -> bool {
    let bare = host_only(host);
    let ip: Option<std::net::IpAddr> = bare.trim_matches(|c| c == '[' || c == ']').parse().ok();
    if bare == "localhost"
        || ip.is_some_and(|i| match i {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(_) => false,
        })
    {
        return true;
    }
    insecure.iter().any(|entry| {
        let e = entry.trim().trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
        if e == host || e == bare {
            return true;
        }
        match (e.parse::<ipnetwork::IpNetwork>(), ip) {
            (Ok(net), Some(i)) if e.contains('/') => net.contains(i),
            _ => false,
        }
    })
}

fn host_only(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map(|(h, _)| &host[..h.len() + 1]).unwrap_or(host);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

/// The `errors` array of a registry error body, formatted like Go's errcode.Error.
#[derive(Debug, Clone)]
pub struct RemoteError {
    pub status: StatusCode,
    pub code: String,
    pub text: String,
}

impl RemoteError {
    async fn from_response(resp: Response) -> RemoteError {
        #[derive(Deserialize)]
        struct E {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<E>,
        }
        let status = resp.status();
        let body = read_capped(resp, MAX_ERROR_BODY, "error response").await.unwrap_or_default();
        match serde_json::from_slice::<Body>(&body).ok().and_then(|b| b.errors.into_iter().next()) {
            Some(e) => {
                let code_text = e.code.to_ascii_lowercase().replace('_', " ");
                RemoteError { status, text: format!("{code_text}: {}", e.message), code: e.code }
            }
            None => {
                let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
                let text = if snippet.is_empty() {
                    format!("unexpected status from registry: {status}")
                } else {
                    format!("unexpected status from registry: {status}: {snippet}")
                };
                RemoteError { status, code: String::new(), text }
            }
        }
    }
}

/// A client for one repository on one registry.
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    repo: String,
    creds: Option<Credentials>,
    auth: Mutex<Option<String>>,
}

/// Connect and idle limits of every registry call; small documents (manifests, tokens, configs)
/// also have a total one. Layers stream for as long as they keep coming.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
pub const TOTAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// Size caps of what is read whole (Docker's manifest limit is 4 MiB).
pub const MAX_MANIFEST: usize = 4 << 20;
pub const MAX_CONFIG: usize = 8 << 20;
pub const MAX_TOKEN_BODY: usize = 1 << 20;
pub const MAX_ERROR_BODY: usize = 64 << 10;

/// Reads a response body whole, failing once it passes `cap` bytes (an endless body ends the
/// pull with an error instead of exhausting memory).
pub async fn read_capped(resp: Response, cap: usize, what: &str) -> Result<Vec<u8>, ImageError> {
    use futures_util::StreamExt;
    let url = resp.url().to_string();
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ImageError::Registry(format!("{what} from {url} is larger than {cap} bytes")));
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| transport(&url, e))?;
        if out.len() + chunk.len() > cap {
            return Err(ImageError::Registry(format!("{what} from {url} is larger than {cap} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn transport(url: &str, e: reqwest::Error) -> ImageError {
    let mut msg = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    ImageError::Registry(format!("Get \"{url}\": {msg}"))
}

impl RegistryClient {
    /// Probes `/v2/` over https (and http when the registry is insecure) and authenticates.
    pub async fn connect(host: &str, repo: &str, insecure: bool, creds: Option<Credentials>) -> Result<Self, ImageError> {
        Self::connect_for(host, repo, insecure, creds, "pull").await
    }

    /// As [`Self::connect`], asking the token service for `actions` (`pull` or `pull,push`).
    pub async fn connect_for(
        host: &str,
        repo: &str,
        insecure: bool,
        creds: Option<Credentials>,
        actions: &str,
    ) -> Result<Self, ImageError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("flotilla/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(insecure)
            .connect_timeout(std::time::Duration::from_secs(15))
            // A registry that stops sending (a stalled body) fails the pull instead of hanging it.
            .read_timeout(IDLE_TIMEOUT)
            .build()
            .map_err(|e| ImageError::Registry(format!("cannot create registry client: {e}")))?;
        let schemes: &[&str] = if insecure { &["https", "http"] } else { &["https"] };
        let mut last_err = None;
        for scheme in schemes {
            let base = format!("{scheme}://{host}");
            let url = format!("{base}/v2/");
            match http.get(&url).send().await {
                Ok(resp) => {
                    let c = RegistryClient { http, base, repo: repo.to_string(), creds, auth: Mutex::new(None) };
                    c.authenticate(resp, actions).await?;
                    return Ok(c);
                }
                Err(e) => {
                    tracing::debug!(%url, error = %e, "registry endpoint failed");
                    last_err = Some(transport(&url, e));
                }
            }
        }
        Err(last_err.unwrap_or_else(|| ImageError::Registry(format!("no endpoint for {host}"))))
    }

    async fn authenticate(&self, ping: Response, actions: &str) -> Result<(), ImageError> {
        if ping.status() != StatusCode::UNAUTHORIZED {
            return Ok(());
        }
        let challenge = ping.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let (scheme, params) = parse_challenge(&challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            let c = self.creds.clone().unwrap_or_default();
            let v = format!("Basic {}", base64_encode(format!("{}:{}", c.username, c.password).as_bytes()));
            *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ImageError::Unauthorized(format!("unsupported registry auth challenge: {challenge:?}")));
        }
        let realm = params.iter().find(|(k, _)| k == "realm").map(|(_, v)| v.clone()).unwrap_or_default();
        let mut q: Vec<(String, String)> = params.iter().filter(|(k, _)| k == "service").cloned().collect();
        q.push(("scope".into(), format!("repository:{}:{actions}", self.repo)));
        let url =
            reqwest::Url::parse_with_params(&realm, &q).map_err(|e| ImageError::Registry(format!("invalid token realm {realm:?}: {e}")))?;
        let mut req = self.http.get(url);
        if let Some(c) = &self.creds {
            if !c.registry_token.is_empty() {
                *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("Bearer {}", c.registry_token));
                return Ok(());
            }
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let resp = req.send().await.map_err(|e| transport(&realm, e))?;
        if !resp.status().is_success() {
            let e = RemoteError::from_response(resp).await;
            return Err(ImageError::Unauthorized(format!("Get \"{realm}\": {}", e.text)));
        }
        #[derive(Deserialize)]
        struct Tok {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let body = read_capped(resp, MAX_TOKEN_BODY, "token response").await?;
        let t: Tok = serde_json::from_slice(&body).map_err(|e| ImageError::Registry(format!("invalid token response: {e}")))?;
        let tok = if t.token.is_empty() { t.access_token } else { t.token };
        *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("Bearer {tok}"));
        Ok(())
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = self.auth.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if let Ok(v) = a.parse() {
                h.insert(AUTHORIZATION, v);
            }
        }
        h
    }

    /// GET a manifest by tag or digest: (body, content type). Errors carry the registry's text.
    pub async fn manifest(&self, reference: &str) -> Result<Result<(Vec<u8>, Option<String>), RemoteError>, ImageError> {
        let url = format!("{}/v2/{}/manifests/{}", self.base, self.repo, reference);
        let resp = self
            .http
            .get(&url)
            .headers(self.headers())
            .header(ACCEPT, manifest::ACCEPT)
            .timeout(TOTAL_TIMEOUT)
            .send()
            .await
            .map_err(|e| transport(&url, e))?;
        if !resp.status().is_success() {
            return Ok(Err(RemoteError::from_response(resp).await));
        }
        let ct = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(String::from);
        let body = read_capped(resp, MAX_MANIFEST, &format!("manifest {reference}")).await?;
        Ok(Ok((body, ct)))
    }

    /// True when the registry already has the blob (`HEAD`).
    pub async fn has_blob(&self, digest: &str) -> Result<bool, ImageError> {
        let url = format!("{}/v2/{}/blobs/{}", self.base, self.repo, digest);
        let resp = self.http.head(&url).headers(self.headers()).send().await.map_err(|e| transport(&url, e))?;
        Ok(resp.status().is_success())
    }

    /// Uploads a blob in one request (POST an upload, PUT it with its digest).
    pub async fn put_blob(&self, digest: &str, data: Vec<u8>) -> Result<(), ImageError> {
        let url = format!("{}/v2/{}/blobs/uploads/", self.base, self.repo);
        let resp = self.http.post(&url).headers(self.headers()).send().await.map_err(|e| transport(&url, e))?;
        if resp.status() != StatusCode::ACCEPTED {
            let e = RemoteError::from_response(resp).await;
            return Err(ImageError::Registry(format!("starting the upload of {digest}: {}", e.text)));
        }
        let loc = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let loc = if loc.starts_with("http") { loc } else { format!("{}{loc}", self.base) };
        let mut put = reqwest::Url::parse(&loc).map_err(|e| ImageError::Registry(format!("bad upload location {loc:?}: {e}")))?;
        put.query_pairs_mut().append_pair("digest", digest);
        let resp = self
            .http
            .put(put)
            .headers(self.headers())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(data)
            .send()
            .await
            .map_err(|e| transport(&loc, e))?;
        if !resp.status().is_success() {
            let e = RemoteError::from_response(resp).await;
            return Err(ImageError::Registry(format!("uploading {digest}: {}", e.text)));
        }
        Ok(())
    }

    /// PUT a manifest under `reference` (a tag).
    pub async fn put_manifest(&self, reference: &str, media_type: &str, body: Vec<u8>) -> Result<(), ImageError> {
        let url = format!("{}/v2/{}/manifests/{}", self.base, self.repo, reference);
        let resp = self
            .http
            .put(&url)
            .headers(self.headers())
            .header(CONTENT_TYPE, media_type)
            .body(body)
            .send()
            .await
            .map_err(|e| transport(&url, e))?;
        if !resp.status().is_success() {
            let e = RemoteError::from_response(resp).await;
            return Err(ImageError::Registry(format!("uploading the manifest: {}", e.text)));
        }
        Ok(())
    }

    /// GET a blob; the response streams its body.
    pub async fn blob(&self, digest: &str) -> Result<Response, ImageError> {
        let url = format!("{}/v2/{}/blobs/{}", self.base, self.repo, digest);
        let resp = self.http.get(&url).headers(self.headers()).send().await.map_err(|e| transport(&url, e))?;
        if !resp.status().is_success() {
            let e = RemoteError::from_response(resp).await;
            return Err(ImageError::Registry(format!("error fetching blob {digest}: {}", e.text)));
        }
        Ok(resp)
    }
}

/// `Bearer realm="x",service="y"` -> ("Bearer", [(realm, x), (service, y)]).
pub fn parse_challenge(h: &str) -> (String, Vec<(String, String)>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, r)) = rest.split_once('=') else { break };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let r = r.trim_start();
        let (v, r) = if let Some(q) = r.strip_prefix('"') {
            match q.find('"') {
                Some(i) => (&q[..i], &q[i + 1..]),
                None => (q, ""),
            }
        } else {
            match r.find(',') {
                Some(i) => (&r[..i], &r[i..]),
                None => (r, ""),
            }
        };
        params.push((k, v.to_string()));
        rest = r.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_string(), params)
}

pub fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_header_and_challenges() {
        assert_eq!(Credentials::from_header("e30="), None);
        assert_eq!(Credentials::from_header("!!"), None);
        let h = base64_encode(br#"{"username":"u","password":"p?>"}"#).replace('+', "-").replace('/', "_");
        let c = Credentials::from_header(&h).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p?>"));
        assert_eq!(base64_encode(b"u:p"), "dTpw");
        assert_eq!(base64_decode("dTpw").unwrap(), b"u:p");
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p[0], ("realm".into(), "https://auth.docker.io/token".into()));
        assert_eq!(p[1].1, "registry.docker.io");
        assert_eq!(p[2].1, "repository:library/busybox:pull");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!((s.as_str(), p[0].1.as_str()), ("Basic", "Registry Realm"));
    }

    #[test]
    fn insecure_registries() {
        assert!(is_insecure("127.0.0.1:5000", &[]));
        assert!(is_insecure("127.5.0.1", &[]));
        assert!(is_insecure("localhost:5000", &[]));
        assert!(!is_insecure("10.0.0.5:5000", &[]));
        assert!(is_insecure("10.0.0.5:5000", &["10.0.0.0/8".into()]));
        assert!(is_insecure("myreg:5000", &["myreg:5000".into()]));
        assert!(is_insecure("myreg:5000", &["myreg".into()]));
        assert!(!is_insecure("other:5000", &["myreg:5000".into()]));
        assert!(!is_insecure("registry-1.docker.io", &[]));
    }
}
