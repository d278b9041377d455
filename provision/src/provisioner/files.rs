//! What a provisioned host holds, as pure functions of the machine's options: the command
//! line and environment of each Flotilla service (engine, swarm agent, swarm manager), the
//! systemd unit, and the small supervisor used where systemd is not PID 1.
use crate::host::{EngineOptions, Host, SwarmOptions};
use crate::ssh::quote;

pub const REMOTE_DIR: &str = "/etc/flotilla";
pub const REMOTE_BIN: &str = "/usr/local/bin/swarm";
pub const CTL: &str = "/etc/flotilla/ctl.sh";
pub const SUPERVISOR: &str = "/etc/flotilla/supervise.sh";
pub const CA: &str = "/etc/flotilla/ca.pem";
pub const SERVER_CERT: &str = "/etc/flotilla/server.pem";
pub const SERVER_KEY: &str = "/etc/flotilla/server-key.pem";
pub const ENGINE_SOCKET: &str = "unix:///var/run/flotilla.sock";
/// The CA of an https token service, copied from the user's `SWARM_DISCOVERY_CACERT`.
pub const DISCOVERY_CA: &str = "/etc/flotilla/discovery-ca.pem";

/// What the services get of the user's token-service settings: `SWARM_DISCOVERY_URL` as it
/// is, and `SWARM_DISCOVERY_CACERT` pointing at the host's copy of that CA (the file's path on
/// this machine means nothing on the host). Returns the env lines and the CA file to upload.
pub fn discovery_env(url: Option<String>, cacert: Option<String>) -> (Vec<String>, Option<String>) {
    let mut env = vec![];
    if let Some(u) = url {
        env.push(format!("SWARM_DISCOVERY_URL={u}"));
    }
    if cacert.is_some() {
        env.push(format!("SWARM_DISCOVERY_CACERT={DISCOVERY_CA}"));
    }
    (env, cacert)
}

/// A service the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Svc {
    Engine,
    Agent,
    Manager,
}

impl Svc {
    pub const ALL: [Svc; 3] = [Svc::Engine, Svc::Agent, Svc::Manager];
    pub fn name(&self) -> &'static str {
        match self {
            Svc::Engine => "engine",
            Svc::Agent => "agent",
            Svc::Manager => "manager",
        }
    }
    pub fn cmd_path(&self) -> String {
        format!("{REMOTE_DIR}/{}.cmd", self.name())
    }
    pub fn env_path(&self) -> String {
        format!("{REMOTE_DIR}/{}.env", self.name())
    }
    pub fn unit_path(&self) -> String {
        format!("/etc/systemd/system/flotilla-{}.service", self.name())
    }
}

/// `k=v` → `--k=v`; `k` → `--k` (Docker Machine's `--engine-opt`/`--swarm-opt`).
pub fn dash_flags(opts: &[String]) -> Vec<String> {
    opts.iter().filter(|o| !o.is_empty()).map(|o| if o.starts_with('-') { o.clone() } else { format!("--{o}") }).collect()
}

fn line(args: &[String]) -> String {
    let mut s = String::from("exec");
    for a in args {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s.push('\n');
    s
}

/// `/etc/flotilla/engine.cmd`: `swarm engine` serving TLS on `0.0.0.0:port` and the local socket.
pub fn engine_cmd(h: &Host, ip: &str, port: u16, driver_flags: &[String]) -> String {
    let mut a: Vec<String> = vec![REMOTE_BIN.into(), "engine".into()];
    a.extend(engine_args(h, ip, port, driver_flags));
    line(&a)
}

/// `--cluster-store`/`--cluster-advertise` (overlay networks): the store of
/// `--engine-cluster-store`, else a swarm's etcd discovery; advertised at `ip:port`, the
/// machine's engine address.
pub fn cluster_flags(e: &EngineOptions, s: &SwarmOptions, ip: &str, port: u16) -> Vec<String> {
    let store = if !e.cluster_store.is_empty() {
        e.cluster_store.clone()
    } else if s.is_swarm && s.discovery.starts_with("etcd://") {
        s.discovery.clone()
    } else {
        return vec![];
    };
    vec![format!("--cluster-store={store}"), format!("--cluster-advertise={}", crate::driver::generic::join_host_port(ip, port))]
}

/// The arguments of `swarm engine` on the machine at `ip` (what `swarm check-engine` validates).
pub fn engine_args(h: &Host, ip: &str, port: u16, driver_flags: &[String]) -> Vec<String> {
    let mut defaults = driver_flags.to_vec();
    defaults.extend(cluster_flags(&h.host_options.engine_options, &h.host_options.swarm_options, ip, port));
    option_args(&h.host_options.engine_options, &h.driver_name, port, &defaults)
}

/// The engine's flags from its options; `defaults` (driver and cluster flags) give way to an
/// `--engine-opt` of the same name.
fn option_args(e: &EngineOptions, driver_name: &str, port: u16, defaults: &[String]) -> Vec<String> {
    let mut a: Vec<String> = vec!["-H".into(), format!("tcp://0.0.0.0:{port}"), "-H".into(), ENGINE_SOCKET.into()];
    a.extend([
        "--tlsverify".into(),
        "--tlscacert".into(),
        CA.into(),
        "--tlscert".into(),
        SERVER_CERT.into(),
        "--tlskey".into(),
        SERVER_KEY.into(),
    ]);
    for l in &e.labels {
        a.extend(["--label".into(), l.clone()]);
    }
    a.extend(["--label".into(), format!("provider={driver_name}")]);
    for r in &e.insecure_registry {
        a.extend(["--insecure-registry".into(), r.clone()]);
    }
    for m in &e.registry_mirror {
        a.extend(["--registry-mirror".into(), m.clone()]);
    }
    if !e.graph_dir.is_empty() {
        a.extend(["--data-root".into(), e.graph_dir.clone()]);
    }
    if !e.log_level.is_empty() {
        a.extend(["--log-level".into(), e.log_level.clone()]);
    }
    if !e.storage_driver.is_empty() {
        a.extend(["--storage-driver".into(), e.storage_driver.clone()]);
    }
    // A user's --engine-opt replaces a default flag of the same name.
    let user = dash_flags(&e.arbitrary_flags);
    let name = |f: &str| f.split('=').next().unwrap_or(f).to_string();
    a.extend(defaults.iter().filter(|d| !user.iter().any(|u| name(u) == name(d))).cloned());
    a.extend(user);
    a
}

/// `/etc/flotilla/agent.cmd`: registers the engine's address in discovery (`swarm join`).
pub fn agent_cmd(h: &Host, ip: &str, port: u16) -> String {
    let s = &h.host_options.swarm_options;
    let mut a: Vec<String> = vec![REMOTE_BIN.into()];
    if s.is_experimental {
        a.push("--experimental".into());
    }
    a.extend(["join".into(), "--no-engine".into(), "--advertise".into(), crate::driver::generic::join_host_port(ip, port)]);
    if s.heartbeat > 0 {
        a.push(format!("--heartbeat={}s", s.heartbeat));
    }
    a.extend(dash_flags(&s.arbitrary_join_flags));
    a.push(s.discovery.clone());
    line(&a)
}

/// `/etc/flotilla/manager.cmd`: `swarm manage` on `--swarm-host` with the machine's server
/// certificate (which also serves as its client certificate towards the nodes).
pub fn manager_cmd(h: &Host, ip: &str) -> String {
    let s = &h.host_options.swarm_options;
    let port = s.manager_port();
    let advertise = if s.address.is_empty() {
        crate::driver::generic::join_host_port(ip, port)
    } else {
        s.address.trim_start_matches("tcp://").to_string()
    };
    let mut a: Vec<String> = vec![REMOTE_BIN.into()];
    if s.is_experimental {
        a.push("--experimental".into());
    }
    a.extend([
        "manage".into(),
        "--tlsverify".into(),
        format!("--tlscacert={CA}"),
        format!("--tlscert={SERVER_CERT}"),
        format!("--tlskey={SERVER_KEY}"),
        "-H".into(),
        s.host.clone(),
        "--strategy".into(),
        s.strategy.clone(),
        "--advertise".into(),
        advertise,
    ]);
    if s.heartbeat > 0 {
        a.push(format!("--heartbeat={}s", s.heartbeat));
    }
    a.extend(dash_flags(&s.arbitrary_flags));
    a.push(s.discovery.clone());
    line(&a)
}

/// `KEY='value'` lines (readable by `sh` and by systemd's `EnvironmentFile=`).
pub fn env_file(env: &[String]) -> String {
    let mut s = String::new();
    for kv in env {
        if let Some((k, v)) = kv.split_once('=') {
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                s += &format!("{k}={}\n", quote(v));
            }
        }
    }
    s
}

pub fn systemd_unit(svc: Svc) -> String {
    let (desc, after, extra) = match svc {
        Svc::Engine => (
            "Flotilla engine",
            "network-online.target",
            "Delegate=yes\nKillMode=process\nLimitNOFILE=1048576\nLimitNPROC=infinity\nTasksMax=infinity\n",
        ),
        Svc::Agent => ("Flotilla swarm agent", "flotilla-engine.service", ""),
        Svc::Manager => ("Flotilla swarm manager", "flotilla-engine.service", ""),
    };
    format!(
        "[Unit]\nDescription={desc}\nAfter={after}\nWants=network-online.target\n\n[Service]\nEnvironmentFile=-{env}\nExecStart=/bin/sh {cmd}\n\
         Restart=always\nRestartSec=2\n{extra}\n[Install]\nWantedBy=multi-user.target\n",
        env = svc.env_path(),
        cmd = svc.cmd_path()
    )
}

/// Keeps one service running where there is no systemd: restarts it 2 s after it exits;
/// SIGTERM stops the service, then the supervisor.
pub fn supervisor_script() -> String {
    r#"#!/bin/sh
# Flotilla supervisor: keeps /etc/flotilla/$1.cmd running (no systemd on this host).
svc=$1
mkdir -p /run/flotilla /var/log/flotilla
echo $$ > /run/flotilla/$svc.supervisor
child=
stop() { [ -n "$child" ] && kill -TERM "$child" 2>/dev/null && wait "$child"; rm -f /run/flotilla/$svc.pid; exit 0; }
trap stop TERM INT HUP
while :; do
  [ -f /etc/flotilla/$svc.cmd ] || exit 0
  ( set -a; [ -f /etc/flotilla/$svc.env ] && . /etc/flotilla/$svc.env; set +a; exec sh /etc/flotilla/$svc.cmd ) </dev/null >>/var/log/flotilla/$svc.log 2>&1 &
  child=$!
  echo $child > /run/flotilla/$svc.pid
  wait $child
  echo "flotilla-supervise: $svc exited with status $?, restarting in 2s" >>/var/log/flotilla/$svc.log
  sleep 2
done
"#
    .into()
}

/// `ctl.sh start|stop|restart|status|logs SVC`: one interface over systemd or the supervisor.
pub fn ctl_script() -> String {
    r#"#!/bin/sh
# Flotilla service control: systemd when it is PID 1, else flotilla's supervisor.
act=$1; svc=$2
if [ -d /run/systemd/system ]; then
  u=flotilla-$svc
  case $act in
    start) systemctl daemon-reload && systemctl enable -q $u && systemctl start $u ;;
    restart) systemctl daemon-reload && systemctl enable -q $u && systemctl restart $u ;;
    stop) systemctl disable -q $u 2>/dev/null; systemctl stop $u 2>/dev/null; true ;;
    status) systemctl is-active $u ;;
    logs) journalctl -u $u -n 40 --no-pager ;;
  esac
  exit
fi
sup=/run/flotilla/$svc.supervisor
running() { [ -f $sup ] && kill -0 "$(cat $sup)" 2>/dev/null; }
case $act in
  start)
    if ! running; then
      mkdir -p /run/flotilla /var/log/flotilla
      setsid sh /etc/flotilla/supervise.sh $svc </dev/null >>/var/log/flotilla/$svc.log 2>&1 &
      echo $! > $sup
    fi ;;
  stop)
    if running; then
      kill -TERM "$(cat $sup)"
      i=0; while running && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done
      running && kill -KILL "$(cat $sup)"
    fi
    rm -f $sup; true ;;
  restart) sh "$0" stop $svc; sh "$0" start $svc ;;
  status) if running; then echo active; else echo inactive; exit 3; fi ;;
  logs) tail -n 40 /var/log/flotilla/$svc.log 2>/dev/null ;;
esac
"#
    .into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn discovery_settings_reach_the_host() {
        assert_eq!(discovery_env(None, None), (vec![], None));
        let (env, ca) = discovery_env(Some("https://ts:8500".into()), Some("/home/u/ca.pem".into()));
        assert_eq!(env, ["SWARM_DISCOVERY_URL=https://ts:8500", "SWARM_DISCOVERY_CACERT=/etc/flotilla/discovery-ca.pem"]);
        assert_eq!(ca.as_deref(), Some("/home/u/ca.pem"));
    }

    use super::*;
    use crate::host::HostOptions;

    fn host() -> Host {
        let mut ho = HostOptions::default();
        ho.engine_options.labels = vec!["zone=eu".into()];
        ho.engine_options.arbitrary_flags = vec!["cgroup-parent=/x".into()];
        ho.engine_options.insecure_registry = vec!["10.0.0.1:5000".into()];
        ho.swarm_options.discovery = "token://abc".into();
        ho.swarm_options.arbitrary_flags = vec!["heartbeat=5s".into()];
        ho.swarm_options.strategy = "binpack".into();
        Host { config_version: 3, driver: serde_json::json!({}), driver_name: "generic".into(), host_options: ho, name: "m1".into() }
    }

    #[test]
    fn command_lines() {
        let h = host();
        let e = engine_cmd(&h, "10.0.0.5", 2376, &["--cgroup-parent=/flm-1/engine".into()]);
        assert_eq!(
            e,
            "exec /usr/local/bin/swarm engine -H tcp://0.0.0.0:2376 -H unix:///var/run/flotilla.sock --tlsverify --tlscacert /etc/flotilla/ca.pem \
             --tlscert /etc/flotilla/server.pem --tlskey /etc/flotilla/server-key.pem --label zone=eu --label provider=generic \
             --insecure-registry 10.0.0.1:5000 --cgroup-parent=/x\n"
        );
        assert_eq!(agent_cmd(&h, "10.0.0.5", 2376), "exec /usr/local/bin/swarm join --no-engine --advertise 10.0.0.5:2376 token://abc\n");
        let m = manager_cmd(&h, "10.0.0.5");
        assert!(m.contains(" manage --tlsverify --tlscacert=/etc/flotilla/ca.pem "), "{m}");
        assert!(m.ends_with("-H tcp://0.0.0.0:3376 --strategy binpack --advertise 10.0.0.5:3376 --heartbeat=5s token://abc\n"), "{m}");
        let mut h2 = h.clone();
        h2.host_options.swarm_options.address = "tcp://1.2.3.4:4000".into();
        assert!(manager_cmd(&h2, "10.0.0.5").contains("--advertise 1.2.3.4:4000 "));
    }

    #[test]
    fn cluster_store_from_etcd_discovery_or_flag() {
        let mut h = host();
        let port_of = |h: &Host| engine_cmd(h, "10.0.0.5", 2376, &[]);
        assert!(!port_of(&h).contains("--cluster-store"), "token discovery has no store");
        h.host_options.swarm_options.is_swarm = true;
        h.host_options.swarm_options.discovery = "etcd://10.0.0.1:2379/flt".into();
        assert!(port_of(&h).ends_with(" --cluster-store=etcd://10.0.0.1:2379/flt --cluster-advertise=10.0.0.5:2376 --cgroup-parent=/x\n"));
        h.host_options.engine_options.cluster_store = "etcd://10.0.0.2:2379/net".into();
        assert!(port_of(&h).contains(" --cluster-store=etcd://10.0.0.2:2379/net --cluster-advertise=10.0.0.5:2376 "));
        // A user's own --engine-opt wins.
        h.host_options.engine_options.arbitrary_flags.push("cluster-advertise=eth0:2376".into());
        let c = port_of(&h);
        assert!(c.contains(" --cluster-store=etcd://10.0.0.2:2379/net ") && c.ends_with(" --cluster-advertise=eth0:2376\n"), "{c}");
        assert_eq!(c.matches("--cluster-advertise").count(), 1, "{c}");
    }

    #[test]
    fn env_and_units() {
        assert_eq!(env_file(&["A=b".into(), "B=two words".into(), "bad-key=x".into(), "noeq".into()]), "A=b\nB='two words'\n");
        let u = systemd_unit(Svc::Engine);
        assert!(u.contains("ExecStart=/bin/sh /etc/flotilla/engine.cmd\n") && u.contains("KillMode=process"));
        assert!(ctl_script().contains("/run/systemd/system"));
        assert_eq!(dash_flags(&["a=b".into(), "--c".into(), "".into()]), vec!["--a=b", "--c"]);
    }
}
