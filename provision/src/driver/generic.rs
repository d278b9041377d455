//! `generic`: an existing Linux host reachable over SSH. Its state is a TCP dial of the SSH
//! port; it cannot be started, stopped or killed; removing it leaves the host alone (the
//! `rm` command takes the Flotilla services down over SSH first).
use super::{machine_dir, tcp_open, Driver, DriverError, DriverFlags, State};
use crate::host::BaseDriver;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generic {
    #[serde(flatten)]
    pub base: BaseDriver,
    #[serde(rename = "EnginePort", default = "default_port")]
    pub engine_port: u16,
    /// The key path given on the command line (copied into the machine directory).
    #[serde(rename = "SSHKey", default)]
    pub ssh_key: String,
}

fn default_port() -> u16 {
    crate::host::ENGINE_PORT
}

impl Generic {
    pub fn from_flags(base: BaseDriver, f: &DriverFlags) -> Result<Self, DriverError> {
        let ip = f
            .generic_ip_address
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| DriverError::Flag("generic driver requires the --generic-ip-address option".into()))?;
        let mut base = base;
        base.ip_address = ip;
        base.ssh_user = f.generic_ssh_user.clone();
        base.ssh_port = f.generic_ssh_port;
        Ok(Generic { base, engine_port: f.generic_engine_port, ssh_key: f.generic_ssh_key.clone() })
    }
}

impl Generic {
    /// The login before `create` copied the key (the machine has no host key record yet).
    fn login_target(&self) -> crate::ssh::SshTarget {
        let key = (!self.ssh_key.is_empty()).then(|| self.ssh_key.clone().into());
        crate::ssh::SshTarget {
            host: self.base.ip_address.clone(),
            port: self.base.ssh_port,
            user: self.base.ssh_user.clone(),
            key,
            known_hosts: None,
        }
    }
}

impl Driver for Generic {
    fn driver_name(&self) -> &'static str {
        "generic"
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
        if !self.ssh_key.is_empty() && !Path::new(&self.ssh_key).is_file() {
            return Err(DriverError::PreCreate(format!("SSH key does not exist: {:?}", self.ssh_key)));
        }
        // Fail fast (exit code 3) when the host cannot be logged into, instead of polling.
        let t = self.login_target();
        match crate::ssh::Ssh2Client::connect(&t, Duration::from_secs(15)) {
            Ok(_) => Ok(()),
            Err(e) => Err(DriverError::PreCreate(format!("cannot log in to {}@{} over SSH: {e}", t.user, join_host_port(&t.host, t.port)))),
        }
    }
    fn create(&mut self, log: &dyn Fn(&str)) -> Result<(), DriverError> {
        if self.ssh_key.is_empty() {
            log("No SSH key specified. Assuming an existing key at the default location.");
            return Ok(());
        }
        log("Importing SSH key...");
        let src = Path::new(&self.ssh_key);
        let name = src.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "id_rsa".into());
        let dst = machine_dir(&self.base).join(&name);
        let data = std::fs::read(src).map_err(|source| DriverError::Io { op: "reading SSH key", path: src.into(), source })?;
        crate::fsutil::write_atomic(&dst, &data, 0o600).map_err(|source| DriverError::Io {
            op: "copying SSH key to",
            path: dst.clone(),
            source,
        })?;
        let mut pub_src = src.as_os_str().to_os_string();
        pub_src.push(".pub");
        if let Ok(p) = std::fs::read(&pub_src) {
            let mut pub_dst = dst.as_os_str().to_os_string();
            pub_dst.push(".pub");
            let _ = crate::fsutil::write_atomic(Path::new(&pub_dst), &p, 0o600);
        }
        self.base.ssh_key_path = dst.display().to_string();
        Ok(())
    }
    fn state(&self, timeout: Duration) -> State {
        if tcp_open(&self.base.ip_address, self.base.ssh_port, timeout) {
            State::Running
        } else {
            State::Stopped
        }
    }
    fn url(&self) -> Result<String, DriverError> {
        if self.state(Duration::from_secs(5)) != State::Running {
            return Err(DriverError::NotRunning);
        }
        Ok(format!("tcp://{}", join_host_port(&self.base.ip_address, self.engine_port)))
    }
    fn engine_port(&self) -> u16 {
        self.engine_port
    }
    fn start(&mut self) -> Result<(), DriverError> {
        Err(DriverError::Unsupported("generic driver does not support start".into()))
    }
    fn stop(&mut self) -> Result<(), DriverError> {
        Err(DriverError::Unsupported("generic driver does not support stop".into()))
    }
    fn kill(&mut self) -> Result<(), DriverError> {
        Err(DriverError::Unsupported("generic driver does not support kill".into()))
    }
    fn restart(&mut self) -> Result<Option<()>, DriverError> {
        // Rebooting someone's server is not ours to do: restart the Flotilla services.
        Ok(None)
    }
    fn remove(&mut self) -> Result<(), DriverError> {
        Ok(())
    }
}

/// `host:port`, bracketing IPv6 addresses.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_checks_and_key_copy() {
        let e = Generic::from_flags(BaseDriver::default(), &DriverFlags::default()).unwrap_err();
        assert_eq!(e.to_string(), "generic driver requires the --generic-ip-address option");
        let d = tempfile::tempdir().unwrap();
        let f = DriverFlags {
            generic_ip_address: Some("127.0.0.1".into()),
            generic_ssh_key: "/nonexistent/key".into(),
            generic_ssh_port: 1,
            ..Default::default()
        };
        let base = BaseDriver { machine_name: "g".into(), store_path: d.path().display().to_string(), ..Default::default() };
        let g = Generic::from_flags(base.clone(), &f).unwrap();
        assert_eq!(g.pre_create_check().unwrap_err().to_string(), "SSH key does not exist: \"/nonexistent/key\"");
        assert_eq!(g.state(Duration::from_millis(500)), State::Stopped);
        assert!(matches!(g.url(), Err(DriverError::NotRunning)));
        let key = d.path().join("k");
        std::fs::write(&key, "KEY").unwrap();
        std::fs::write(d.path().join("k.pub"), "PUB").unwrap();
        let f = DriverFlags { generic_ssh_key: key.display().to_string(), ..f };
        let mut g = Generic::from_flags(base, &f).unwrap();
        let e = g.pre_create_check().unwrap_err().to_string();
        assert!(e.starts_with("cannot log in to root@127.0.0.1:1 over SSH: ssh: dial tcp"), "{e}");
        g.create(&|_| {}).unwrap();
        let copied = d.path().join("machines/g/k");
        assert_eq!(g.base.ssh_key_path, copied.display().to_string());
        assert_eq!(std::fs::read_to_string(&copied).unwrap(), "KEY");
        let j = g.to_json();
        assert_eq!(j["EnginePort"], 2376);
        assert_eq!(j["SSHKey"], key.display().to_string());
        assert_eq!(j["SSHPort"], 1);
        let back: Generic = serde_json::from_value(j).unwrap();
        assert_eq!(back.base, g.base);
    }
}
