//! `none`: registers an engine that already serves TLS at `--url`; nothing is created or
//! provisioned, and it cannot be started, stopped, killed or restarted.
use super::{Driver, DriverError, DriverFlags, State};
use crate::host::BaseDriver;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoneDriver {
    #[serde(flatten)]
    pub base: BaseDriver,
    #[serde(rename = "URL", default)]
    pub url: String,
}

/// `tcp://host:port` → `host:port`.
fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hp = rest.split('/').next().unwrap_or("");
    (!hp.is_empty()).then(|| hp.to_string())
}

impl NoneDriver {
    pub fn from_flags(base: BaseDriver, f: &DriverFlags) -> Result<Self, DriverError> {
        let url = f
            .url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| DriverError::Flag("--url option is required when no driver is selected".into()))?;
        let mut base = base;
        base.ip_address = host_port(&url).ok_or_else(|| DriverError::Flag(format!("invalid --url {url:?}")))?;
        base.ssh_user = String::new();
        base.ssh_port = 0;
        Ok(NoneDriver { base, url })
    }
}

impl Driver for NoneDriver {
    fn driver_name(&self) -> &'static str {
        "none"
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
    fn create(&mut self, _log: &dyn Fn(&str)) -> Result<(), DriverError> {
        Ok(())
    }
    fn state(&self, _timeout: Duration) -> State {
        State::Running
    }
    fn url(&self) -> Result<String, DriverError> {
        Ok(self.url.clone())
    }
    fn engine_port(&self) -> u16 {
        self.base.ip_address.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(crate::host::ENGINE_PORT)
    }
    fn ssh_target(&self) -> Option<crate::ssh::SshTarget> {
        None
    }
    fn provisions(&self) -> bool {
        false
    }
    fn start(&mut self) -> Result<(), DriverError> {
        Err(DriverError::Unsupported("hosts without a driver cannot be started".into()))
    }
    fn stop(&mut self) -> Result<(), DriverError> {
        Err(DriverError::Unsupported("hosts without a driver cannot be stopped".into()))
    }
    fn kill(&mut self) -> Result<(), DriverError> {
        Err(DriverError::Unsupported("hosts without a driver cannot be killed".into()))
    }
    fn restart(&mut self) -> Result<Option<()>, DriverError> {
        Err(DriverError::Unsupported("hosts without a driver cannot be restarted".into()))
    }
    fn remove(&mut self) -> Result<(), DriverError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_required_and_ip_is_host_port() {
        let e = NoneDriver::from_flags(BaseDriver::default(), &DriverFlags::default()).unwrap_err();
        assert_eq!(e.to_string(), "--url option is required when no driver is selected");
        let f = DriverFlags { url: Some("tcp://10.0.0.9:2376".into()), ..Default::default() };
        let d = NoneDriver::from_flags(BaseDriver::default(), &f).unwrap();
        assert_eq!(d.ip().unwrap(), "10.0.0.9:2376");
        assert_eq!(d.url().unwrap(), "tcp://10.0.0.9:2376");
        let j = d.to_json();
        assert_eq!(j["URL"], "tcp://10.0.0.9:2376");
        assert_eq!(j["IPAddress"], "10.0.0.9:2376");
        let mut d = d;
        assert_eq!(d.stop().unwrap_err().to_string(), "hosts without a driver cannot be stopped");
    }
}
