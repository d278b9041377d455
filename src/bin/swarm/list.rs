//! `swarm list [--timeout 10s] <discovery>`: prints the cluster's nodes, one `ip:port` per line.
use anyhow::{anyhow, bail};
use discovery::{Backend, Discovery};

#[derive(clap::Args)]
#[command(after_help = "Discovery: token://<token> (with --discovery-url), token://<host:port>/<token>, \
etcd://<ip:port>[,<ip:port>...]/<prefix>, file://<path>, nodes://<ip:port>[,...] ([a:b] ranges allowed).")]
pub struct ListArgs {
    /// Give up after this long (Go duration, above 0).
    #[arg(long, default_value = "10s", value_name = "DURATION", allow_hyphen_values = true)]
    timeout: String,
    #[command(flatten)]
    discovery_flags: crate::join::DiscoveryFlags,
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
    let opts = a.discovery_flags.opts()?;
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
