//! The image config JSON (Docker image spec v1 / OCI image config), read leniently, and the
//! Dockerfile-style `changes` that `docker import -c` applies to it.
use super::{ImageError, ImageRunConfig};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub typ: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The fields of an image config we use; the blob itself is kept byte for byte.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default)]
    pub docker_version: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub container_config: Option<Value>,
    #[serde(default)]
    pub history: Vec<History>,
    #[serde(default)]
    pub rootfs: RootFs,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![],
    }
}

fn string(v: Option<&Value>) -> String {
    v.and_then(|x| x.as_str()).unwrap_or_default().to_string()
}

impl ImageConfigFile {
    pub fn parse(bytes: &[u8]) -> Result<Self, ImageError> {
        serde_json::from_slice(bytes).map_err(|e| ImageError::Invalid(format!("invalid image config: {e}")))
    }

    /// The `config` object's fields a container inherits.
    pub fn run_config(&self) -> ImageRunConfig {
        let Some(c) = self.config.as_ref() else { return ImageRunConfig::default() };
        ImageRunConfig {
            env: strings(c.get("Env")),
            cmd: strings(c.get("Cmd")),
            entrypoint: strings(c.get("Entrypoint")),
            working_dir: string(c.get("WorkingDir")),
            user: string(c.get("User")),
            labels: c
                .get("Labels")
                .and_then(|l| l.as_object())
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default(),
            exposed_ports: c.get("ExposedPorts").and_then(|p| p.as_object()).map(|m| m.keys().cloned().collect()).unwrap_or_default(),
            stop_signal: c.get("StopSignal").and_then(|s| s.as_str()).filter(|s| !s.is_empty()).map(String::from),
            healthcheck: c.get("Healthcheck").filter(|h| h.is_object()).and_then(|h| serde_json::from_value(h.clone()).ok()),
        }
    }

    /// Seconds since the epoch of `created` (0 when absent or malformed).
    pub fn created_unix(&self) -> i64 {
        self.created.as_deref().and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()).map(|t| t.timestamp()).unwrap_or(0)
    }
}

/// Docker's zero-valued container config, as `docker import` marshals it.
pub fn empty_container_config() -> Map<String, Value> {
    let v = json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
        "Entrypoint": null, "OnBuild": null, "Labels": null
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Splits `CMD ["a","b"]` (JSON form) or `CMD a b` (shell form, run with `/bin/sh -c`).
fn exec_or_shell(rest: &str) -> Vec<String> {
    let t = rest.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), t.into()]
}

/// Splits `k=v k2="v 2"` pairs (or the legacy `k v` single pair).
fn key_values(rest: &str, what: &str) -> Result<Vec<(String, String)>, ImageError> {
    let words = shell_words(rest);
    if words.is_empty() {
        return Err(ImageError::Invalid(format!("{what} requires at least one argument")));
    }
    if !words[0].contains('=') {
        let (k, v) = rest.trim().split_once(char::is_whitespace).unwrap_or((rest.trim(), ""));
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| ImageError::Invalid(format!("{what} names can not be blank")))
        })
        .collect()
}

/// Whitespace-separated words with `"..."`/`'...'` quotes and `\` escapes.
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut quote: Option<char> = None;
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                have = true;
            }
            (Some(q), c) if c == q => quote = None,
            (_, '\\') => {
                if let Some(n) = it.next() {
                    cur.push(n);
                }
                have = true;
            }
            (_, c) => {
                cur.push(c);
                have = true;
            }
        }
    }
    if have {
        out.push(cur);
    }
    out
}

/// Applies `docker import --change` instructions to a container config object.
pub fn apply_changes(cfg: &mut Map<String, Value>, changes: &[String]) -> Result<(), ImageError> {
    for change in changes.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
        let (instr, rest) = change.split_once(char::is_whitespace).unwrap_or((change, ""));
        let rest = rest.trim();
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => {
                cfg.insert("Cmd".into(), json!(exec_or_shell(rest)));
            }
            "ENTRYPOINT" => {
                cfg.insert("Entrypoint".into(), json!(exec_or_shell(rest)));
            }
            "ENV" => {
                let mut env: Vec<String> = strings(cfg.get("Env"));
                for (k, v) in key_values(rest, "ENV")? {
                    env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()) && e != &k);
                    env.push(format!("{k}={v}"));
                }
                cfg.insert("Env".into(), json!(env));
            }
            "LABEL" => {
                let mut labels = cfg.get("Labels").and_then(|l| l.as_object()).cloned().unwrap_or_default();
                for (k, v) in key_values(rest, "LABEL")? {
                    labels.insert(k, Value::String(v));
                }
                cfg.insert("Labels".into(), Value::Object(labels));
            }
            "WORKDIR" => {
                cfg.insert("WorkingDir".into(), json!(rest));
            }
            "USER" => {
                cfg.insert("User".into(), json!(rest));
            }
            "STOPSIGNAL" => {
                cfg.insert("StopSignal".into(), json!(rest));
            }
            "EXPOSE" => {
                let mut ports = cfg.get("ExposedPorts").and_then(|l| l.as_object()).cloned().unwrap_or_default();
                for p in rest.split_whitespace() {
                    let p = if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
                    ports.insert(p, json!({}));
                }
                cfg.insert("ExposedPorts".into(), Value::Object(ports));
            }
            "VOLUME" => {
                let mut vols = cfg.get("Volumes").and_then(|l| l.as_object()).cloned().unwrap_or_default();
                let list = if rest.starts_with('[') { exec_or_shell(rest) } else { shell_words(rest) };
                for v in list {
                    vols.insert(v, json!({}));
                }
                cfg.insert("Volumes".into(), Value::Object(vols));
            }
            "ONBUILD" => {
                let mut ob = strings(cfg.get("OnBuild"));
                ob.push(rest.to_string());
                cfg.insert("OnBuild".into(), json!(ob));
            }
            other => {
                return Err(ImageError::Invalid(format!("{other} is not a valid change command")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_like_dockerfile() {
        let mut c = empty_container_config();
        let ch: Vec<String> = [
            r#"CMD ["sh"]"#,
            "ENTRYPOINT /bin/echo hi",
            "ENV A=1 B=\"two words\"",
            "ENV C 3",
            "ENV A=9",
            "WORKDIR /srv",
            "USER nobody",
            "LABEL a=b \"c d\"=e",
            "EXPOSE 80 53/udp",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        apply_changes(&mut c, &ch).unwrap();
        let f = ImageConfigFile { config: Some(Value::Object(c)), ..Default::default() };
        let r = f.run_config();
        assert_eq!(r.cmd, vec!["sh"]);
        assert_eq!(r.entrypoint, vec!["/bin/sh", "-c", "/bin/echo hi"]);
        assert_eq!(r.env, vec!["B=two words", "C=3", "A=9"]);
        assert_eq!(r.working_dir, "/srv");
        assert_eq!(r.user, "nobody");
        assert_eq!(r.labels.get("c d").map(String::as_str), Some("e"));
        assert_eq!(r.exposed_ports, vec!["53/udp", "80/tcp"]);
        let mut c = empty_container_config();
        assert!(apply_changes(&mut c, &["RUN x".into()]).is_err());
    }

    #[test]
    fn parses_docker_and_oci_configs() {
        let f = ImageConfigFile::parse(
            br#"{"architecture":"amd64","os":"linux","created":"2023-05-01T10:00:00.5Z",
                "config":{"Env":["PATH=/bin"],"Cmd":["sh"],"ExposedPorts":{"80/tcp":{}},"Labels":{"x":"y"}},
                "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(f.created_unix(), 1682935200);
        assert_eq!(f.run_config().env, vec!["PATH=/bin"]);
        assert_eq!(f.rootfs.diff_ids, vec!["sha256:aa"]);
        assert!(ImageConfigFile::parse(b"{").is_err());
    }
}
