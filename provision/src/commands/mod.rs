//! The `machine` commands. Each takes the store (and its own arguments), prints what Docker
//! Machine prints, and returns a [`CommandError`] whose [`exit_code`](CommandError::exit_code)
//! the binary exits with (3 for pre-create check failures, 1 otherwise).
pub mod create;
pub mod env;
pub mod info;
pub mod lifecycle;
pub mod ls;
pub mod maintain;
pub mod sshcmd;

use crate::driver::{self, Driver, State};
use crate::host::Host;
use crate::provisioner::{self, Provisioner};
use crate::ssh::{Ssh2Client, SshError};
use crate::store::{Store, StoreError};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Msg(String),
    #[error("Error with pre-create check: \"{0}\"")]
    PreCreate(String),
    #[error("Error: No machine name(s) specified and no \"default\" machine exists")]
    NoName,
    /// `create` without a name (the binary prints create's help first).
    #[error("Error: No machine name specified")]
    NoMachineName,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Exit silently with this code (e.g. the status of a command run by `machine ssh`).
    #[error("")]
    Exit(i32),
}

impl CommandError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::PreCreate(_) => 3,
            CommandError::Exit(c) => *c,
            _ => 1,
        }
    }
}

pub fn msg(e: impl std::fmt::Display) -> CommandError {
    CommandError::Msg(e.to_string())
}

/// What every command needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub store: Store,
    /// `--swarm-binary` / `MACHINE_SWARM_BINARY`, else `swarm` next to the running binary.
    pub swarm_binary: PathBuf,
    /// How the user invoked us (`machine`), for hints such as `eval $(machine env m1)`.
    pub prog: String,
    pub ssh_wait: Duration,
    pub engine_wait: Duration,
}

impl Ctx {
    pub fn new(store: Store) -> Ctx {
        Ctx {
            store,
            swarm_binary: default_swarm_binary(),
            prog: "machine".into(),
            ssh_wait: Duration::from_secs(120),
            engine_wait: Duration::from_secs(60),
        }
    }

    /// Names given, else `default` if that machine exists.
    pub fn names_or_default(&self, names: &[String]) -> Result<Vec<String>, CommandError> {
        if !names.is_empty() {
            return Ok(names.to_vec());
        }
        if self.store.exists("default") {
            return Ok(vec!["default".into()]);
        }
        Err(CommandError::NoName)
    }

    pub fn one_or_default(&self, name: Option<&str>) -> Result<String, CommandError> {
        let v: Vec<String> = name.map(|n| vec![n.to_string()]).unwrap_or_default();
        Ok(self.names_or_default(&v)?.remove(0))
    }

    pub fn load(&self, name: &str) -> Result<Machine, CommandError> {
        let host = self.store.load(name)?;
        let driver = driver::load(&host).map_err(|e| match e {
            driver::DriverError::NotFound(d) => self.driver_not_found(&d),
            e => msg(e),
        })?;
        Ok(Machine { host, driver })
    }

    /// The binary's own name (`docker-machine` when run as that), as Docker Machine's
    /// messages name it.
    pub fn prog_name(&self) -> String {
        std::path::Path::new(&self.prog).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "machine".into())
    }

    /// Docker Machine's message for a driver it does not have, with the plugin binary it
    /// would have looked for (`docker-machine-driver-X` when run as `docker-machine`).
    pub fn driver_not_found(&self, driver: &str) -> CommandError {
        msg(format!(
            "Driver \"{driver}\" not found. Do you have the plugin binary \"{}-driver-{driver}\" accessible in your PATH?",
            self.prog_name()
        ))
    }

    pub fn provision_opts(&self, force_certs: bool) -> provisioner::Options {
        provisioner::Options { swarm_binary: self.swarm_binary.clone(), force_certs, engine_wait: self.engine_wait }
    }
}

/// Has the `swarm` binary that will run the engine check the engine options (its own parser
/// and validation) here, before anything is created or uploaded. A binary that does not run
/// on this machine is checked on the host by the provisioner instead.
pub fn check_engine_options(ctx: &Ctx, host: &Host, ip: &str, port: u16) -> Result<(), CommandError> {
    use crate::provisioner::{engine_check, files};
    if !engine_check::runs_here(&ctx.swarm_binary) {
        tracing::info!(binary = %ctx.swarm_binary.display(), "swarm binary does not run here: the host checks the engine options");
        return Ok(());
    }
    engine_check::check_local(&ctx.swarm_binary, &files::engine_args(host, ip, port, &[])).map_err(msg)
}

/// `swarm` next to the running `machine` binary.
pub fn default_swarm_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MACHINE_SWARM_BINARY").filter(|p| !p.is_empty()) {
        return p.into();
    }
    std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("swarm"))).unwrap_or_else(|| PathBuf::from("swarm"))
}

/// A loaded machine: its record and its driver.
pub struct Machine {
    pub host: Host,
    pub driver: Box<dyn Driver>,
}

impl Machine {
    pub fn name(&self) -> &str {
        &self.host.name
    }

    /// Saves the driver's state back into the record.
    pub fn save(&mut self, store: &Store) -> Result<(), CommandError> {
        self.host.driver = self.driver.to_json();
        store.save(&self.host)?;
        Ok(())
    }

    /// Connects over SSH, retrying while the host boots.
    pub fn ssh(&self, wait: Duration) -> Result<Ssh2Client, CommandError> {
        let t = self
            .driver
            .ssh_target()
            .ok_or_else(|| msg(format!("machine {:?} has no SSH access (driver {})", self.name(), self.driver.driver_name())))?;
        let c = Ssh2Client::connect_retry(&t, wait).map_err(|e| match e {
            SshError::NeverUp(_) => msg(e),
            other => msg(format!("Error connecting to {}: {other}", self.name())),
        })?;
        note_first_use(self.name(), &c.host_key, &|l: &str| err(l));
        Ok(c)
    }

    /// Checks the host's SSH key against the record (recording it on first use) without
    /// logging in: before handing over to OpenSSH, which checks the same record.
    pub fn check_host_key(&self, t: &crate::ssh::SshTarget) -> Result<(), CommandError> {
        match Ssh2Client::check_host_key(t, Duration::from_secs(15)) {
            Ok(v) => {
                note_first_use(self.name(), &v, &|l: &str| err(l));
                Ok(())
            }
            Err(e @ SshError::HostKey(_)) => Err(msg(format!("Error connecting to {}: {e}", self.name()))),
            // Unreachable hosts and the like: OpenSSH reports those in its own words.
            Err(e) => {
                tracing::debug!(error = %e, "host key check skipped");
                Ok(())
            }
        }
    }

    /// Runs `f` with a provisioner for this machine.
    pub fn with_provisioner<T>(
        &self,
        ctx: &Ctx,
        log: &dyn Fn(&str),
        f: impl FnOnce(&Provisioner) -> Result<T, provisioner::ProvisionError>,
    ) -> Result<T, CommandError> {
        let ssh = self.ssh(ctx.ssh_wait)?;
        let p = Provisioner { host: &self.host, driver: self.driver.as_ref(), ssh: &ssh, log };
        f(&p).map_err(msg)
    }

    pub fn state(&self, timeout: Duration) -> State {
        self.driver.state(timeout)
    }

    /// Host part of the driver's IP (`none` stores host:port).
    pub fn ip_host(&self) -> Result<String, CommandError> {
        let ip = self.driver.ip().map_err(msg)?;
        Ok(match ip.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => h.to_string(),
            _ => ip,
        })
    }
}

/// Says which SSH host key was trusted on first use.
pub fn note_first_use(name: &str, v: &crate::hostkey::Verified, log: &dyn Fn(&str)) {
    if let crate::hostkey::Verified::Recorded(key) = v {
        log(&format!("Trusting the SSH host key of \"{name}\" on first use: {key}"));
    }
}

/// Prints a progress line on stdout.
pub fn out(line: &str) {
    println!("{line}");
}

/// Prints a progress line on stderr (commands whose stdout is meant for `eval`).
pub fn err(line: &str) {
    eprintln!("{line}");
}

/// Runs `f` for every name concurrently (one thread each, like Docker Machine), collecting
/// errors joined by newlines.
pub fn for_each_parallel(names: &[String], f: impl Fn(&str) -> Result<(), CommandError> + Sync) -> Result<(), CommandError> {
    let errors: Vec<CommandError> = std::thread::scope(|s| {
        let hs: Vec<_> = names.iter().map(|n| s.spawn(|| f(n))).collect();
        hs.into_iter().filter_map(|h| h.join().unwrap_or_else(|_| Err(msg("internal error: a worker panicked"))).err()).collect()
    });
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.into_iter().next().unwrap_or(CommandError::Exit(1))),
        _ => {
            let code = errors.iter().map(|e| e.exit_code()).max().unwrap_or(1);
            let text = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
            if code == 3 {
                Err(CommandError::PreCreate(text))
            } else {
                Err(CommandError::Msg(text))
            }
        }
    }
}

/// Asks `question` on stderr and reads y/n from stdin.
pub fn confirm(question: &str) -> bool {
    use std::io::Write;
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}
