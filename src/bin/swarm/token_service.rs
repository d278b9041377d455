//! `swarm token-service --listen ADDR --data DIR`: serves the token discovery protocol
//! (`swarm create`, `token://`) with a file-backed store, until SIGINT/SIGTERM.
use anyhow::{bail, Context};
use engine::CancellationToken;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct TokenServiceArgs {
    /// Address to listen on: ip:port, :port or tcp://ip:port.
    #[arg(long, default_value = "0.0.0.0:8500", value_name = "ADDR")]
    listen: String,
    /// Directory of the cluster store (created if missing); keeps clusters across restarts.
    #[arg(long, default_value = "/var/lib/flotilla/token-service", value_name = "DIR")]
    data: PathBuf,
    /// Log level: trace, debug, info, warn, error.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    pub(crate) log_level: String,
}

/// `ip:port`, `:port`, `tcp://ip:port` or `http://ip:port` -> a socket address.
fn listen_addr(s: &str) -> anyhow::Result<std::net::SocketAddr> {
    let t = s.trim().trim_start_matches("tcp://").trim_start_matches("http://").trim_end_matches('/');
    let t = if t.starts_with(':') { format!("0.0.0.0{t}") } else { t.to_string() };
    t.parse().with_context(|| format!("invalid --listen {s:?}: expected ip:port (port 1-65535)"))
}

pub fn run(a: TokenServiceArgs) -> anyhow::Result<()> {
    crate::check_log_level(&a.log_level)?;
    let addr = listen_addr(&a.listen)?;
    if addr.port() == 0 {
        bail!("invalid --listen {:?}: the port must be 1-65535", a.listen);
    }
    crate::init_tracing(&a.log_level)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let token = CancellationToken::new();
        crate::join::cancel_on_signals(token.clone());
        discovery::token_server::run(&addr.to_string(), &a.data, token).await.map_err(anyhow::Error::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_listen_addresses() {
        assert_eq!(listen_addr(":8500").unwrap().to_string(), "0.0.0.0:8500");
        assert_eq!(listen_addr("tcp://127.0.0.1:1").unwrap().to_string(), "127.0.0.1:1");
        assert!(listen_addr("127.0.0.1:70000").is_err());
        assert!(listen_addr("nohost").is_err());
    }
}
