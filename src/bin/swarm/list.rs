//! `swarm list [--timeout 10s] <discovery>`: prints the cluster's nodes, one `ip:port` per line.
use anyhow::{anyhow, bail};
use discovery::{Backend, Discovery, DiscoveryOpts};

#[derive(clap::Args)]
#[command(after_help = "Discovery: token://<token> (with --discovery-url), token://<host:port>/<token>, \
etcd://<ip:port>[,<ip:port>...]/<prefix>, file://<path>, nodes://<ip:port>[,...] ([a:b] ranges allowed).")]
pub struct ListArgs {
    /// Give up after this long (Go duration, above 0).
    #[arg(long, default_value = "10s", value_name = "DURATION", allow_hyphen_values = true)]
    timeout: String,
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
    /// Discovery URL (see below).
    #[arg(env = "SWARM_DISCOVERY", value_name = "DISCOVERY")]
    discovery: Option<String>,
}

/// `log_level`: from `swarm -l`/`--debug`, else warn.
pub fn run(a: ListArgs, log_level: &str) -> anyhow::Result<()> {
    let url = crate::join::discovery_url(a.discovery, "list", "list a cluster")?;
    let timeout = crate::join::parse_duration("timeout", &a.timeout)?;
    if !timeout.is_positive() {
        bail!("--timeout should be a positive number");
    }
    let opts = DiscoveryOpts::parse(&a.discovery_opt, a.discovery_url)?.with_token_ca(a.discovery_cacert);
    let backend = Backend::from_url(&url, &opts)?;
    crate::check_log_level(log_level)?;
    crate::init_tracing(log_level)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let entries = rt.block_on(async { tokio::time::timeout(timeout.abs, backend.list()).await });
    let entries = entries.map_err(|_| anyhow!("Timed out after {} listing {url}", discovery::duration::format(timeout.abs)))??;
    for e in entries {
        println!("{e}");
    }
    Ok(())
}
