//! `--log-driver`/`--log-opt` of a create (and the daemon's defaults): checked, and turned
//! into the runtime's [`LogConfig`].
use super::ContainerError;
use crate::runtime::options::{LogConfig, LogDriver};
use bollard_stubs::models::HostConfig;
use std::path::{Path, PathBuf};

fn invalid(msg: impl Into<String>) -> ContainerError {
    ContainerError::InvalidParam(msg.into())
}

/// go-units' `RAMInBytes`: `512`, `1k`, `10m`, `1.5g`, `2GiB` (binary multiples).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix("ib").or_else(|| t.strip_suffix('b')).unwrap_or(&t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        'p' => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v >= 0.0).then_some((v * mult as f64) as u64)
}

/// The file the shim writes a container's log to, and `docker logs` reads: `<id>-json.log`
/// (json-file) or `local-logs/container.log` (local, as dockerd) in the container's directory.
pub fn log_file(dir: &Path, id: &str, driver: LogDriver) -> PathBuf {
    match driver {
        LogDriver::Local => dir.join("local-logs").join("container.log"),
        _ => dir.join(format!("{id}-json.log")),
    }
}

/// dockerd's defaults of the `local` driver: rotated at 20 MB, 5 files kept, rotated files gzipped.
const LOCAL_MAX_SIZE: u64 = 20 << 20;
const LOCAL_MAX_FILE: u32 = 5;

/// `--log-driver` and `--log-opt`: json-file and local (with max-size/max-file/compress) and
/// none are served; other drivers dockerd knows are refused by name, unknown ones as dockerd does.
pub fn log_config(hc: &HostConfig) -> Result<LogConfig, ContainerError> {
    let lc = hc.log_config.clone().unwrap_or_default();
    let opts = lc.config.unwrap_or_default();
    let driver = match lc.typ.as_deref().unwrap_or("") {
        "" | "json-file" => LogDriver::JsonFile,
        "none" => LogDriver::None,
        "local" => LogDriver::Local,
        d @ ("syslog" | "journald" | "gelf" | "fluentd" | "awslogs" | "splunk" | "etwlogs" | "gcplogs" | "logentries") => {
            return Err(invalid(format!("logging driver {d:?} is not supported by this engine (json-file, local and none are)")))
        }
        d => return Err(invalid(format!("logger: no log driver named '{d}' is registered"))),
    };
    let mut cfg = LogConfig { driver, ..Default::default() };
    if driver == LogDriver::Local {
        (cfg.max_size, cfg.max_file, cfg.compress) = (Some(LOCAL_MAX_SIZE), LOCAL_MAX_FILE, true);
    }
    let name = match driver {
        LogDriver::Local => "local",
        _ => "json-file",
    };
    let mut keys: Vec<&String> = opts.keys().collect();
    keys.sort();
    for key in keys {
        let v = &opts[key];
        match (driver, key.as_str()) {
            (LogDriver::JsonFile | LogDriver::Local, "max-size") => {
                cfg.max_size = if v == "-1" {
                    None
                } else {
                    Some(parse_size(v).ok_or_else(|| invalid(format!("invalid max-size {v:?} for {name} log driver")))?)
                };
            }
            (LogDriver::JsonFile | LogDriver::Local, "max-file") => {
                let n: i64 = v.parse().map_err(|_| invalid(format!("invalid max-file {v:?} for {name} log driver")))?;
                if n < 1 {
                    return Err(invalid("max-file cannot be less than 1"));
                }
                cfg.max_file = n.min(u32::MAX as i64) as u32;
            }
            (LogDriver::JsonFile | LogDriver::Local, "compress") => {
                cfg.compress = v.parse::<bool>().map_err(|_| invalid(format!("invalid compress {v:?} for {name} log driver")))?;
            }
            // dockerd's json-file accepts a tag and does nothing with it either.
            (LogDriver::JsonFile, "tag") => {}
            (LogDriver::JsonFile, k @ ("labels" | "labels-regex" | "env" | "env-regex")) => {
                return Err(invalid(format!("log-opt {k} is not supported by this engine's json-file driver")))
            }
            (LogDriver::JsonFile | LogDriver::Local, k) => return Err(invalid(format!("unknown log opt '{k}' for {name} log driver"))),
            (LogDriver::None, k) => return Err(invalid(format!("unknown log opt '{k}' for none log driver"))),
        }
    }
    if cfg.max_file > 1 && cfg.max_size.is_none() {
        return Err(invalid("max-file cannot be set when max-size is not set"));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::HostConfigLogConfig;
    use std::collections::HashMap;

    fn err(hc: HostConfig) -> String {
        log_config(&hc).unwrap_err().to_string()
    }

    #[test]
    fn log_drivers_and_opts() {
        let lc = |t: &str, opts: &[(&str, &str)]| HostConfig {
            log_config: Some(HostConfigLogConfig {
                typ: Some(t.into()),
                config: Some(opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>()),
            }),
            ..Default::default()
        };
        let c = log_config(&lc("json-file", &[("max-size", "1k"), ("max-file", "2")])).unwrap();
        assert_eq!((c.driver, c.max_size, c.max_file), (LogDriver::JsonFile, Some(1024), 2));
        assert_eq!(log_config(&lc("none", &[])).unwrap().driver, LogDriver::None);
        let l = log_config(&lc("local", &[])).unwrap();
        assert_eq!((l.driver, l.max_size, l.max_file, l.compress), (LogDriver::Local, Some(20 << 20), 5, true));
        let l = log_config(&lc("local", &[("max-size", "1k"), ("max-file", "2"), ("compress", "false")])).unwrap();
        assert_eq!((l.max_size, l.max_file, l.compress), (Some(1024), 2, false));
        assert_eq!(err(lc("local", &[("tag", "x")])), "unknown log opt 'tag' for local log driver");
        assert_eq!(log_file(Path::new("/c"), "abc", LogDriver::Local), Path::new("/c/local-logs/container.log"));
        assert_eq!(log_file(Path::new("/c"), "abc", LogDriver::JsonFile), Path::new("/c/abc-json.log"));
        assert_eq!(err(lc("bogus", &[])), "logger: no log driver named 'bogus' is registered");
        assert!(err(lc("syslog", &[])).contains("\"syslog\""));
        assert_eq!(err(lc("json-file", &[("max-file", "2")])), "max-file cannot be set when max-size is not set");
        assert_eq!(err(lc("json-file", &[("mode", "x")])), "unknown log opt 'mode' for json-file log driver");
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1.5KiB"), Some(1536));
        assert_eq!(parse_size("x"), None);
    }
}
