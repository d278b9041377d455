//! `swarm`: engine, shim (internal), create/join/list/token-service/manage, with classic
//! Swarm's global flags (`--debug`, `-l/--log-level`, `--experimental`, `-v/--version`) and its
//! single-dash long flags (see `args`).
mod alloc;
mod args;
mod create;
mod join;
mod list;
mod tls_flags;
mod token_service;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tls_flags::TlsFlags;

mod manage;

#[derive(Parser)]
#[command(name = "swarm", about = "Flotilla: a Docker engine and classic-Swarm-compatible clustering")]
struct Cli {
    /// Debug mode: log level debug unless --log-level is given.
    #[arg(long, env = "DEBUG")]
    debug: bool,
    /// Log level of every command (trace, debug, info, warn, error); a subcommand's own
    /// --log-level wins.
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL")]
    log_level: Option<String>,
    /// Report the experimental build in `docker info`/`docker version` (manage, join, engine;
    /// the other commands have no experimental features).
    #[arg(long, global = true)]
    experimental: bool,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the version.
    Version,
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
    /// Internal: checks `swarm engine` flags (as `engine` parses and validates them) and exits;
    /// `machine create --engine-opt` runs it before provisioning anything.
    #[command(hide = true)]
    CheckEngine(EngineArgs),
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
    #[command(flatten)]
    tls: TlsFlags,
    /// Log level: trace, debug, info, warn, error.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    log_level: String,
    /// Report the experimental build in `docker info`/`docker version` (set by `swarm --experimental`).
    #[arg(skip)]
    experimental: bool,
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
    /// Cluster store for overlay networks: etcd://ip:port[,ip:port]/prefix.
    #[arg(long = "cluster-store", value_name = "URL")]
    cluster_store: Option<String>,
    /// This node's address for overlay networks: <ip|interface>:port (swarm join: defaults to --advertise).
    #[arg(long = "cluster-advertise", value_name = "ADDR")]
    cluster_advertise: Option<String>,
    /// Cluster store option: kv.cacertfile, kv.certfile, kv.keyfile (repeatable).
    #[arg(long = "cluster-store-opt", value_name = "KEY=VALUE")]
    cluster_store_opt: Vec<String>,
    /// MTU of the default bridge network's links (default: 1500).
    #[arg(long = "mtu", value_name = "BYTES")]
    mtu: Option<u32>,
    /// Registry tried first for Docker Hub images: http(s)://host[:port] (repeatable).
    #[arg(long = "registry-mirror", value_name = "URL")]
    registry_mirror: Vec<String>,
    /// Layers one pull downloads at the same time (default 3).
    #[arg(long = "max-concurrent-downloads", value_name = "N", default_value_t = 3)]
    max_concurrent_downloads: usize,
    /// Published ports always go through NAT here (no proxy process): false is what this engine
    /// does; true is accepted as the same (ports answer on the host's addresses and 127.0.0.1).
    #[arg(long = "userland-proxy", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    userland_proxy: Option<bool>,
    /// Refused: there is no userland proxy to run.
    #[arg(long = "userland-proxy-path", value_name = "PATH", hide = true)]
    userland_proxy_path: Option<String>,
    /// Add iptables rules (NAT, isolation, published ports); false: none at all.
    #[arg(long = "iptables", value_name = "BOOL", num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    iptables: bool,
    /// Set net.ipv4.ip_forward=1 at start; false: leave it as it is.
    #[arg(long = "ip-forward", value_name = "BOOL", num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    ip_forward: bool,
    /// Masquerade the default bridge's outgoing traffic; false: no MASQUERADE rule for its subnet.
    #[arg(long = "ip-masq", value_name = "BOOL", num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    ip_masq: bool,
}

fn init_tracing(level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level).with_context(|| format!("invalid --log-level {level:?}"))?;
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
    cfg.net = net_flags(&a)?;
    cfg.pull = pull_options(&a)?;
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
    cfg.tls = engine::tls::TlsOptions::from_flags(a.tls.tls, a.tls.tlsverify, a.tls.tlscacert, a.tls.tlscert, a.tls.tlskey)?;
    cfg.shim_binary = std::env::current_exe().context("cannot find our own binary")?;
    cfg.experimental = a.experimental;
    if let Some(d) = a.storage_driver.as_deref().filter(|d| !matches!(*d, "overlay2" | "overlay")) {
        anyhow::bail!("invalid --storage-driver {d:?}: this engine stores images with overlay2 (overlay is accepted as the same)");
    }
    let d = &mut cfg.run_defaults;
    d.log_driver = a.log_driver;
    d.dns = a.dns;
    d.dns_search = a.dns_search;
    d.dns_options = a.dns_opt;
    d.log_opts = parse_labels(&a.log_opt).context("invalid --log-opt")?.into_iter().collect();
    d.ulimits = a
        .default_ulimit
        .iter()
        .map(|u| engine::container::runopts::parse_ulimit(u).map_err(anyhow::Error::msg))
        .collect::<Result<_, _>>()
        .context("invalid --default-ulimit")?;
    if let Some(s) = &a.default_shm_size {
        let bytes =
            engine::container::logopts::parse_size(s).filter(|b| *b > 0).with_context(|| format!("invalid --default-shm-size {s:?}"))?;
        d.shm_size = Some(bytes as i64);
    }
    d.validate()
        .map_err(|e| anyhow::anyhow!("invalid daemon default (--log-driver, --log-opt, --default-ulimit, --default-shm-size): {e}"))?;
    cfg.cluster_store =
        engine::network::overlay::ClusterStore::parse(a.cluster_store.as_deref(), a.cluster_advertise.as_deref(), &a.cluster_store_opt)?;
    Ok(cfg)
}

/// `--mtu`, `--iptables`, `--ip-forward`, `--ip-masq`, `--userland-proxy`.
fn net_flags(a: &EngineArgs) -> anyhow::Result<engine::config::NetFlags> {
    if let Some(m) = a.mtu.filter(|m| !(68..=65535).contains(m)) {
        anyhow::bail!("invalid --mtu {m}: it must be between 68 and 65535");
    }
    if let Some(p) = &a.userland_proxy_path {
        anyhow::bail!("--userland-proxy-path {p:?} is not supported: this engine publishes ports through NAT and runs no userland proxy");
    }
    if !a.iptables && a.userland_proxy == Some(true) {
        anyhow::bail!(
            "--userland-proxy=true with --iptables=false is not supported: this engine publishes ports through NAT only, and runs no userland proxy"
        );
    }
    Ok(engine::config::NetFlags { mtu: a.mtu, iptables: a.iptables, ip_forward: a.ip_forward, ip_masq: a.ip_masq && a.iptables })
}

/// `--registry-mirror`, `--max-concurrent-downloads`.
fn pull_options(a: &EngineArgs) -> anyhow::Result<engine::config::PullOptions> {
    if a.max_concurrent_downloads == 0 {
        anyhow::bail!("invalid --max-concurrent-downloads 0: it must be at least 1");
    }
    let mirrors = a
        .registry_mirror
        .iter()
        .map(|m| engine::config::PullOptions::parse_mirror(m).map_err(anyhow::Error::msg))
        .collect::<Result<_, _>>()?;
    Ok(engine::config::PullOptions { mirrors, max_concurrent_downloads: a.max_concurrent_downloads })
}

fn tokio_util_token() -> engine::CancellationToken {
    engine::CancellationToken::new()
}

/// Classic Swarm's global flags, as given before the subcommand.
struct Globals {
    debug: bool,
    log_level: Option<String>,
    experimental: bool,
}

impl Globals {
    /// The log level of a subcommand whose own `--log-level` is `own` (`None` when not given):
    /// its own, else the global one, else debug with `--debug`, else `default`.
    fn level(&self, own: Option<&str>, default: &str) -> String {
        match (own, self.log_level.as_deref()) {
            (Some(l), _) | (None, Some(l)) => l.to_string(),
            (None, None) if self.debug => "debug".into(),
            (None, None) => default.into(),
        }
    }
}

/// `swarm version 0.1.0 (flotilla)`, named after the binary as classic Swarm did.
fn print_version() {
    let prog = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "swarm".into());
    println!("{prog} version {} (flotilla)", env!("CARGO_PKG_VERSION"));
}

/// The subcommand's `--log-level` when the user gave it (not its default).
fn own_level<'a>(m: &clap::ArgMatches, value: &'a str) -> Option<&'a str> {
    match m.subcommand().and_then(|(_, sub)| sub.value_source("log_level")) {
        Some(clap::parser::ValueSource::DefaultValue) | None => None,
        Some(_) => Some(value),
    }
}

fn main() {
    use clap::{CommandFactory, FromArgMatches};
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The shim is started per container: no rewriting, nothing but its own arguments.
    if raw.get(1).is_some_and(|a| a == "shim") {
        std::process::exit(engine::shim::main(raw[2..].iter().map(|a| a.to_string_lossy().into_owned()).collect()));
    }
    let args = args::normalize(raw, &Cli::command());
    let matches = Cli::command().try_get_matches_from(args).unwrap_or_else(|e| e.exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let g = Globals { debug: cli.debug, log_level: cli.log_level, experimental: cli.experimental };
    if cli.version {
        print_version();
        return;
    }
    let Some(cmd) = cli.cmd else {
        let _ = Cli::command().print_help();
        return;
    };
    let res = match cmd {
        Cmd::Version => {
            print_version();
            Ok(())
        }
        Cmd::Engine(mut a) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            a.log_level = g.level(own_level(&matches, &a.log_level), "info");
            a.experimental = g.experimental;
            engine(a)
        }
        Cmd::Create(a) => create::run(a, g.log_level.as_deref().or(g.debug.then_some("debug"))),
        Cmd::Join(mut a) => {
            a.engine.log_level = g.level(own_level(&matches, &a.engine.log_level), "info");
            a.engine.experimental = g.experimental;
            join::run(a)
        }
        Cmd::List(a) => list::run(a, &g.level(None, "warn")),
        Cmd::TokenService(mut a) => {
            a.log_level = g.level(own_level(&matches, &a.log_level), "info");
            token_service::run(a)
        }
        Cmd::Manage(mut a) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let own = own_level(&matches, a.log_level()).map(str::to_string);
            a.apply_globals(g.level(own.as_deref(), "info"), g.experimental);
            manage::check_first(&a).and_then(|()| manage::run(a))
        }
        Cmd::CheckEngine(a) => check_log_level(&a.log_level).and_then(|()| engine_config(a)).map(|_| println!("engine flags OK")),
        Cmd::Shim { args } => std::process::exit(engine::shim::main(args)),
    };
    if let Err(e) = res {
        eprintln!("swarm: {e:#}");
        std::process::exit(1);
    }
}
