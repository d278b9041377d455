//! Drivers: how a machine comes to exist and how to reach it. One file per driver behind one
//! trait; their state is the `Driver` object of config.json (BaseDriver fields + their own).
pub mod generic;
pub mod local;
pub mod none;

use crate::host::{BaseDriver, Host};
use crate::ssh::SshTarget;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A `PreCreateCheck` failure (exit code 3).
    #[error("{0}")]
    PreCreate(String),
    #[error("{0}")]
    Flag(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("Host is not running")]
    NotRunning,
    /// The commands name the plugin binary after the running binary (`Ctx::driver_not_found`).
    #[error("Driver \"{0}\" not found")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Host(#[from] crate::nshost::NsHostError),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("invalid driver state in config.json: {0}")]
    Config(#[from] serde_json::Error),
}

/// Docker Machine's machine states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    None,
    Running,
    Paused,
    Saved,
    Stopped,
    Stopping,
    Starting,
    Error,
    Timeout,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::None => "",
            State::Running => "Running",
            State::Paused => "Paused",
            State::Saved => "Saved",
            State::Stopped => "Stopped",
            State::Stopping => "Stopping",
            State::Starting => "Starting",
            State::Error => "Error",
            State::Timeout => "Timeout",
        })
    }
}

/// Every driver flag of `create` (each driver reads its own).
#[derive(Debug, Clone)]
pub struct DriverFlags {
    pub generic_ip_address: Option<String>,
    pub generic_ssh_user: String,
    pub generic_ssh_key: String,
    pub generic_ssh_port: u16,
    pub generic_engine_port: u16,
    pub url: Option<String>,
    pub local_bridge: String,
    pub local_subnet: String,
}

impl Default for DriverFlags {
    fn default() -> Self {
        DriverFlags {
            generic_ip_address: None,
            generic_ssh_user: "root".into(),
            generic_ssh_key: String::new(),
            generic_ssh_port: 22,
            generic_engine_port: crate::host::ENGINE_PORT,
            url: None,
            local_bridge: local::DEFAULT_BRIDGE.into(),
            local_subnet: local::DEFAULT_SUBNET.into(),
        }
    }
}

/// Names of the drivers built in.
pub const DRIVERS: &[&str] = &["generic", "local", "none"];

pub trait Driver: Send + Sync {
    fn driver_name(&self) -> &'static str;
    fn base(&self) -> &BaseDriver;
    fn base_mut(&mut self) -> &mut BaseDriver;
    /// The driver's state as stored in config.json.
    fn to_json(&self) -> serde_json::Value;
    /// Checks before anything is created; failures exit with code 3.
    fn pre_create_check(&self) -> Result<(), DriverError> {
        Ok(())
    }
    /// Brings the host into existence (generic: copies the key; local: builds the host).
    /// `log` prints a progress line.
    fn create(&mut self, log: &dyn Fn(&str)) -> Result<(), DriverError>;
    fn state(&self, timeout: Duration) -> State;
    fn ip(&self) -> Result<String, DriverError> {
        Ok(self.base().ip_address.clone())
    }
    /// `tcp://IP:port` of the engine, an error when the host is not running.
    fn url(&self) -> Result<String, DriverError>;
    fn engine_port(&self) -> u16;
    /// How to log in (with the machine's host key record), `None` for drivers without SSH (`none`).
    fn ssh_target(&self) -> Option<SshTarget> {
        let b = self.base();
        let key = (!b.ssh_key_path.is_empty()).then(|| b.ssh_key_path.clone().into());
        let known_hosts = Some(crate::hostkey::KnownHosts::in_dir(&b.machine_name, &machine_dir(b)));
        Some(SshTarget { host: b.ip_address.clone(), port: b.ssh_port, user: b.ssh_user.clone(), key, known_hosts })
    }
    /// Whether `create` provisions the host (false for `none`).
    fn provisions(&self) -> bool {
        true
    }
    /// Extra `swarm engine` flags the host needs (local: its own cgroup parent).
    fn engine_flags(&self) -> Vec<String> {
        vec![]
    }
    fn start(&mut self) -> Result<(), DriverError>;
    fn stop(&mut self) -> Result<(), DriverError>;
    fn kill(&mut self) -> Result<(), DriverError>;
    /// Restart the host; `None` when the driver has no way and the caller should restart the
    /// Flotilla services over SSH instead.
    fn restart(&mut self) -> Result<Option<()>, DriverError>;
    fn remove(&mut self) -> Result<(), DriverError>;
}

fn base_for(store_root: &Path, name: &str) -> BaseDriver {
    BaseDriver {
        machine_name: name.into(),
        ssh_user: "root".into(),
        ssh_port: 22,
        store_path: store_root.display().to_string(),
        ..Default::default()
    }
}

/// A driver for a new machine, configured from the create flags.
pub fn from_flags(driver: &str, store_root: &Path, name: &str, f: &DriverFlags) -> Result<Box<dyn Driver>, DriverError> {
    let base = base_for(store_root, name);
    Ok(match driver {
        "generic" => Box::new(generic::Generic::from_flags(base, f)?),
        "none" => Box::new(none::NoneDriver::from_flags(base, f)?),
        "local" => Box::new(local::Local::from_flags(base, f)?),
        other => return Err(DriverError::NotFound(other.into())),
    })
}

/// The driver of a stored machine.
pub fn load(host: &Host) -> Result<Box<dyn Driver>, DriverError> {
    let v = host.driver.clone();
    Ok(match host.driver_name.as_str() {
        "generic" => Box::new(serde_json::from_value::<generic::Generic>(v)?),
        "none" => Box::new(serde_json::from_value::<none::NoneDriver>(v)?),
        "local" => Box::new(serde_json::from_value::<local::Local>(v)?),
        other => return Err(DriverError::NotFound(other.into())),
    })
}

/// True when a TCP connection to `host:port` opens within `timeout`.
pub fn tcp_open(host: &str, port: u16, timeout: Duration) -> bool {
    use std::net::ToSocketAddrs;
    let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    match addr.to_socket_addrs() {
        Ok(mut it) => it.next().is_some_and(|a| std::net::TcpStream::connect_timeout(&a, timeout).is_ok()),
        Err(_) => false,
    }
}

/// The machine's directory inside the store (`StorePath` holds the store root).
pub fn machine_dir(b: &BaseDriver) -> std::path::PathBuf {
    Path::new(&b.store_path).join("machines").join(&b.machine_name)
}
