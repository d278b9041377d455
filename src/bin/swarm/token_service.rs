//! `swarm token-service --listen ADDR --data DIR (--tlscert C --tlskey K | --insecure-http)`:
//! serves the token discovery protocol (`swarm create`, `token://`) with a file-backed store,
//! until SIGINT/SIGTERM. Plain HTTP on an address other than loopback needs `--insecure-http`,
//! as the engine's TCP listeners need `--insecure-tcp`: the tokens are the clusters' credentials.
use anyhow::{bail, Context};
use discovery::token_server::{RunOptions, StoreLimits};
use engine::CancellationToken;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct TokenServiceArgs {
    /// Address to listen on: ip:port, :port or tcp://ip:port.
    #[arg(long, default_value = "0.0.0.0:8500", value_name = "ADDR")]
    listen: String,
    /// Directory of the cluster store (created if missing, mode 0700); keeps clusters across restarts.
    #[arg(long, default_value = "/var/lib/flotilla/token-service", value_name = "DIR")]
    data: PathBuf,
    /// Serve HTTPS with this certificate (PEM; with --tlskey).
    #[arg(long, value_name = "PATH")]
    tlscert: Option<PathBuf>,
    /// The key of --tlscert (PEM).
    #[arg(long, value_name = "PATH")]
    tlskey: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback (anyone on the path reads the tokens).
    #[arg(long)]
    insecure_http: bool,
    /// Most clusters the service holds.
    #[arg(long, default_value_t = StoreLimits::default().max_clusters, value_name = "N")]
    max_clusters: usize,
    /// Most entries (nodes) per cluster.
    #[arg(long, default_value_t = StoreLimits::default().max_entries, value_name = "N")]
    max_entries: usize,
    /// Longest TTL a registration may ask for (Go duration).
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    max_ttl: String,
    /// Cluster creates allowed per minute from one client address (0: no limit).
    #[arg(long, default_value_t = discovery::token_server::serve::DEFAULT_CREATES_PER_MINUTE, value_name = "N")]
    create_rate_limit: u32,
    /// Log level: trace, debug, info, warn, error.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    pub(crate) log_level: String,
}

/// `ip:port`, `:port`, `tcp://ip:port`, `http://ip:port` or `https://ip:port` -> a socket address.
fn listen_addr(s: &str) -> anyhow::Result<std::net::SocketAddr> {
    let t = s.trim();
    let t = ["tcp://", "http://", "https://"].iter().find_map(|p| t.strip_prefix(p)).unwrap_or(t).trim_end_matches('/');
    let t = if t.starts_with(':') { format!("0.0.0.0{t}") } else { t.to_string() };
    t.parse().with_context(|| format!("invalid --listen {s:?}: expected ip:port (port 1-65535)"))
}

/// The checked flags.
fn options(a: &TokenServiceArgs) -> anyhow::Result<RunOptions> {
    let listen = listen_addr(&a.listen)?;
    if listen.port() == 0 {
        bail!("invalid --listen {:?}: the port must be 1-65535", a.listen);
    }
    let tls = match (&a.tlscert, &a.tlskey) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        (Some(_), None) => bail!("--tlscert needs --tlskey (the certificate's key)"),
        (None, Some(_)) => bail!("--tlskey needs --tlscert (the certificate to serve)"),
    };
    if tls.is_some() && a.insecure_http {
        bail!("--insecure-http asks for plain HTTP, but --tlscert/--tlskey serve HTTPS: give one or the other");
    }
    if tls.is_none() && !a.insecure_http && !listen.ip().is_loopback() {
        bail!(
            "swarm token-service would serve plain HTTP on {listen}, which is not a loopback address: anyone on the network \
             could read and reuse the cluster tokens. Pass --tlscert and --tlskey to serve HTTPS, --insecure-http to serve \
             plain HTTP anyway, or listen on 127.0.0.1"
        );
    }
    if a.max_clusters == 0 {
        bail!("--max-clusters must be at least 1");
    }
    if a.max_entries == 0 {
        bail!("--max-entries must be at least 1");
    }
    let max_ttl = crate::join::parse_duration("max-ttl", &a.max_ttl)?;
    if max_ttl.negative || max_ttl.abs < std::time::Duration::from_secs(1) {
        bail!("--max-ttl must be at least 1s");
    }
    Ok(RunOptions {
        listen,
        data: a.data.clone(),
        limits: StoreLimits { max_clusters: a.max_clusters, max_entries: a.max_entries, max_ttl: max_ttl.abs },
        creates_per_minute: a.create_rate_limit,
        tls,
    })
}

pub fn run(a: TokenServiceArgs) -> anyhow::Result<()> {
    crate::check_log_level(&a.log_level)?;
    let opts = options(&a)?;
    crate::init_tracing(&a.log_level)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let token = CancellationToken::new();
        crate::join::cancel_on_signals(token.clone());
        discovery::token_server::run(opts, token).await.map_err(anyhow::Error::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        a: TokenServiceArgs,
    }
    fn opts(args: &[&str]) -> anyhow::Result<RunOptions> {
        options(&T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))?.a)
    }
    #[test]
    fn parses_listen_addresses() {
        assert_eq!(listen_addr(":8500").unwrap().to_string(), "0.0.0.0:8500");
        assert_eq!(listen_addr("tcp://127.0.0.1:1").unwrap().to_string(), "127.0.0.1:1");
        assert!(listen_addr("127.0.0.1:70000").is_err());
        assert!(listen_addr("nohost").is_err());
    }
    #[test]
    fn plain_http_off_loopback_needs_insecure_http() {
        let e = opts(&[]).unwrap_err().to_string();
        assert!(e.contains("--insecure-http") && e.contains("0.0.0.0:8500"), "{e}");
        assert!(opts(&["--insecure-http"]).unwrap().tls.is_none());
        assert!(opts(&["--listen", "127.0.0.1:8500"]).is_ok());
        assert!(opts(&["--listen", "[::1]:8500"]).is_ok());
        assert!(opts(&["--tlscert", "/c", "--tlskey", "/k"]).unwrap().tls.is_some());
        assert!(opts(&["--tlscert", "/c"]).unwrap_err().to_string().contains("--tlskey"));
        assert!(opts(&["--tlscert", "/c", "--tlskey", "/k", "--insecure-http"]).is_err());
        let o = opts(&["--listen", "127.0.0.1:1", "--max-entries", "5", "--max-ttl", "1h", "--create-rate-limit", "2"]).unwrap();
        assert_eq!((o.limits.max_entries, o.limits.max_ttl.as_secs(), o.creates_per_minute), (5, 3600, 2));
        assert_eq!(o.limits.max_clusters, 100_000);
        assert!(opts(&["--listen", "127.0.0.1:1", "--max-entries", "0"]).is_err());
        assert!(opts(&["--listen", "127.0.0.1:1", "--max-ttl", "0s"]).is_err());
    }
}
