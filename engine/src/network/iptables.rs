//! The iptables seam: one `iptables -w -t <table> …` command, or one `iptables-restore -w
//! --noflush` with rules on its stdin, behind a trait. [`RealIptables`] shells out (iptables-nft
//! here); the tests' fake records the commands and fails on demand. What the rules are is
//! decided in [`super::nat`], as data.
use futures_util::future::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// An iptables command that could not run, or failed.
#[derive(Debug, thiserror::Error)]
pub enum NatError {
    /// The command could not be started, fed or waited for.
    #[error("{op} {command}: {source}")]
    Io { op: &'static str, command: String, source: std::io::Error },
    /// `iptables` exited non-zero.
    #[error("{command}: {stderr}")]
    Failed { command: String, stderr: String },
    /// `iptables-restore` exited non-zero: its stderr, and the rules it was given.
    #[error("{command}: {stderr}\n{rules}")]
    Restore { command: String, stderr: String, rules: String },
}

/// How one `iptables` command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub success: bool,
    /// Its stderr, trimmed.
    pub stderr: String,
}

/// Runs iptables commands.
pub trait Iptables: Send + Sync {
    /// `iptables -w -t <table> <args>`; a non-zero exit is `Ok` with `success: false`.
    fn run<'a>(&'a self, table: &'a str, args: &'a [String]) -> BoxFuture<'a, Result<Exit, NatError>>;
    /// `iptables-restore -w --noflush` with `rules` on its stdin; a non-zero exit is an error.
    fn restore<'a>(&'a self, rules: &'a str) -> BoxFuture<'a, Result<(), NatError>>;
}

/// The `iptables` and `iptables-restore` binaries.
pub struct RealIptables;

impl Iptables for RealIptables {
    fn run<'a>(&'a self, table: &'a str, args: &'a [String]) -> BoxFuture<'a, Result<Exit, NatError>> {
        Box::pin(async move {
            let out = Command::new("iptables").arg("-w").args(["-t", table]).args(args).output().await.map_err(|source| NatError::Io {
                op: "running",
                command: "iptables".into(),
                source,
            })?;
            Ok(Exit { success: out.status.success(), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
        })
    }

    fn restore<'a>(&'a self, rules: &'a str) -> BoxFuture<'a, Result<(), NatError>> {
        Box::pin(async move {
            let command = "iptables-restore";
            let io = |op| move |source| NatError::Io { op, command: command.into(), source };
            let mut child = Command::new(command)
                .args(["-w", "--noflush"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(io("running"))?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(rules.as_bytes()).await.map_err(io("writing to"))?;
            }
            let out = child.wait_with_output().await.map_err(io("waiting for"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(NatError::Restore {
                    command: command.into(),
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    rules: rules.to_string(),
                })
            }
        })
    }
}
