//! The TLS flags that `swarm engine` (and so `swarm join`) and `swarm manage` share, spelled as
//! dockerd and classic Swarm spell them. Each command turns them into its own `TlsOptions`.
use std::path::PathBuf;

#[derive(clap::Args, Debug, Default)]
pub struct TlsFlags {
    /// Serve TLS on TCP listeners (implied by --tlsverify). A manager also presents --tlscert
    /// to its nodes.
    #[arg(long)]
    pub tls: bool,
    /// TLS both ways: require client certificates signed by --tlscacert.
    #[arg(long)]
    pub tlsverify: bool,
    /// Trust certificates signed by this CA only (clients, and a manager's nodes).
    #[arg(long, value_name = "PATH")]
    pub tlscacert: Option<PathBuf>,
    /// The server's certificate.
    #[arg(long, value_name = "PATH")]
    pub tlscert: Option<PathBuf>,
    /// The key of --tlscert.
    #[arg(long, value_name = "PATH")]
    pub tlskey: Option<PathBuf>,
}
