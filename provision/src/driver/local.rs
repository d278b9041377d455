//! `local`: a host on this machine (see [`crate::nshost`]) on a machine-owned bridge
//! (`--local-bridge`, `--local-subnet`), with its own SSH key. Unlike `generic` it can be
//! stopped, started, killed and removed, so a multi-host cluster fits on one box. Needs root.
use super::{machine_dir, tcp_open, Driver, DriverError, DriverFlags, State};
use crate::host::{BaseDriver, Host};
use crate::nshost::{self, NsHost};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

pub const DEFAULT_BRIDGE: &str = "flmachine0";
pub const DEFAULT_SUBNET: &str = "10.211.0.0/24";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Local {
    #[serde(flatten)]
    pub base: BaseDriver,
    #[serde(rename = "Bridge")]
    pub bridge: String,
    #[serde(rename = "Subnet")]
    pub subnet: String,
    /// Short id naming the namespace (`flm-<id>`), veth and cgroup.
    #[serde(rename = "HostID", default)]
    pub host_id: String,
    #[serde(rename = "EnginePort", default = "default_port")]
    pub engine_port: u16,
}

fn default_port() -> u16 {
    crate::host::ENGINE_PORT
}

fn failed(e: impl std::fmt::Display) -> DriverError {
    DriverError::Failed(e.to_string())
}

impl Local {
    pub fn from_flags(base: BaseDriver, f: &DriverFlags) -> Result<Self, DriverError> {
        if nshost::parse_subnet(&f.local_subnet).is_none() {
            return Err(DriverError::Flag(format!(
                "invalid --local-subnet {:?}: expected an IPv4 CIDR with a prefix of 8 to 30",
                f.local_subnet
            )));
        }
        if f.local_bridge.is_empty() || f.local_bridge.len() > 15 {
            return Err(DriverError::Flag(format!("invalid --local-bridge {:?}: 1 to 15 characters", f.local_bridge)));
        }
        let host_id = nshost::short_id(&[&base.store_path, &base.machine_name]);
        Ok(Local { base, bridge: f.local_bridge.clone(), subnet: f.local_subnet.clone(), host_id, engine_port: f.generic_engine_port })
    }

    fn nshost(&self) -> NsHost {
        let (net, prefix) = nshost::parse_subnet(&self.subnet).unwrap_or((Ipv4Addr::new(10, 211, 0, 0), 24));
        NsHost {
            id: self.host_id.clone(),
            hostname: self.base.machine_name.clone(),
            dir: machine_dir(&self.base).join("host"),
            bridge: self.bridge.clone(),
            ip: self.base.ip_address.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
            prefix,
            gateway: nshost::nth(net, 1),
        }
    }

    /// Other local machines of this store on the same bridge.
    fn neighbours(&self) -> Vec<Local> {
        let dir = Path::new(&self.base.store_path).join("machines");
        let Ok(rd) = std::fs::read_dir(&dir) else { return vec![] };
        rd.flatten()
            .filter(|e| e.file_name().to_string_lossy() != self.base.machine_name)
            .filter_map(|e| std::fs::read(e.path().join("config.json")).ok())
            .filter_map(|d| serde_json::from_slice::<Host>(&d).ok())
            .filter(|h| h.driver_name == "local")
            .filter_map(|h| serde_json::from_value::<Local>(h.driver).ok())
            .filter(|l| l.bridge == self.bridge)
            .collect()
    }

    fn allocate_ip(&self) -> Result<Ipv4Addr, DriverError> {
        let (net, prefix) = nshost::parse_subnet(&self.subnet).ok_or_else(|| failed("invalid subnet"))?;
        let used: Vec<String> = self.neighbours().into_iter().map(|l| l.base.ip_address).collect();
        let size = 1u32 << (32 - prefix);
        (2..size - 1)
            .map(|n| nshost::nth(net, n))
            .find(|ip| !used.contains(&ip.to_string()))
            .ok_or_else(|| failed(format!("no free address left in {}", self.subnet)))
    }

    fn store_lock(&self) -> Result<crate::fsutil::FileLock, DriverError> {
        let path = Path::new(&self.base.store_path).join(".local.lock");
        crate::fsutil::FileLock::acquire(&path).map_err(|source| DriverError::Io { op: "locking", path, source })
    }
}

impl Driver for Local {
    fn driver_name(&self) -> &'static str {
        "local"
    }
    fn base(&self) -> &BaseDriver {
        &self.base
    }
    fn base_mut(&mut self) -> &mut BaseDriver {
        &mut self.base
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn pre_create_check(&self) -> Result<(), DriverError> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(DriverError::PreCreate("the local driver needs root (network namespaces, mounts, cgroups)".into()));
        }
        for tool in ["/usr/sbin/sshd", "/usr/bin/ssh-keygen"] {
            if !Path::new(tool).is_file() {
                return Err(DriverError::PreCreate(format!("the local driver needs OpenSSH ({tool} is missing)")));
            }
        }
        let store = Path::new(&self.base.store_path);
        if let Some(p) = nshost::PRIVATE_DIRS.iter().find(|p| store.starts_with(p)) {
            return Err(DriverError::PreCreate(format!(
                "the local driver cannot keep its hosts in a store under {p} (each host gets a private copy of it): use --storage-path"
            )));
        }
        Ok(())
    }
    fn create(&mut self, log: &dyn Fn(&str)) -> Result<(), DriverError> {
        let dir = machine_dir(&self.base);
        let key = dir.join("id_ed25519");
        if !key.is_file() {
            log("Creating SSH key...");
            nshost::sh(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-C", &format!("machine-{}", self.base.machine_name), "-f", &key.display().to_string()],
            )?;
        }
        self.base.ssh_key_path = key.display().to_string();
        let pub_path = dir.join("id_ed25519.pub");
        let pubkey = std::fs::read_to_string(&pub_path).map_err(|source| DriverError::Io { op: "reading", path: pub_path, source })?;
        {
            let _l = self.store_lock()?;
            let ip = self.allocate_ip()?;
            self.base.ip_address = ip.to_string();
            // Claim the address (in config.json, which neighbours read) before unlocking.
            let claim = dir.join("config.json");
            let mut host = std::fs::read(&claim).ok().and_then(|d| serde_json::from_slice::<Host>(&d).ok()).unwrap_or_else(|| Host {
                config_version: crate::host::CONFIG_VERSION,
                driver: serde_json::Value::Null,
                driver_name: "local".into(),
                host_options: Default::default(),
                name: self.base.machine_name.clone(),
            });
            host.driver = self.to_json();
            crate::fsutil::write_atomic(&claim, &serde_json::to_vec_pretty(&host).unwrap_or_default(), 0o600)
                .map_err(|source| DriverError::Io { op: "writing", path: claim.clone(), source })?;
            let h = self.nshost();
            log(&format!("Creating host {} on bridge {} ({})...", self.base.ip_address, self.bridge, h.netns()));
            nshost::ensure_bridge(&self.bridge, h.gateway, h.prefix)?;
            h.prepare(&pubkey)?;
        }
        Ok(self.nshost().start()?)
    }
    fn state(&self, timeout: Duration) -> State {
        let h = self.nshost();
        if !h.running() {
            return State::Stopped;
        }
        if tcp_open(&self.base.ip_address, 22, timeout.min(Duration::from_secs(2))) {
            State::Running
        } else {
            State::Starting
        }
    }
    fn url(&self) -> Result<String, DriverError> {
        if !self.nshost().running() {
            return Err(DriverError::NotRunning);
        }
        Ok(format!("tcp://{}:{}", self.base.ip_address, self.engine_port))
    }
    fn engine_port(&self) -> u16 {
        self.engine_port
    }
    fn engine_flags(&self) -> Vec<String> {
        vec![format!("--cgroup-parent={}/engine", self.nshost().cgroup())]
    }
    fn start(&mut self) -> Result<(), DriverError> {
        let h = self.nshost();
        let _ = nshost::ensure_bridge(&self.bridge, h.gateway, h.prefix);
        Ok(h.start()?)
    }
    fn stop(&mut self) -> Result<(), DriverError> {
        self.nshost().stop(Duration::from_secs(10));
        Ok(())
    }
    fn kill(&mut self) -> Result<(), DriverError> {
        self.nshost().stop(Duration::ZERO);
        Ok(())
    }
    fn restart(&mut self) -> Result<Option<()>, DriverError> {
        self.stop()?;
        self.start()?;
        Ok(Some(()))
    }
    fn remove(&mut self) -> Result<(), DriverError> {
        let _l = self.store_lock()?;
        self.nshost().destroy();
        // Drop our claim now (the caller deletes the directory), so that of several machines
        // removed in parallel the last one sees no neighbour and takes the bridge down.
        let _ = std::fs::remove_file(machine_dir(&self.base).join("config.json"));
        if self.neighbours().is_empty() {
            nshost::remove_bridge(&self.bridge);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_ip_allocation() {
        let d = tempfile::tempdir().unwrap();
        let base = |n: &str| BaseDriver {
            machine_name: n.into(),
            store_path: d.path().display().to_string(),
            ssh_user: "root".into(),
            ssh_port: 22,
            ..Default::default()
        };
        let bad = DriverFlags { local_subnet: "10.0.0.0".into(), ..Default::default() };
        assert!(Local::from_flags(base("a"), &bad).is_err());
        let f = DriverFlags { local_bridge: "flmtest".into(), local_subnet: "10.250.3.0/29".into(), ..Default::default() };
        let mut a = Local::from_flags(base("a"), &f).unwrap();
        assert_eq!(a.allocate_ip().unwrap().to_string(), "10.250.3.2");
        a.base.ip_address = "10.250.3.2".into();
        let s = crate::store::Store::new(d.path());
        s.reserve("a").unwrap();
        s.save(&Host {
            config_version: 3,
            driver: a.to_json(),
            driver_name: "local".into(),
            host_options: Default::default(),
            name: "a".into(),
        })
        .unwrap();
        let b = Local::from_flags(base("b"), &f).unwrap();
        assert_eq!(b.allocate_ip().unwrap().to_string(), "10.250.3.3");
        assert_ne!(a.host_id, b.host_id);
        assert!(a.engine_flags()[0].starts_with("--cgroup-parent=/flm-"));
        assert_eq!(b.state(Duration::from_millis(100)), State::Stopped);
        let back: Local = serde_json::from_value(a.to_json()).unwrap();
        assert_eq!(back.host_id, a.host_id);
    }
}
