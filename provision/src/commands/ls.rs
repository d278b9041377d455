//! `ls` and `active`: every host queried in parallel with a per-host timeout; columns,
//! filters and `--format` as Docker Machine has them.
use super::{msg, CommandError, Ctx};
use crate::driver::{self, State};
use crate::host::Host;
use crate::provisioner::ca_paths;
use crate::template::Template;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const DEFAULT_FORMAT: &str =
    "table {{.Name}}\t{{.Active}}\t{{.DriverName}}\t{{.State}}\t{{.URL}}\t{{.Swarm}}\t{{.DockerVersion}}\t{{.Error}}";

#[derive(Debug, Clone, Default)]
pub struct LsArgs {
    pub quiet: bool,
    pub filters: Vec<String>,
    pub timeout: Duration,
    pub format: Option<String>,
}

#[derive(Debug, Default, Clone)]
struct Filters {
    name: Vec<regex::Regex>,
    driver: Vec<String>,
    state: Vec<String>,
    swarm: Vec<String>,
    label: Vec<String>,
}

fn parse_filters(fs: &[String]) -> Result<Filters, CommandError> {
    let mut f = Filters::default();
    for s in fs {
        let (k, v) = s.split_once('=').ok_or_else(|| msg("Unsupported filter syntax"))?;
        match k.to_lowercase().as_str() {
            "name" => f.name.push(regex::Regex::new(v).map_err(|e| msg(format!("invalid name filter {v:?}: {e}")))?),
            "driver" => f.driver.push(v.to_lowercase()),
            "state" => f.state.push(v.to_lowercase()),
            "swarm" => f.swarm.push(v.to_lowercase()),
            "label" => f.label.push(v.to_string()),
            _ => return Err(msg(format!("Unsupported filter key '{k}'"))),
        }
    }
    Ok(f)
}

/// The master whose discovery this host shares (its name), for the SWARM column.
fn swarm_master(h: &Host, all: &[Host]) -> String {
    let s = &h.host_options.swarm_options;
    if s.master {
        return format!("{} (master)", h.name);
    }
    if !s.is_swarm {
        return String::new();
    }
    all.iter()
        .find(|o| o.host_options.swarm_options.master && o.host_options.swarm_options.discovery == s.discovery)
        .map(|o| o.name.clone())
        .unwrap_or_default()
}

fn static_match(f: &Filters, h: &Host, all: &[Host]) -> bool {
    (f.name.is_empty() || f.name.iter().any(|r| r.is_match(&h.name)))
        && (f.driver.is_empty() || f.driver.contains(&h.driver_name.to_lowercase()))
        && (f.swarm.is_empty() || {
            let m = swarm_master(h, all);
            let m = m.trim_end_matches(" (master)").to_lowercase();
            f.swarm.contains(&m)
        })
        && (f.label.is_empty() || f.label.iter().any(|l| h.host_options.engine_options.labels.contains(l)))
}

fn row(name: &str, driver: &str, state: &str) -> BTreeMap<&'static str, Value> {
    let mut r = BTreeMap::new();
    for k in ["Active", "ActiveHost", "ActiveSwarm", "URL", "Swarm", "Error", "DockerVersion", "ResponseTime"] {
        r.insert(k, json!(""));
    }
    r.insert("Name", json!(name));
    r.insert("DriverName", json!(driver));
    r.insert("State", json!(state));
    r.insert("SwarmOptions", Value::Null);
    r.insert("EngineOptions", Value::Null);
    r
}

/// Everything `ls` shows about one host (queries the driver and the engine).
fn query(h: &Host, all: &[Host], timeout: Duration) -> BTreeMap<&'static str, Value> {
    let start = Instant::now();
    let mut r = row(&h.name, &h.driver_name, "");
    r.insert("SwarmOptions", serde_json::to_value(&h.host_options.swarm_options).unwrap_or_default());
    r.insert("EngineOptions", serde_json::to_value(&h.host_options.engine_options).unwrap_or_default());
    r.insert("Swarm", json!(swarm_master(h, all)));
    let d = match driver::load(h) {
        Ok(d) => d,
        Err(e) => {
            r.insert("DriverName", json!("not found"));
            r.insert("State", json!("Error"));
            r.insert("Error", json!(e.to_string()));
            return r;
        }
    };
    if let Some(why) = super::create::interrupted_create(std::path::Path::new(&h.host_options.auth_options.store_path)) {
        r.insert("State", json!("Error"));
        r.insert("Active", json!("-"));
        r.insert("Error", json!(why));
        return r;
    }
    let state = d.state(timeout);
    r.insert("State", json!(state.to_string()));
    let docker_host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let mut active = "-".to_string();
    if state == State::Running {
        match d.url() {
            Ok(url) => {
                r.insert("URL", json!(url));
                let ip = d.ip().unwrap_or_default();
                let ip = ip
                    .rsplit_once(':')
                    .filter(|(h, p)| !h.contains(':') && p.parse::<u16>().is_ok())
                    .map(|(h, _)| h.to_string())
                    .unwrap_or(ip);
                let swarm_url = format!("tcp://{}", driver::generic::join_host_port(&ip, h.host_options.swarm_options.manager_port()));
                if !docker_host.is_empty() && docker_host == url {
                    active = "*".into();
                    r.insert("ActiveHost", json!(true));
                } else if h.host_options.swarm_options.master && !docker_host.is_empty() && docker_host == swarm_url {
                    active = "* (swarm)".into();
                    r.insert("ActiveSwarm", json!(true));
                }
                let ca = ca_paths(h);
                let v = crate::tlsclient::client_config(&ca.ca_cert, &ca.client_cert, &ca.client_key)
                    .and_then(|cfg| crate::tlsclient::docker_version(&cfg, &ip, d.engine_port(), timeout));
                match v {
                    Ok(v) => {
                        r.insert("DockerVersion", json!(v));
                    }
                    Err(e) => {
                        r.insert("DockerVersion", json!("Unknown"));
                        r.insert("Error", json!(format!("Unable to query docker version: {e}")));
                    }
                }
            }
            Err(e) => {
                r.insert("Error", json!(e.to_string()));
            }
        }
    }
    r.insert("Active", json!(active));
    r.insert("ResponseTime", json!(format!("{}ms", start.elapsed().as_millis())));
    r
}

/// Queries `hosts` in parallel; a host that does not answer within `timeout` is `Timeout`.
fn query_all(hosts: &[Host], timeout: Duration) -> Vec<BTreeMap<&'static str, Value>> {
    let (tx, rx) = std::sync::mpsc::channel();
    for (i, h) in hosts.iter().enumerate() {
        let (tx, h, all) = (tx.clone(), h.clone(), hosts.to_vec());
        std::thread::spawn(move || {
            let _ = tx.send((i, query(&h, &all, timeout)));
        });
    }
    drop(tx);
    let mut rows: Vec<Option<BTreeMap<&'static str, Value>>> = vec![None; hosts.len()];
    let deadline = Instant::now() + timeout + Duration::from_millis(500);
    while rows.iter().any(|r| r.is_none()) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, r)) => rows[i] = Some(r),
            Err(_) => break,
        }
    }
    rows.into_iter().enumerate().map(|(i, r)| r.unwrap_or_else(|| row(&hosts[i].name, &hosts[i].driver_name, "Timeout"))).collect()
}

/// Header names for `table` formats.
fn header() -> Value {
    json!({"Name": "NAME", "Active": "ACTIVE", "ActiveHost": "ACTIVE_HOST", "ActiveSwarm": "ACTIVE_SWARM", "DriverName": "DRIVER",
        "State": "STATE", "URL": "URL", "SwarmOptions": "SWARM_OPTIONS", "Swarm": "SWARM", "EngineOptions": "ENGINE_OPTIONS",
        "Error": "ERRORS", "DockerVersion": "DOCKER", "ResponseTime": "RESPONSE"})
}

/// Aligns tab-separated cells like Go's tabwriter (minwidth 5, padding 3, spaces).
pub fn tabwrite(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = vec![];
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            let w = (c.chars().count() + 3).max(5);
            if widths.len() <= i {
                widths.push(w);
            } else {
                widths[i] = widths[i].max(w);
            }
        }
    }
    let mut out = String::new();
    for r in &rows {
        let n = r.len();
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i].saturating_sub(c.chars().count())));
            }
        }
        out.push('\n');
    }
    out
}

/// One `ls` row: field name → value (the template's data).
type Row = BTreeMap<&'static str, Value>;

fn load_all(ctx: &Ctx) -> Result<(Vec<Host>, Vec<Row>), CommandError> {
    let mut hosts = vec![];
    let mut broken = vec![];
    for n in ctx.store.list()? {
        match ctx.store.load(&n) {
            Ok(h) => hosts.push(h),
            Err(e) => {
                let mut r = row(&n, "not found", "Error");
                r.insert("Error", json!(e.to_string()));
                broken.push(r);
            }
        }
    }
    Ok((hosts, broken))
}

pub fn ls(ctx: &Ctx, a: &LsArgs) -> Result<(), CommandError> {
    let f = parse_filters(&a.filters)?;
    let (all, broken) = load_all(ctx)?;
    let hosts: Vec<Host> = all.iter().filter(|h| static_match(&f, h, &all)).cloned().collect();
    if a.quiet && f.state.is_empty() {
        for h in &hosts {
            println!("{}", h.name);
        }
        return Ok(());
    }
    let mut rows = query_all(&hosts, a.timeout);
    if f.name.is_empty() && f.driver.is_empty() && f.swarm.is_empty() && f.label.is_empty() {
        rows.extend(broken);
    }
    if !f.state.is_empty() {
        rows.retain(|r| f.state.contains(&r["State"].as_str().unwrap_or("").to_lowercase()));
    }
    rows.sort_by(|x, y| {
        crate::store::natural_cmp(&x["Name"].as_str().unwrap_or("").to_lowercase(), &y["Name"].as_str().unwrap_or("").to_lowercase())
    });
    if a.quiet {
        for r in &rows {
            println!("{}", r["Name"].as_str().unwrap_or(""));
        }
        return Ok(());
    }
    let fmt = a.format.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_FORMAT.into());
    let fmt = fmt.replace("\\t", "\t").replace("\\n", "\n");
    let (table, body) = match fmt.strip_prefix("table") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => (true, rest.trim_start_matches(' ').to_string()),
        _ => (false, fmt.clone()),
    };
    let body = if table && body.trim().is_empty() { DEFAULT_FORMAT.trim_start_matches("table ").to_string() } else { body };
    let t = Template::parse(&body).map_err(msg)?;
    let mut lines = vec![];
    if table {
        lines.push(t.execute(&header()).map_err(msg)?);
    }
    for r in &rows {
        let v = serde_json::to_value(r).map_err(msg)?;
        lines.push(t.execute(&v).map_err(msg)?);
    }
    let lines: Vec<String> = lines.iter().flat_map(|l| l.split('\n').map(String::from).collect::<Vec<_>>()).collect();
    print!("{}", tabwrite(&lines));
    Ok(())
}

pub fn active(ctx: &Ctx, timeout: Duration) -> Result<(), CommandError> {
    let (all, _) = load_all(ctx)?;
    if std::env::var("DOCKER_HOST").unwrap_or_default().is_empty() {
        return Err(msg("No active host found"));
    }
    let rows = query_all(&all, timeout);
    if let Some(r) = rows.iter().find(|r| r["ActiveHost"] == json!(true) || r["ActiveSwarm"] == json!(true)) {
        println!("{}", r["Name"].as_str().unwrap_or(""));
        return Ok(());
    }
    if rows.iter().any(|r| r["State"] == json!("Timeout")) {
        return Err(msg("Error getting active host: timeout"));
    }
    Err(msg("No active host found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert_eq!(parse_filters(&["foo".into()]).unwrap_err().to_string(), "Unsupported filter syntax");
        assert_eq!(parse_filters(&["foo=bar".into()]).unwrap_err().to_string(), "Unsupported filter key 'foo'");
        let f = parse_filters(&["name=^m[0-9]$".into(), "driver=Generic".into(), "state=running".into()]).unwrap();
        assert_eq!(f.driver, vec!["generic"]);
        assert!(f.name[0].is_match("m1") && !f.name[0].is_match("m10"));
    }

    #[test]
    fn tabwriter_like_go() {
        let out = tabwrite(&["NAME\tACTIVE\tURL".into(), "m1\t-\ttcp://1.2.3.4:2376".into()]);
        assert_eq!(out, "NAME   ACTIVE   URL\nm1     -        tcp://1.2.3.4:2376\n");
    }

    #[test]
    fn default_header() {
        let t = Template::parse(DEFAULT_FORMAT.trim_start_matches("table ")).unwrap();
        assert_eq!(t.execute(&header()).unwrap(), "NAME\tACTIVE\tDRIVER\tSTATE\tURL\tSWARM\tDOCKER\tERRORS");
    }
}
