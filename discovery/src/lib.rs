//! Discovery: how managers find their nodes and how agents announce themselves.
//!
//! One trait ([`Discovery`]: register with a TTL, watch the full entry set, list once) and one
//! file per backend, picked by URL scheme in [`Backend::from_url`]:
//! - `nodes://a:p,b:p` or a bare list ([`nodes`]), `file:///path` ([`file`]): static lists with
//!   `[a:b]` ranges; nothing to register;
//! - `token://<token>` / `token://<host:port[/path]>/<token>` ([`token`]): the hosted token
//!   service's HTTP protocol, served by our own [`token_server`];
//! - `etcd://h1:p,h2:p/<prefix>` ([`etcd`]): etcd v3 with leases, watch-driven.
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub mod duration;
pub mod entry;
pub mod etcd;
pub mod file;
pub mod fsutil;
pub mod kv;
pub mod leadership;
pub mod mem;
pub mod nodes;
pub mod opts;
pub mod token;
pub mod token_server;
pub mod watch;

pub use entry::{expand_ranges, Entry};
pub use etcd::EtcdDiscovery;
pub use file::FileDiscovery;
pub use mem::MemDiscovery;
pub use nodes::NodesDiscovery;
pub use opts::{DiscoveryOpts, TlsFiles};
pub use token::TokenDiscovery;

/// What a watch delivers: the full entry set (sent first, then on every change), or a
/// transient error (the watch goes on and retries).
pub type WatchEvent = Result<Vec<Entry>, DiscoveryError>;

/// A discovery backend. Entries are `host:port` addresses of Docker engines.
pub trait Discovery: Send + Sync + 'static {
    /// The current entry set, once.
    fn list(&self) -> impl Future<Output = Result<Vec<Entry>, DiscoveryError>> + Send;
    /// Registers `me` so that it stays listed for `ttl`; agents call it every heartbeat.
    fn register(&self, me: &Entry, ttl: Duration) -> impl Future<Output = Result<(), DiscoveryError>> + Send;
    /// Removes `me` at once (clean shutdown). Best effort where the backend cannot.
    fn deregister(&self, me: &Entry) -> impl Future<Output = Result<(), DiscoveryError>> + Send;
    /// Watches the entry set: the current set first, then the full set each time it changes.
    /// Errors are sent as they happen and the watch retries; it ends when `stop` is cancelled
    /// or the receiver is dropped. `heartbeat` is the poll period of polling backends and the
    /// longest retry delay of the others.
    fn watch(&self, heartbeat: Duration, stop: CancellationToken) -> mpsc::Receiver<WatchEvent>;
}

/// Every backend, chosen by URL scheme (an enum rather than `dyn`, as the trait is async).
#[derive(Clone)]
pub enum Backend {
    Nodes(NodesDiscovery),
    File(FileDiscovery),
    Token(TokenDiscovery),
    Etcd(EtcdDiscovery),
}

impl Backend {
    /// Parses a discovery URL: `nodes://…` or a bare list, `file://…`, `token://…`, `etcd://…`.
    pub fn from_url(url: &str, opts: &DiscoveryOpts) -> Result<Backend, DiscoveryError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(DiscoveryError::Empty);
        }
        if opts.token_ca.is_some() {
            let scheme = url.split_once("://").map_or("nodes", |(s, _)| s);
            if scheme != "token" {
                return Err(DiscoveryError::TokenCaNotToken { scheme: scheme.to_string() });
            }
        }
        match url.split_once("://") {
            None => Ok(Backend::Nodes(NodesDiscovery::parse(url)?)),
            Some(("nodes", _)) => Ok(Backend::Nodes(NodesDiscovery::parse(url)?)),
            Some(("file", path)) => Ok(Backend::File(FileDiscovery::new(path)?)),
            Some(("token", rest)) => Ok(Backend::Token(TokenDiscovery::parse(rest, opts)?)),
            Some(("etcd", rest)) => Ok(Backend::Etcd(EtcdDiscovery::parse(rest, opts)?)),
            Some((scheme, _)) => Err(DiscoveryError::UnsupportedScheme(scheme.to_string())),
        }
    }

    /// The URL scheme (`nodes`, `file`, `token`, `etcd`).
    pub fn scheme(&self) -> &'static str {
        match self {
            Backend::Nodes(_) => "nodes",
            Backend::File(_) => "file",
            Backend::Token(_) => "token",
            Backend::Etcd(_) => "etcd",
        }
    }

    /// False for the static backends (nodes, file): an agent has nothing to register there.
    pub fn can_register(&self) -> bool {
        matches!(self, Backend::Token(_) | Backend::Etcd(_))
    }
}

macro_rules! each {
    ($self:ident, $d:ident => $e:expr) => {
        match $self {
            Backend::Nodes($d) => $e,
            Backend::File($d) => $e,
            Backend::Token($d) => $e,
            Backend::Etcd($d) => $e,
        }
    };
}

impl Discovery for Backend {
    async fn list(&self) -> Result<Vec<Entry>, DiscoveryError> {
        each!(self, d => d.list().await)
    }
    async fn register(&self, me: &Entry, ttl: Duration) -> Result<(), DiscoveryError> {
        each!(self, d => d.register(me, ttl).await)
    }
    async fn deregister(&self, me: &Entry) -> Result<(), DiscoveryError> {
        each!(self, d => d.deregister(me).await)
    }
    fn watch(&self, heartbeat: Duration, stop: CancellationToken) -> mpsc::Receiver<WatchEvent> {
        each!(self, d => d.watch(heartbeat, stop))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("invalid discovery entry {0:?}: expected host:port")]
    InvalidEntry(String),
    #[error("invalid port in {0:?}: must be 1-65535")]
    InvalidPort(String),
    #[error("invalid range in {0:?}: {1}")]
    InvalidRange(String, &'static str),
    #[error("unsupported discovery scheme {0:?}: use token://, etcd://, file:// or nodes://")]
    UnsupportedScheme(String),
    #[error("empty discovery URL")]
    Empty,
    #[error("invalid discovery URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid --discovery-opt {0:?}")]
    InvalidOpt(String),
    #[error("{scheme}:// discovery is a static list: there is nothing to register (add this node's address to the list instead)")]
    NotSupported { scheme: &'static str },
    #[error("token discovery needs the token service's address: pass --discovery-url or set SWARM_DISCOVERY_URL (e.g. http://10.0.0.1:8500/v1, served by `swarm token-service`), or use token://<host:port>/<token>")]
    NoTokenService,
    #[error("--discovery-cacert {path}: {reason}")]
    TokenCa { path: String, reason: String },
    #[error("--discovery-cacert is the CA of an https token service, but the token service URL is {url}: use https://")]
    TokenCaNeedsHttps { url: String },
    #[error("--discovery-cacert is for token:// discovery; {scheme}:// does not use it (etcd:// takes --discovery-opt kv.cacertfile)")]
    TokenCaNotToken { scheme: String },
    #[error("cannot reach the token service at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("token service at {url} answered {status}: {body}")]
    Http { url: String, status: u16, body: String },
    #[error("etcd at {endpoints}: {reason}")]
    Etcd { endpoints: String, reason: String },
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path} line {line}: {error}")]
    FileEntry { path: String, line: usize, error: Box<DiscoveryError> },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl DiscoveryError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        DiscoveryError::Io { path: path.as_ref().display().to_string(), error: source }
    }
}
