//! What each instruction does to the stage: a config change (ENV, LABEL, CMD, ...), a `RUN`,
//! or a `COPY`/`ADD`. Variables are substituted here, with the stage's ARGs and ENV.
use super::copy::CopySpec;
use super::parser::Instruction;
use super::shell;
use super::steps::Stage;
use super::BuildError;
use serde_json::{json, Map, Value};

#[derive(Debug)]
pub enum Effect {
    /// Only the config changes; `descriptor` is the step as recorded (`ENV A=b`).
    Meta {
        descriptor: String,
        config: Map<String, Value>,
    },
    /// A command run in a container; `args` are the build args it sees (`k=v`).
    Run {
        argv: Vec<String>,
        args: Vec<String>,
    },
    Copy(CopySpec),
}

pub fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
        _ => vec![],
    }
}

/// `Env` of a config as pairs.
pub fn env_pairs(config: &Map<String, Value>) -> Vec<(String, String)> {
    strings(config.get("Env"))
        .into_iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e, String::new()),
        })
        .collect()
}

fn shell_of(config: &Map<String, Value>) -> Vec<String> {
    let s = strings(config.get("Shell"));
    if s.is_empty() {
        vec!["/bin/sh".into(), "-c".into()]
    } else {
        s
    }
}

/// The exec form as written, or the shell form run by the stage's SHELL.
fn command(i: &Instruction, config: &Map<String, Value>) -> Vec<String> {
    match &i.json {
        Some(v) => v.clone(),
        None => {
            let mut argv = shell_of(config);
            argv.push(i.rest.clone());
            argv
        }
    }
}

/// Go duration (`30s`, `1m30s`, `500ms`) as nanoseconds.
pub fn duration_ns(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Some(total as i64)
}

fn parse_err(i: &Instruction, msg: impl Into<String>) -> BuildError {
    BuildError::Parse { line: i.line, msg: msg.into() }
}

/// The effect of one instruction (not FROM or ARG) on `stage`.
pub fn effect(stage: &mut Stage, i: &Instruction, esc: char) -> Result<Effect, BuildError> {
    let vars = stage.vars();
    let mut config = stage.config.clone();
    let word = |s: &str| shell::word(s, esc, &vars, i.line);
    let meta = |descriptor: String, config: Map<String, Value>| Ok(Effect::Meta { descriptor, config });
    if !matches!(i.cmd.as_str(), "RUN" | "COPY" | "ADD" | "HEALTHCHECK") {
        i.check_flags(&[])?;
    }
    match i.cmd.as_str() {
        "ENV" | "LABEL" => {
            let pairs = shell::key_values(&i.rest, esc, &vars, i.line, &i.cmd)?;
            let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if i.cmd == "ENV" {
                let mut env = strings(config.get("Env"));
                for (k, v) in &pairs {
                    env.retain(|e| e.split_once('=').map(|(ek, _)| ek).unwrap_or(e) != k);
                    env.push(format!("{k}={v}"));
                }
                config.insert("Env".into(), json!(env));
            } else {
                let mut labels = config.get("Labels").and_then(|l| l.as_object()).cloned().unwrap_or_default();
                for (k, v) in pairs {
                    labels.insert(k, json!(v));
                }
                config.insert("Labels".into(), Value::Object(labels));
            }
            meta(format!("{} {}", i.cmd, shown.join(" ")), config)
        }
        "MAINTAINER" => {
            stage.author = word(&i.rest)?;
            meta(format!("MAINTAINER {}", stage.author), config)
        }
        "CMD" | "ENTRYPOINT" => {
            let argv = if i.rest.trim().is_empty() { vec![] } else { command(i, &config) };
            if i.cmd == "CMD" {
                config.insert("Cmd".into(), json!(argv));
                stage.cmd_set = true;
            } else {
                config.insert("Entrypoint".into(), json!(argv));
                if !stage.cmd_set {
                    config.insert("Cmd".into(), Value::Null);
                }
            }
            meta(format!("{} {}", i.cmd, serde_json::to_string(&argv).unwrap_or_default()), config)
        }
        "SHELL" => {
            let argv = i.json.clone().ok_or_else(|| parse_err(i, "SHELL requires the arguments to be in JSON form"))?;
            config.insert("Shell".into(), json!(argv));
            meta(format!("SHELL {}", serde_json::to_string(&argv).unwrap_or_default()), config)
        }
        "WORKDIR" => {
            let w = word(&i.rest)?;
            let base = config.get("WorkingDir").and_then(|v| v.as_str()).unwrap_or("").to_string();
            let joined = if w.starts_with('/') { w } else { format!("{}/{w}", if base.is_empty() { "/" } else { &base }) };
            let clean = crate::volume::spec::clean_path(&joined);
            config.insert("WorkingDir".into(), json!(clean));
            meta(format!("WORKDIR {clean}"), config)
        }
        "USER" | "STOPSIGNAL" => {
            let v = word(&i.rest)?;
            if i.cmd == "STOPSIGNAL" {
                crate::container::parse_signal(&v).map_err(|_| parse_err(i, format!("invalid signal: {v}")))?;
            }
            config.insert(if i.cmd == "USER" { "User" } else { "StopSignal" }.into(), json!(v));
            meta(format!("{} {v}", i.cmd), config)
        }
        "EXPOSE" => {
            let mut ports = config.get("ExposedPorts").and_then(|l| l.as_object()).cloned().unwrap_or_default();
            let mut shown = vec![];
            for p in shell::words(&i.rest, esc, &vars, i.line)? {
                let p = if p.contains('/') { p.to_ascii_lowercase() } else { format!("{p}/tcp") };
                let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let ok = num.split('-').all(|n| n.parse::<u16>().is_ok()) && matches!(proto, "tcp" | "udp" | "sctp");
                if !ok {
                    return Err(parse_err(i, format!("invalid port: {p}")));
                }
                shown.push(p.clone());
                ports.insert(p, json!({}));
            }
            config.insert("ExposedPorts".into(), Value::Object(ports));
            meta(format!("EXPOSE {}", shown.join(" ")), config)
        }
        "VOLUME" => {
            let list = match &i.json {
                Some(v) => v.iter().map(|x| word(x)).collect::<Result<Vec<_>, _>>()?,
                None => shell::words(&i.rest, esc, &vars, i.line)?,
            };
            let mut vols = config.get("Volumes").and_then(|l| l.as_object()).cloned().unwrap_or_default();
            for v in &list {
                if v.trim().is_empty() {
                    return Err(parse_err(i, "VOLUME specified can not be an empty string"));
                }
                vols.insert(v.clone(), json!({}));
            }
            config.insert("Volumes".into(), Value::Object(vols));
            meta(format!("VOLUME {}", serde_json::to_string(&list).unwrap_or_default()), config)
        }
        "ONBUILD" => {
            let inner = super::parser::instruction(i.rest.trim(), i.line)?;
            if matches!(inner.cmd.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(parse_err(i, format!("{} isn't allowed as an ONBUILD trigger", inner.cmd)));
            }
            let mut triggers = strings(config.get("OnBuild"));
            triggers.push(inner.original.clone());
            config.insert("OnBuild".into(), json!(triggers));
            meta(format!("ONBUILD {}", inner.original), config)
        }
        "HEALTHCHECK" => {
            i.check_flags(&["interval", "timeout", "start-period", "retries"])?;
            let (kind, rest) = i.rest.trim().split_once(char::is_whitespace).unwrap_or((i.rest.trim(), ""));
            let hc = match kind.to_ascii_uppercase().as_str() {
                "NONE" if rest.trim().is_empty() => json!({ "Test": ["NONE"] }),
                "CMD" => {
                    let inner = super::parser::instruction(&format!("CMD {rest}"), i.line)?;
                    let test = match inner.json {
                        Some(v) => std::iter::once("CMD".to_string()).chain(v).collect::<Vec<_>>(),
                        None => vec!["CMD-SHELL".into(), rest.trim().to_string()],
                    };
                    let mut hc = json!({ "Test": test });
                    for (flag, field) in [("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod")] {
                        if let Some(v) = i.flag(flag) {
                            let ns = duration_ns(v).ok_or_else(|| parse_err(i, format!("invalid duration for --{flag}: {v}")))?;
                            hc[field] = json!(ns);
                        }
                    }
                    if let Some(r) = i.flag("retries") {
                        let n: i64 = r.parse().map_err(|_| parse_err(i, format!("invalid --retries: {r}")))?;
                        hc["Retries"] = json!(n);
                    }
                    hc
                }
                _ => return Err(parse_err(i, "HEALTHCHECK requires CMD or NONE")),
            };
            config.insert("Healthcheck".into(), hc.clone());
            meta(format!("HEALTHCHECK {hc}"), config)
        }
        "RUN" => {
            i.check_flags(&[])?;
            Ok(Effect::Run { argv: command(i, &config), args: stage.run_args() })
        }
        "COPY" | "ADD" => Ok(Effect::Copy(CopySpec::parse(i, esc, &vars, &config)?)),
        other => Err(parse_err(i, format!("unknown instruction: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::parser::instruction;

    fn apply(stage: &mut Stage, line: &str) -> Map<String, Value> {
        match effect(stage, &instruction(line, 1).unwrap(), '\\').unwrap() {
            Effect::Meta { config, .. } => {
                stage.config = config.clone();
                config
            }
            _ => panic!("not a metadata instruction: {line}"),
        }
    }

    #[test]
    fn config_changes() {
        let mut s = Stage { args: vec![("V".into(), Some("7".into()))], ..Default::default() };
        apply(&mut s, "ENV A=$V B=${NOPE:-dflt}");
        apply(&mut s, "ENV A=${A}x");
        apply(&mut s, "WORKDIR /srv");
        apply(&mut s, "WORKDIR app/$V");
        apply(&mut s, "CMD echo hi");
        let c = apply(&mut s, "ENTRYPOINT [\"/bin/env\"]");
        assert_eq!(strings(c.get("Env")), ["B=dflt", "A=7x"]);
        assert_eq!(c["WorkingDir"], "/srv/app/7");
        assert_eq!(strings(c.get("Cmd")), ["/bin/sh", "-c", "echo hi"], "a CMD of this stage survives ENTRYPOINT");
        let c = apply(&mut s, "HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost");
        assert_eq!(c["Healthcheck"], json!({"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 5_000_000_000i64, "Retries": 2}));
        let c = apply(&mut s, "ONBUILD RUN echo later");
        assert_eq!(strings(c.get("OnBuild")), ["RUN echo later"]);
        let c = apply(&mut s, "EXPOSE 80 53/UDP");
        assert!(c["ExposedPorts"].get("53/udp").is_some() && c["ExposedPorts"].get("80/tcp").is_some());
        assert!(effect(&mut s, &instruction("EXPOSE abc", 4).unwrap(), '\\').is_err());
        assert!(effect(&mut s, &instruction("ONBUILD FROM x", 4).unwrap(), '\\').is_err());
        assert!(effect(&mut s, &instruction("RUN --mount=type=cache true", 4).unwrap(), '\\')
            .unwrap_err()
            .to_string()
            .contains("unknown flag: mount"));
        assert_eq!(duration_ns("1m30s"), Some(90_000_000_000));
    }
}
