//! `swarm create`: creates a cluster on the token service and prints its token.
use anyhow::anyhow;

#[derive(clap::Args)]
#[command(
    after_help = "Serve the token service with `swarm token-service --listen ADDR --data DIR`, then use the token as token://<token> \
with the same --discovery-url (or token://<host:port>/<token>)."
)]
pub struct CreateArgs {
    /// Base URL of the token service (e.g. https://10.0.0.1:8500/v1).
    #[arg(long = "discovery-url", env = "SWARM_DISCOVERY_URL", value_name = "URL")]
    discovery_url: Option<String>,
    /// CA certificate (PEM) of an https token service: only certificates it signs are trusted;
    /// token://<host:port>/<token> then speaks https.
    #[arg(long = "discovery-cacert", env = "SWARM_DISCOVERY_CACERT", value_name = "PATH")]
    discovery_cacert: Option<std::path::PathBuf>,
}

/// `log_level`: from `swarm -l`/`--debug` (create logs nothing otherwise).
pub fn run(a: CreateArgs, log_level: Option<&str>) -> anyhow::Result<()> {
    if let Some(l) = log_level {
        crate::check_log_level(l)?;
        crate::init_tracing(l)?;
    }
    let base = a.discovery_url.filter(|u| !u.trim().is_empty()).ok_or_else(|| {
        anyhow!(
            "swarm create needs the token service's address: pass --discovery-url or set SWARM_DISCOVERY_URL \
             (e.g. https://10.0.0.1:8500/v1, served by `swarm token-service`; the hosted discovery.hub.docker.com shut down in 2019)"
        )
    })?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let ca = a.discovery_cacert.filter(|p| !p.as_os_str().is_empty());
    let token = rt.block_on(discovery::token::create_cluster(&base, ca.as_deref()))?;
    println!("{token}");
    Ok(())
}
