//! The agent (`swarm join`): the embedded engine serving the Docker API at the advertised
//! address (plus any `-H`), kept registered in discovery every heartbeat with a TTL, and
//! deregistered on a clean shutdown. With no engine (`--no-engine`) it only registers an address
//! that another engine (e.g. a real dockerd) serves, as classic Swarm's join did.
pub mod heartbeat;

use discovery::{Backend, DiscoveryError, Entry};
use engine::config::Listen;
use engine::{EngineConfig, EngineError};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use heartbeat::Timing;

/// How long the engine may take to accept connections before the agent gives up.
pub const ENGINE_READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct AgentConfig {
    /// The address registered in discovery, where managers reach the engine.
    pub advertise: Entry,
    pub discovery: Backend,
    pub timing: Timing,
    /// The embedded engine; `None` registers only (`--no-engine`).
    pub engine: Option<EngineConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("--heartbeat should be at least one second")]
    Heartbeat,
    #[error("--ttl must be strictly superior to the heartbeat value")]
    Ttl,
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot resolve the advertised address {0}")]
    Resolve(String),
    #[error("the engine did not accept connections on {addr} within {secs} s")]
    NotReady { addr: SocketAddr, secs: u64 },
    #[error("cannot serve on the advertised address {addr}: {error}{hint}")]
    Advertise { addr: SocketAddr, error: std::io::Error, hint: &'static str },
    #[error("the engine stopped unexpectedly: {0}")]
    EngineGone(String),
}

/// Checks classic Swarm's rules: heartbeat >= 1 s, TTL > heartbeat; and that the backend
/// takes registrations.
pub fn validate(cfg: &AgentConfig) -> Result<(), AgentError> {
    if cfg.timing.heartbeat < Duration::from_secs(1) {
        return Err(AgentError::Heartbeat);
    }
    if cfg.timing.ttl <= cfg.timing.heartbeat {
        return Err(AgentError::Ttl);
    }
    if !cfg.discovery.can_register() {
        return Err(DiscoveryError::NotSupported { scheme: cfg.discovery.scheme() }.into());
    }
    Ok(())
}

/// Resolves the advertised `host:port` to a socket address (IPv4 first).
pub async fn resolve(e: &Entry) -> Result<SocketAddr, AgentError> {
    if let Ok(ip) = e.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, e.port));
    }
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((e.host.as_str(), e.port)).await.map_err(|_| AgentError::Resolve(e.to_string()))?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(|| AgentError::Resolve(e.to_string()))
}

/// Makes the engine listen on `addr` unless a TCP listener on the same port already covers it
/// (same address or a wildcard). Returns the address to probe for readiness.
pub fn ensure_listener(cfg: &mut EngineConfig, addr: SocketAddr) -> SocketAddr {
    let covering = cfg.hosts.iter().find_map(|h| match h {
        Listen::Tcp(a) if a.port() == addr.port() && (a.ip() == addr.ip() || a.ip().is_unspecified()) => Some(*a),
        _ => None,
    });
    match covering {
        Some(a) if a.ip().is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), a.port()),
        Some(a) => a,
        None => {
            cfg.hosts.insert(0, Listen::Tcp(addr));
            addr
        }
    }
}

pub struct Agent;

impl Agent {
    /// Runs until `shutdown`: starts the engine (if any) and waits until it accepts connections,
    /// then registers every heartbeat. On shutdown it deregisters first, then stops the engine
    /// (containers keep running, as with the engine alone).
    pub async fn run(mut cfg: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
        validate(&cfg)?;
        let engine_stop = CancellationToken::new();
        let mut engine_task = None;
        if let Some(mut ecfg) = cfg.engine.take() {
            let addr = resolve(&cfg.advertise).await?;
            let before = ecfg.hosts.len();
            let probe = ensure_listener(&mut ecfg, addr);
            if ecfg.hosts.len() != before {
                check_bindable(addr)?;
            }
            let mut task = tokio::spawn(engine::run(ecfg, engine_stop.clone()));
            if !wait_ready(probe, &mut task, &shutdown).await? {
                engine_stop.cancel();
                return finish(task).await;
            }
            tracing::info!(addr = %cfg.advertise, "engine serving at the advertised address");
            engine_task = Some(task);
        }
        let hb_stop = CancellationToken::new();
        let hb = {
            let (d, me, t, stop) = (cfg.discovery.clone(), cfg.advertise.clone(), cfg.timing, hb_stop.clone());
            tokio::spawn(async move { heartbeat::run(&d, &me, t, stop).await })
        };
        let exited = match engine_task.as_mut() {
            Some(task) => tokio::select! {
                _ = shutdown.cancelled() => None,
                r = task => Some(r),
            },
            None => {
                shutdown.cancelled().await;
                None
            }
        };
        hb_stop.cancel();
        let _ = hb.await;
        engine_stop.cancel();
        match (exited, engine_task) {
            (Some(r), _) => match r {
                Ok(Ok(())) => Err(AgentError::EngineGone("it exited".into())),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(AgentError::EngineGone(e.to_string())),
            },
            (None, Some(task)) => finish(task).await,
            (None, None) => Ok(()),
        }
    }
}

/// Fails early, with a hint, when the advertised address cannot be bound here (e.g. a NAT
/// address, which needs `-H tcp://0.0.0.0:<port>`), instead of deep inside the engine start.
fn check_bindable(addr: SocketAddr) -> Result<(), AgentError> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(error) => {
            let hint = match error.kind() {
                std::io::ErrorKind::AddrNotAvailable => {
                    " (not an address of this host; if it reaches this host through NAT, serve on all addresses with -H tcp://0.0.0.0:<port>)"
                }
                std::io::ErrorKind::AddrInUse => " (something already listens there; with --no-engine, join only registers that engine)",
                _ => "",
            };
            Err(AgentError::Advertise { addr, error, hint })
        }
    }
}

async fn finish(task: tokio::task::JoinHandle<Result<(), EngineError>>) -> Result<(), AgentError> {
    match task.await {
        Ok(r) => r.map_err(AgentError::from),
        Err(e) => Err(AgentError::EngineGone(e.to_string())),
    }
}

/// Waits until `probe` accepts a TCP connection. `Ok(false)` when `shutdown` came first; the
/// engine's own error when it exits first.
async fn wait_ready(
    probe: SocketAddr,
    task: &mut tokio::task::JoinHandle<Result<(), EngineError>>,
    shutdown: &CancellationToken,
) -> Result<bool, AgentError> {
    let deadline = tokio::time::Instant::now() + ENGINE_READY_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(probe).await.is_ok() {
            return Ok(true);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(AgentError::NotReady { addr: probe, secs: ENGINE_READY_TIMEOUT.as_secs() });
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(false),
            r = &mut *task => return match r {
                Ok(Ok(())) => Err(AgentError::EngineGone("it exited before serving".into())),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(AgentError::EngineGone(e.to_string())),
            },
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use discovery::DiscoveryOpts;

    fn cfg(url: &str, hb: u64, ttl: u64) -> AgentConfig {
        AgentConfig {
            advertise: Entry::parse("10.0.0.2:2375").unwrap(),
            discovery: Backend::from_url(url, &DiscoveryOpts::default()).unwrap(),
            timing: Timing { heartbeat: Duration::from_secs(hb), ttl: Duration::from_secs(ttl), delay: Duration::ZERO },
            engine: None,
        }
    }

    #[test]
    fn validates_like_classic_swarm() {
        assert!(validate(&cfg("etcd://127.0.0.1:2379/x", 1, 3)).is_ok());
        assert_eq!(validate(&cfg("etcd://127.0.0.1:2379/x", 0, 3)).unwrap_err().to_string(), "--heartbeat should be at least one second");
        assert_eq!(
            validate(&cfg("etcd://127.0.0.1:2379/x", 3, 3)).unwrap_err().to_string(),
            "--ttl must be strictly superior to the heartbeat value"
        );
        assert!(validate(&cfg("nodes://10.0.0.1:1", 1, 3)).unwrap_err().to_string().contains("static list"));
    }

    #[test]
    fn adds_the_advertised_listener_once() {
        let mut c = EngineConfig::with_defaults();
        let a: SocketAddr = "10.0.0.2:2375".parse().unwrap();
        assert_eq!(ensure_listener(&mut c, a), a);
        assert_eq!(c.hosts.len(), 2);
        assert_eq!(ensure_listener(&mut c, a), a);
        assert_eq!(c.hosts.len(), 2);
        let mut c = EngineConfig::with_defaults();
        c.hosts.push(Listen::Tcp("0.0.0.0:2375".parse().unwrap()));
        assert_eq!(ensure_listener(&mut c, a), "127.0.0.1:2375".parse().unwrap());
        assert_eq!(c.hosts.len(), 2);
    }

    #[test]
    fn refuses_foreign_or_busy_addresses() {
        let e = check_bindable("192.0.2.1:2375".parse().unwrap()).unwrap_err().to_string();
        assert!(e.contains("not an address of this host") && e.contains("-H tcp://0.0.0.0"), "{e}");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let e = check_bindable(l.local_addr().unwrap()).unwrap_err().to_string();
        assert!(e.contains("already listens"), "{e}");
    }

    #[tokio::test]
    async fn resolves_names() {
        assert_eq!(resolve(&Entry::parse("localhost:1").unwrap()).await.unwrap().port(), 1);
        assert!(resolve(&Entry::parse("no-such-host.invalid:1").unwrap()).await.is_err());
    }

    #[tokio::test]
    async fn no_engine_registers_until_shutdown() {
        // With no engine, run() returns Ok after shutdown (registration errors are only logged).
        let c = cfg("etcd://127.0.0.1:1/x", 1, 3);
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            s.cancel();
        });
        tokio::time::timeout(Duration::from_secs(20), Agent::run(c, stop)).await.unwrap().unwrap();
    }
}
