//! `swarm manage`: classic Swarm's manager flags, parsed and checked, then one call into the
//! manager crate.
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ManageArgs {
    /// Discovery: nodes://ip:port,ip:[a:b] (or a bare list). Default: $SWARM_DISCOVERY.
    #[arg(env = "SWARM_DISCOVERY")]
    discovery: Option<String>,
    /// Address to serve the API on: tcp://ip:port, ip:port, :port or unix:///path (repeatable).
    #[arg(short = 'H', long = "host", env = "SWARM_HOST", value_delimiter = ',', default_value = "tcp://127.0.0.1:2375")]
    host: Vec<String>,
    /// Placement strategy: spread, binpack or random.
    #[arg(long, default_value = "spread")]
    strategy: String,
    /// Filter to apply, in order (repeatable; replaces the default chain
    /// health, port, containerslots, dependency, affinity, constraint, whitelist).
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Period of discovery polling.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    heartbeat: Duration,
    /// Address of this manager (host:port) as others should reach it.
    #[arg(long = "advertise", visible_alias = "addr", env = "SWARM_ADVERTISE")]
    advertise: Option<String>,
    /// Cluster option k=v: swarm.overcommit (default 0.05), swarm.createretry (default 0).
    #[arg(long = "cluster-opt")]
    cluster_opt: Vec<String>,
    /// Discovery option k=v (passed to the discovery backend).
    #[arg(long = "discovery-opt")]
    discovery_opt: Vec<String>,
    /// Base URL of the token service for token://<token> discovery.
    #[arg(long = "discovery-url", env = "SWARM_DISCOVERY_URL")]
    discovery_url: Option<String>,
    /// CA certificate (PEM) of an https token service: only certificates it signs are trusted;
    /// token://<host:port>/<token> then speaks https.
    #[arg(long = "discovery-cacert", env = "SWARM_DISCOVERY_CACERT", value_name = "PATH")]
    discovery_cacert: Option<std::path::PathBuf>,
    /// Cluster driver (only "swarm").
    #[arg(short = 'c', long = "cluster-driver", default_value = "swarm")]
    cluster_driver: String,
    /// Minimum delay between two refreshes of a node.
    #[arg(long = "engine-refresh-min-interval", default_value = "30s", value_parser = parse_duration, allow_hyphen_values = true)]
    refresh_min: Duration,
    /// Maximum delay between two refreshes of a node (jitter between min and max).
    #[arg(long = "engine-refresh-max-interval", default_value = "60s", value_parser = parse_duration, allow_hyphen_values = true)]
    refresh_max: Duration,
    /// Failed connections before a node is marked Unhealthy.
    #[arg(long = "engine-failure-retry", default_value_t = 3, allow_hyphen_values = true)]
    failure_retry: i64,
    /// Deprecated: use --engine-failure-retry.
    #[arg(long = "engine-refresh-retry", default_value_t = 3, hide = true, allow_hyphen_values = true)]
    refresh_retry: i64,
    /// Leader election between managers (needs etcd discovery and --advertise): the primary
    /// serves, replicas forward to it.
    #[arg(long)]
    replication: bool,
    /// Lease of the primary: a replica takes over within it when the primary dies.
    #[arg(long = "replication-ttl", default_value = "20s", value_parser = parse_duration)]
    replication_ttl: Duration,
    /// Accepted for compatibility (CORS headers are not sent).
    #[arg(long = "api-enable-cors", visible_alias = "cors", hide = true)]
    cors: bool,
    /// Allow plain TCP on non-loopback addresses (anyone reaching it controls the cluster).
    #[arg(long)]
    insecure_tcp: bool,
    #[command(flatten)]
    tls: super::TlsFlags,
    /// Log level: trace, debug, info, warn, error.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    log_level: String,
    /// Shorthand for --log-level debug.
    #[arg(long, env = "DEBUG")]
    debug: bool,
    /// `swarm --experimental manage`: reported in `docker info` and `docker version`.
    #[arg(skip)]
    experimental: bool,
}

impl ManageArgs {
    pub fn log_level(&self) -> &str {
        &self.log_level
    }

    /// Applies `swarm`'s global flags: the resolved log level and `--experimental`.
    pub fn apply_globals(&mut self, log_level: String, experimental: bool) {
        self.log_level = log_level;
        self.experimental = experimental;
    }
}

/// Classic Swarm's first checks, in its order and wording, before anything else is looked at:
/// the refresh intervals and retry counts, then the cluster options.
pub fn check_first(a: &ManageArgs) -> anyhow::Result<()> {
    cluster_opts(a).map(|_| ())
}

/// Why a duration flag of `manage` does not parse (`input` is the trimmed value).
#[derive(Debug, thiserror::Error)]
pub enum DurationFlagError {
    #[error("invalid duration {input:?}: missing unit")]
    MissingUnit { input: String },
    #[error("invalid duration {input:?}")]
    Invalid { input: String },
    #[error("invalid duration {input:?}: unknown unit {unit:?}")]
    UnknownUnit { input: String, unit: String },
}

/// `30s`, `1m`, `500ms`, `1h`, `2h30m` or bare seconds; a negative one (`-10s`) is zero, which
/// the checks then refuse as not positive.
pub fn parse_duration(s: &str) -> Result<Duration, DurationFlagError> {
    let s = s.trim();
    if let Some(neg) = s.strip_prefix('-') {
        return parse_duration(neg).map(|_| Duration::ZERO);
    }
    if let Ok(n) = s.parse::<f64>() {
        return Ok(Duration::from_secs_f64(n.max(0.0)));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(|| DurationFlagError::MissingUnit { input: s.into() })?;
        let n: f64 = rest[..num_len].parse().map_err(|_| DurationFlagError::Invalid { input: s.into() })?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(DurationFlagError::UnknownUnit { input: s.into(), unit: u.into() }),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

fn cluster_opts(a: &ManageArgs) -> anyhow::Result<manager::ClusterOpts> {
    let mut o = manager::ClusterOpts {
        strategy: a.strategy.clone(),
        filters: a.filter.clone(),
        experimental: a.experimental,
        ..Default::default()
    };
    if a.refresh_min.is_zero() {
        bail!("min refresh interval should be a positive number");
    }
    if a.refresh_max < a.refresh_min {
        bail!("max refresh interval cannot be less than min refresh interval");
    }
    if a.refresh_retry != 3 {
        bail!("--engine-refresh-retry is deprecated. Use --engine-failure-retry");
    }
    if a.failure_retry <= 0 {
        bail!("invalid failure retry count");
    }
    o.refresh_min = a.refresh_min;
    o.refresh_max = a.refresh_max;
    o.failure_retry = a.failure_retry as u32;
    for kv in &a.cluster_opt {
        let (k, v) = kv.split_once('=').with_context(|| format!("invalid --cluster-opt {kv:?}: expected key=value"))?;
        match k {
            "swarm.overcommit" => {
                let f: f64 = v.parse().with_context(|| format!("invalid swarm.overcommit {v:?}"))?;
                if f <= -1.0 {
                    bail!("swarm.overcommit should be larger than -1, {f:.6} is invalid");
                }
                if f < 0.0 {
                    tracing::warn!("-1 < swarm.overcommit < 0 will make swarm take less resource than docker engine offers");
                }
                o.overcommit = f;
            }
            "swarm.createretry" => {
                let n: i64 = v.parse().with_context(|| format!("invalid swarm.createretry {v:?}"))?;
                if n < 0 {
                    bail!("swarm.createretry can not be negative, {n} is invalid");
                }
                o.create_retry = n as u32;
            }
            _ => bail!("unsupported cluster option {k:?} (known: swarm.overcommit, swarm.createretry)"),
        }
    }
    Ok(o)
}

fn tls_opts(a: &ManageArgs) -> anyhow::Result<Option<manager::tls::TlsOptions>> {
    Ok(manager::tls::TlsOptions::from_flags(
        a.tls.tls,
        a.tls.tlsverify,
        a.tls.tlscacert.clone(),
        a.tls.tlscert.clone(),
        a.tls.tlskey.clone(),
    )?)
}

/// Where the manager learns its nodes: a static list, or a discovery backend it watches.
enum Source {
    Static(manager::StaticNodes),
    Watch(discovery::Backend),
}

fn node_source(url: &str, opts: &[String], token_url: Option<String>, token_ca: Option<PathBuf>) -> anyhow::Result<Source> {
    let token_ca = token_ca.filter(|p| !p.as_os_str().is_empty());
    match url.split_once("://") {
        None | Some(("nodes", _)) if token_ca.is_some() => {
            Err(discovery::DiscoveryError::TokenCaNotToken { scheme: "nodes".into() }.into())
        }
        None | Some(("nodes", _)) => {
            Ok(Source::Static(manager::StaticNodes::parse(url).map_err(|e| anyhow::anyhow!("discovery {url:?}: {e}"))?))
        }
        Some(_) => {
            let opts = discovery::DiscoveryOpts::parse(opts, token_url)?.with_token_ca(token_ca);
            Ok(Source::Watch(discovery::Backend::from_url(url, &opts)?))
        }
    }
}

pub fn run(a: ManageArgs) -> anyhow::Result<()> {
    let level = if a.debug && a.log_level == "info" { "debug".to_string() } else { a.log_level.clone() };
    if !["trace", "debug", "info", "warn", "error"].contains(&level.as_str()) {
        bail!("invalid --log-level {level:?}: use trace, debug, info, warn or error");
    }
    // The HTTP client's own debug lines drown the manager's.
    super::init_tracing(&format!("{level},hyper_util=info,hyper=info,reqwest=info,rustls=info"))?;
    if a.heartbeat < Duration::from_secs(1) {
        bail!("--heartbeat should be at least one second");
    }
    if a.cluster_driver != "swarm" {
        bail!("cluster driver {:?} not supported (only \"swarm\")", a.cluster_driver);
    }
    if a.replication {
        if a.advertise.is_none() {
            bail!("--advertise address must be provided when using --replication");
        }
        if a.replication_ttl.is_zero() {
            bail!("--replication-ttl should be a positive number");
        }
    }
    if let Some(adv) = &a.advertise {
        let ok = adv.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_some_and(|p| p > 0);
        if !ok {
            bail!("--advertise should be of the form ip:port or hostname:port");
        }
    }
    let discovery = a
        .discovery
        .clone()
        .context("a discovery URL is required (argument or $SWARM_DISCOVERY), e.g. nodes://10.0.0.1:2375,10.0.0.2:2375")?;
    let source = node_source(&discovery, &a.discovery_opt, a.discovery_url.clone(), a.discovery_cacert.clone())?;
    let etcd = match &source {
        Source::Watch(discovery::Backend::Etcd(e)) => Some(e.clone()),
        _ => None,
    };
    if a.replication && etcd.is_none() {
        bail!("Leader election is only supported with consul, etcd and zookeeper discovery.");
    }
    let replication =
        a.replication.then(|| manager::Replication { advertise: a.advertise.clone().unwrap_or_default(), ttl: a.replication_ttl });
    let heartbeat = a.heartbeat;
    let hosts = a.host.iter().map(|h| manager::Listen::parse(h).map_err(anyhow::Error::msg)).collect::<Result<Vec<_>, _>>()?;
    let mut cluster = cluster_opts(&a)?;
    cluster.heartbeat = heartbeat;
    let cfg = manager::ManagerConfig { hosts, insecure_tcp: a.insecure_tcp, tls: tls_opts(&a)?, cluster, etcd, replication };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let token = manager::CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
            t.cancel();
        });
        match source {
            Source::Static(nodes) => manager::run(cfg, nodes, token).await.map_err(anyhow::Error::from),
            Source::Watch(backend) => {
                use discovery::Discovery;
                let rx = backend.watch(heartbeat, token.clone());
                manager::run(cfg, rx, token).await.map_err(anyhow::Error::from)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5x").is_err());
        assert_eq!(parse_duration("-10s").unwrap(), Duration::ZERO);
        assert!(parse_duration("-x").is_err());
    }
}
