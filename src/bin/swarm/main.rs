//! `swarm`: engine, shim (internal), create/join/list/token-service, and later manage.
mod create;
mod join;
mod list;
mod token_service;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;

mod manage;

#[derive(Parser)]
#[command(name = "swarm", version, about = "Flotilla: a Docker engine and classic-Swarm-compatible clustering")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a single-host Docker engine.
    Engine(EngineArgs),
    /// Create a cluster on the token service and print its token.
    #[command(visible_alias = "c")]
    Create(create::CreateArgs),
    /// Join a cluster: run the engine at --advertise and register it in discovery.
    #[command(visible_alias = "j")]
    Join(join::JoinArgs),
    /// List the nodes of a cluster, one ip:port per line.
    #[command(visible_alias = "l")]
    List(list::ListArgs),
    /// Serve the token discovery protocol (`swarm create`, token://) from a local store.
    TokenService(token_service::TokenServiceArgs),
    /// Run a manager: one Docker API for the nodes found through discovery.
    #[command(visible_alias = "m")]
    Manage(manage::ManageArgs),
    /// Internal: the per-container supervisor started by the engine.
    #[command(hide = true, disable_help_flag = true)]
    Shim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(clap::Args)]
struct EngineArgs {
    /// Address to serve the API on: unix:///path or tcp://ip:port (repeatable).
    #[arg(short = 'H', long = "host")]
    host: Vec<String>,
    /// Allow tcp:// listeners without TLS (anyone reaching the port controls the engine).
    #[arg(long)]
    insecure_tcp: bool,
    /// Root of persistent state (images, containers).
    #[arg(long, default_value = "/var/lib/flotilla")]
    data_root: PathBuf,
    /// Root of runtime state (shim sockets, netns, libcontainer state).
    #[arg(long, default_value = "/var/run/flotilla")]
    exec_root: PathBuf,
    /// Engine label key=value (repeatable).
    #[arg(long = "label")]
    label: Vec<String>,
    /// Registry reached over plain HTTP (host:port or CIDR; 127.0.0.0/8 always is).
    #[arg(long = "insecure-registry")]
    insecure_registry: Vec<String>,
    /// Name of the default bridge.
    #[arg(short = 'b', long = "bridge", default_value = "flt0")]
    bridge: String,
    /// Address and prefix of the default bridge.
    #[arg(long = "bip", default_value = "172.31.0.1/16")]
    bip: String,
    /// Parent cgroup of every container (cgroupfs path).
    #[arg(long = "cgroup-parent", default_value = "/flotilla")]
    cgroup_parent: String,
    /// Serve TCP listeners with TLS (implied by --tlsverify).
    #[arg(long)]
    tls: bool,
    /// Serve TLS and require client certificates signed by --tlscacert.
    #[arg(long)]
    tlsverify: bool,
    /// Trust certificates signed by this CA only.
    #[arg(long, value_name = "PATH")]
    tlscacert: Option<PathBuf>,
    /// Path to the server's TLS certificate.
    #[arg(long, value_name = "PATH")]
    tlscert: Option<PathBuf>,
    /// Path to the server's TLS key.
    #[arg(long, value_name = "PATH")]
    tlskey: Option<PathBuf>,
    /// Log level: trace, debug, info, warn, error.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    log_level: String,
    /// Name shown in `docker info` (and used by swarm managers as the node name); default: the hostname.
    #[arg(long)]
    name: Option<String>,
    /// Default log driver of containers: json-file or none.
    #[arg(long = "log-driver", value_name = "DRIVER")]
    log_driver: Option<String>,
    /// Default log driver option key=value (repeatable), e.g. max-size=10m.
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    log_opt: Vec<String>,
    /// Default ulimit of containers, name=soft[:hard] (repeatable).
    #[arg(long = "default-ulimit", value_name = "NAME=SOFT[:HARD]")]
    default_ulimit: Vec<String>,
    /// Default size of containers' /dev/shm (e.g. 64m).
    #[arg(long = "default-shm-size", value_name = "SIZE")]
    default_shm_size: Option<String>,
    /// DNS server of containers that set none (repeatable).
    #[arg(long = "dns", value_name = "IP")]
    dns: Vec<String>,
    /// DNS search domain of containers that set none (repeatable).
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    dns_search: Vec<String>,
    /// DNS option of containers that set none (repeatable).
    #[arg(long = "dns-opt", value_name = "OPTION")]
    dns_opt: Vec<String>,
    /// Storage driver: overlay2 (or its alias overlay), the only one this engine has.
    #[arg(long = "storage-driver", short = 's', value_name = "DRIVER")]
    storage_driver: Option<String>,
}

fn init_tracing(level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("invalid --log-level {level:?}"))?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    Ok(())
}

fn parse_labels(labels: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => anyhow::bail!("invalid label {l:?}: expected key=value"),
        })
        .collect()
}

fn check_log_level(level: &str) -> anyhow::Result<()> {
    if !["trace", "debug", "info", "warn", "error"].contains(&level) {
        anyhow::bail!("invalid --log-level {level:?}: use trace, debug, info, warn or error");
    }
    Ok(())
}

fn engine(a: EngineArgs) -> anyhow::Result<()> {
    check_log_level(&a.log_level)?;
    init_tracing(&a.log_level)?;
    let cfg = engine_config(a)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let token = tokio_util_token();
        let t = token.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
            t.cancel();
        });
        engine::run(cfg, token).await.map_err(anyhow::Error::from)
    })
}

/// The engine configuration from `swarm engine` flags (also flattened into `swarm join`).
fn engine_config(a: EngineArgs) -> anyhow::Result<engine::EngineConfig> {
    let mut cfg = engine::EngineConfig::with_defaults();
    if !a.host.is_empty() {
        cfg.hosts = a.host.iter().map(|h| engine::config::Listen::parse(h).map_err(anyhow::Error::msg)).collect::<Result<_, _>>()?;
    }
    cfg.insecure_tcp = a.insecure_tcp;
    cfg.data_root = a.data_root;
    cfg.exec_root = a.exec_root;
    cfg.labels = parse_labels(&a.label)?;
    cfg.name = a.name;
    cfg.insecure_registries = a.insecure_registry;
    cfg.bridge_name = a.bridge;
    cfg.bridge_cidr = a.bip;
    if !a.cgroup_parent.starts_with('/') || a.cgroup_parent.contains("..") {
        anyhow::bail!("invalid --cgroup-parent {:?}: must be an absolute cgroup path", a.cgroup_parent);
    }
    cfg.cgroup_parent = a.cgroup_parent;
    cfg.tls = engine::tls::TlsOptions::from_flags(a.tls, a.tlsverify, a.tlscacert, a.tlscert, a.tlskey)?;
    cfg.shim_binary = std::env::current_exe().context("cannot find our own binary")?;
    if let Some(d) = a.storage_driver.as_deref().filter(|d| !matches!(*d, "overlay2" | "overlay")) {
        anyhow::bail!("invalid --storage-driver {d:?}: this engine stores images with overlay2 (overlay is accepted as the same)");
    }
    let d = &mut cfg.run_defaults;
    d.log_driver = a.log_driver;
    d.dns = a.dns;
    d.dns_search = a.dns_search;
    d.dns_options = a.dns_opt;
    d.log_opts = parse_labels(&a.log_opt).context("invalid --log-opt")?.into_iter().collect();
    d.ulimits = a.default_ulimit.iter().map(|u| engine::container::runopts::parse_ulimit(u).map_err(anyhow::Error::msg)).collect::<Result<_, _>>().context("invalid --default-ulimit")?;
    if let Some(s) = &a.default_shm_size {
        let bytes = engine::container::logopts::parse_size(s).filter(|b| *b > 0).with_context(|| format!("invalid --default-shm-size {s:?}"))?;
        d.shm_size = Some(bytes as i64);
    }
    d.validate().map_err(|e| anyhow::anyhow!("invalid daemon default (--log-driver, --log-opt, --default-ulimit, --default-shm-size): {e}"))?;
    Ok(cfg)
}

fn tokio_util_token() -> engine::CancellationToken {
    engine::CancellationToken::new()
}

fn main() {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Engine(a) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            engine(a)
        }
        Cmd::Create(a) => create::run(a),
        Cmd::Join(a) => join::run(a),
        Cmd::List(a) => list::run(a),
        Cmd::TokenService(a) => token_service::run(a),
        Cmd::Manage(a) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            manage::run(a)
        }
        Cmd::Shim { args } => std::process::exit(engine::shim::main(args)),
    };
    if let Err(e) = res {
        eprintln!("swarm: {e:#}");
        std::process::exit(1);
    }
}
