//! `swarm join [--advertise ip:port] [engine flags] <discovery>`: the agent. The embedded engine
//! serves the Docker API at the advertised address (plus any `-H`); the address is registered
//! every `--heartbeat` with `--ttl`. `--no-engine` only registers, as classic Swarm's join did.
//!
//! The advertised listener is a TCP listener of the engine, so join asks for the
//! engine's TLS flags (`--tlsverify` …) or an explicit `--insecure-tcp`, exactly like `swarm engine -H tcp://…`.
use anyhow::{anyhow, bail};
use discovery::{duration, Backend, DiscoveryOpts, Entry};
use engine::CancellationToken;
use std::time::Duration;

#[derive(clap::Args)]
#[command(after_help = "Discovery: token://<token> (with --discovery-url), token://<host:port>/<token>, \
etcd://<ip:port>[,<ip:port>...]/<prefix>, file://<path>, nodes://<ip:port>[,...] ([a:b] ranges allowed).\n\
Durations use Go's syntax: 500ms, 20s, 1m30s.")]
pub struct JoinArgs {
    /// Address of this node as managers reach it (ip:port or hostname:port); the engine serves the Docker API there.
    #[arg(long = "advertise", visible_alias = "addr", env = "SWARM_ADVERTISE", value_name = "IP:PORT")]
    advertise: Option<String>,
    /// Period of the registration (at least 1s).
    #[arg(long, default_value = "60s", value_name = "DURATION", allow_hyphen_values = true)]
    heartbeat: String,
    /// How long a registration lasts without heartbeats (must be above --heartbeat).
    #[arg(long, default_value = "180s", value_name = "DURATION", allow_hyphen_values = true)]
    ttl: String,
    /// Wait a random time below this before the first registration (avoids synchronized joins).
    #[arg(long, default_value = "0s", value_name = "DURATION", allow_hyphen_values = true)]
    delay: String,
    #[command(flatten)]
    pub(crate) discovery_flags: DiscoveryFlags,
    /// Start no engine: only register --advertise, where another engine (e.g. dockerd) serves.
    #[arg(long)]
    no_engine: bool,
    #[command(flatten)]
    pub(crate) engine: crate::EngineArgs,
    /// Discovery URL (see below).
    #[arg(env = "SWARM_DISCOVERY", value_name = "DISCOVERY")]
    discovery: Option<String>,
}

/// The discovery backend's flags of `join` and `list`.
#[derive(clap::Args)]
pub struct DiscoveryFlags {
    /// Discovery option (repeatable): kv.path, kv.cacertfile, kv.certfile, kv.keyfile.
    #[arg(long = "discovery-opt", value_name = "KEY=VALUE")]
    discovery_opt: Vec<String>,
    /// Base URL of the token service for token://<token> (e.g. https://10.0.0.1:8500/v1).
    #[arg(long = "discovery-url", env = "SWARM_DISCOVERY_URL", value_name = "URL")]
    discovery_url: Option<String>,
    /// CA certificate (PEM) of an https token service: only certificates it signs are trusted;
    /// token://<host:port>/<token> then speaks https.
    #[arg(long = "discovery-cacert", env = "SWARM_DISCOVERY_CACERT", value_name = "PATH")]
    discovery_cacert: Option<std::path::PathBuf>,
}

impl DiscoveryFlags {
    pub fn opts(self) -> Result<DiscoveryOpts, discovery::DiscoveryError> {
        Ok(DiscoveryOpts::parse(&self.discovery_opt, self.discovery_url)?.with_token_ca(self.discovery_cacert))
    }
}

/// Parses a Go duration flag with classic Swarm's message on error.
pub fn parse_duration(flag: &str, value: &str) -> anyhow::Result<duration::GoDuration> {
    duration::parse(value.trim()).map_err(|e| anyhow!("invalid --{flag}: {e}"))
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
        tracing::info!("shutting down");
        token.cancel();
    });
}

/// The discovery URL from the argument or `$SWARM_DISCOVERY`, with classic's message.
pub fn discovery_url(arg: Option<String>, cmd: &str, what: &str) -> anyhow::Result<String> {
    arg.filter(|d| !d.trim().is_empty()).ok_or_else(|| anyhow!("discovery required to {what}. See 'swarm {cmd} --help'."))
}

pub fn run(a: JoinArgs) -> anyhow::Result<()> {
    let url = discovery_url(a.discovery, "join", "join a cluster")?;
    let advertise = a.advertise.filter(|s| !s.trim().is_empty()).ok_or_else(|| anyhow!("missing mandatory --advertise flag"))?;
    let advertise = Entry::parse(&advertise).map_err(|e| anyhow!("--advertise should be of the form ip:port or hostname:port: {e}"))?;
    let delay = parse_duration("delay", &a.delay)?.non_negative().ok_or_else(|| anyhow!("--delay should not be a negative number"))?;
    let heartbeat = parse_duration("heartbeat", &a.heartbeat)?;
    if heartbeat.negative || heartbeat.abs < Duration::from_secs(1) {
        bail!("--heartbeat should be at least one second");
    }
    let ttl = parse_duration("ttl", &a.ttl)?;
    if ttl.negative || ttl.abs <= heartbeat.abs {
        bail!("--ttl must be strictly superior to the heartbeat value");
    }
    let opts = a.discovery_flags.opts()?;
    let backend = Backend::from_url(&url, &opts)?;
    crate::check_log_level(&a.engine.log_level)?;
    let log_level = a.engine.log_level.clone();
    let engine = if a.no_engine {
        None
    } else {
        if !a.engine.insecure_tcp && !a.engine.tls.tls && !a.engine.tls.tlsverify {
            bail!(
                "swarm join serves the Docker API on tcp://{advertise} for the managers: \
                 pass --tlsverify --tlscacert --tlscert --tlskey to serve it with TLS, \
                 --insecure-tcp to serve it without (anyone who can reach that address controls this engine), \
                 or --no-engine to register an engine you run yourself"
            );
        }
        let mut e = a.engine;
        if e.cluster_store.is_some() && e.cluster_advertise.is_none() {
            // The node's overlay endpoint is where managers reach it.
            e.cluster_advertise = Some(advertise.to_string());
        }
        Some(crate::engine_config(e)?)
    };
    let cfg = agent::AgentConfig {
        advertise,
        discovery: backend,
        timing: agent::Timing { heartbeat: heartbeat.abs, ttl: ttl.abs, delay },
        engine,
    };
    agent::validate(&cfg)?;
    crate::init_tracing(&log_level)?;
    // The engine's registry client (and https token services) use rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing::info!(addr = %cfg.advertise, discovery = %discovery::token::redact_url(&url), engine = cfg.engine.is_some(), "joining");
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let token = CancellationToken::new();
        cancel_on_signals(token.clone());
        agent::Agent::run(cfg, token).await.map_err(anyhow::Error::from)
    })
}
