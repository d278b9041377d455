//! `create`: validate, bootstrap certs (once, locked), pre-create check (exit 3), reserve the
//! name, let the driver build the host, provision it and check the engine over TLS. A failed
//! create rolls back (driver removal + store entry), so no half machine stays behind.
//! `--also` names are created in parallel with the first.
use super::{for_each_parallel, msg, out, CommandError, Ctx};
use crate::certs::{self, CaPaths};
use crate::driver::{self, DriverFlags, State};
use crate::host::{AuthOptions, EngineOptions, Host, HostOptions, SwarmOptions, CONFIG_VERSION};
use crate::provisioner::Provisioner;
use crate::ssh::Ssh2Client;
use crate::store::{valid_name, StoreError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct CreateArgs {
    /// The machine's name, then the `--also` names.
    pub names: Vec<String>,
    /// Positional arguments after the name (an error, as in Docker Machine).
    pub extra: Vec<String>,
    pub driver: String,
    pub driver_flags: DriverFlags,
    pub engine: EngineOptions,
    pub swarm: SwarmOptions,
    pub tls_san: Vec<String>,
    /// `--tls-ca-cert` etc.: use these instead of the store's `certs/`.
    pub ca_override: Option<CaPaths>,
}

/// Present in a machine's directory while `create` runs (holds its pid).
pub const CREATING: &str = ".creating";

/// Why a machine is unusable because its create did not finish, if so.
pub fn interrupted_create(machine_dir: &std::path::Path) -> Option<String> {
    let pid: i32 = std::fs::read_to_string(machine_dir.join(CREATING)).ok()?.trim().parse().ok()?;
    if std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    Some("machine creation was interrupted: remove it with `machine rm -f` and create it again".into())
}

/// `[^:]*://.*`
fn valid_discovery(d: &str) -> bool {
    d.split_once("://").is_some_and(|(scheme, _)| !scheme.contains(':'))
}

pub fn create(ctx: &Ctx, a: &CreateArgs) -> Result<(), CommandError> {
    if !a.extra.is_empty() {
        return Err(msg(format!("Invalid command line. Found extra arguments [{}]", a.extra.join(" "))));
    }
    if a.names.is_empty() {
        return Err(CommandError::NoMachineName);
    }
    if a.swarm.is_swarm && !valid_discovery(&a.swarm.discovery) {
        return Err(msg(format!("Swarm Discovery URL was in the wrong format: {:?}", a.swarm.discovery)));
    }
    if !driver::DRIVERS.contains(&a.driver.as_str()) {
        return Err(ctx.driver_not_found(&a.driver));
    }
    if a.driver != "none" {
        // Before anything is created: the engine options as the host's engine will get them
        // (the address is the host's when known; only its form matters to the check).
        let probe = Host {
            config_version: CONFIG_VERSION,
            driver: serde_json::Value::Null,
            driver_name: a.driver.clone(),
            host_options: HostOptions { engine_options: a.engine.clone(), swarm_options: swarm_options(a), ..Default::default() },
            name: a.names.first().cloned().unwrap_or_default(),
        };
        let ip = a.driver_flags.generic_ip_address.clone().filter(|i| !i.is_empty()).unwrap_or_else(|| "127.0.0.1".into());
        super::check_engine_options(ctx, &probe, &ip, a.driver_flags.generic_engine_port)
            .map_err(|e| msg(format!("Error creating machine: {e}")))?;
    }
    if a.names.len() == 1 {
        return create_one(ctx, a, &a.names[0], &|l: &str| out(l));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(d) = a.names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(msg(format!("Docker machine \"{d}\" given twice")));
    }
    for_each_parallel(&a.names, |n| create_one(ctx, a, n, &|l: &str| out(&format!("[{n}] {l}"))))
}

/// The swarm options recorded (`--swarm-master` or `--swarm` make it a swarm machine).
fn swarm_options(a: &CreateArgs) -> crate::host::SwarmOptions {
    let mut swarm = a.swarm.clone();
    if swarm.master || swarm.agent {
        swarm.is_swarm = true;
    }
    swarm
}

fn create_one(ctx: &Ctx, a: &CreateArgs, name: &str, log: &(dyn Fn(&str) + Sync)) -> Result<(), CommandError> {
    if !valid_name(name) {
        return Err(msg(format!("Error creating machine: {}", StoreError::InvalidName(name.into()))));
    }
    if ctx.store.exists(name) {
        return Err(StoreError::AlreadyExists(name.into()).into());
    }
    let mut drv = driver::from_flags(&a.driver, ctx.store.root(), name, &a.driver_flags).map_err(msg)?;
    let ca = a.ca_override.clone().unwrap_or_else(|| CaPaths::in_dir(&ctx.store.certs_dir()));
    let b = certs::bootstrap(&ca, false).map_err(|e| msg(format!("Error generating certificates: {e}")))?;
    if b.created_ca {
        log(&format!("Creating CA: {}", ca.ca_cert.display()));
    }
    if b.created_client {
        log(&format!("Creating client certificate: {}", ca.client_cert.display()));
    }
    log("Running pre-create checks...");
    drv.pre_create_check().map_err(|e| CommandError::PreCreate(e.to_string()))?;
    let dir = ctx.store.reserve(name)?;
    // Marks the machine as being created; `ls` reports it as an error if we die before the end.
    let marker = dir.join(CREATING);
    let _ = std::fs::write(&marker, std::process::id().to_string());
    let mut auth = AuthOptions::for_machine(&ctx.store.certs_dir(), &dir, a.tls_san.clone());
    if let Some(o) = &a.ca_override {
        auth.ca_cert_path = o.ca_cert.display().to_string();
        auth.ca_private_key_path = o.ca_key.display().to_string();
        auth.client_cert_path = o.client_cert.display().to_string();
        auth.client_key_path = o.client_key.display().to_string();
    }
    // DOCKER_CERT_PATH is the machine directory: it holds copies of the CA and client cert
    // from the start (provisioning refreshes them), so even `none` machines work with `env`.
    for (src, f, mode) in [(&ca.ca_cert, "ca.pem", 0o600), (&ca.client_cert, "cert.pem", 0o600), (&ca.client_key, "key.pem", 0o600)] {
        if let Ok(data) = std::fs::read(src) {
            let _ = crate::fsutil::write_atomic(&dir.join(f), &data, mode);
        }
    }
    let swarm = swarm_options(a);
    let mut host = Host {
        config_version: CONFIG_VERSION,
        driver: drv.to_json(),
        driver_name: a.driver.clone(),
        host_options: HostOptions {
            driver: a.driver.clone(),
            engine_options: a.engine.clone(),
            swarm_options: swarm,
            auth_options: auth,
            ..Default::default()
        },
        name: name.into(),
    };
    {
        let b = drv.base_mut();
        b.swarm_master = host.host_options.swarm_options.master;
        b.swarm_host = host.host_options.swarm_options.host.clone();
        b.swarm_discovery = host.host_options.swarm_options.discovery.clone();
    }
    host.driver = drv.to_json();
    let res = (|| -> Result<(), CommandError> {
        ctx.store.save(&host)?;
        log("Creating machine...");
        drv.create(&|l: &str| log(&format!("({name}) {l}")))
            .map_err(|e| msg(format!("Error creating machine: Error in driver during machine creation: {e}")))?;
        host.driver = drv.to_json();
        ctx.store.save(&host)?;
        log("Waiting for machine to be running, this may take a few minutes...");
        let deadline = Instant::now() + Duration::from_secs(60);
        while drv.state(Duration::from_secs(3)) != State::Running {
            if Instant::now() > deadline {
                return Err(msg("Error creating machine: Error waiting for machine to be running: the host did not come up within 60s"));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        if !drv.provisions() {
            return Ok(());
        }
        log("Detecting operating system of created instance...");
        log("Waiting for SSH to be available...");
        let t = drv.ssh_target().ok_or_else(|| msg("driver has no SSH access"))?;
        let ssh =
            Ssh2Client::connect_retry(&t, ctx.ssh_wait).map_err(|e| msg(format!("Error creating machine: Error detecting OS: {e}")))?;
        super::note_first_use(name, &ssh.host_key, log);
        log("Detecting the provisioner...");
        let p = Provisioner { host: &host, driver: drv.as_ref(), ssh: &ssh, log };
        p.provision(&ctx.provision_opts(false)).map_err(|e| msg(format!("Error creating machine: Error running provisioning: {e}")))?;
        log("Checking connection to Docker...");
        let mut m = super::Machine { host: host.clone(), driver: driver::load(&host).map_err(msg)? };
        super::env::check_connection(ctx, &mut m, false, log)?;
        log("Docker is up and running!");
        Ok(())
    })();
    if let Err(e) = res {
        log("Removing the half-created machine...");
        if let Err(re) = drv.remove() {
            log(&format!("(cleanup) {re}"));
        }
        let _ = ctx.store.remove(name);
        return Err(e);
    }
    let _ = std::fs::remove_file(&marker);
    log(&format!(
        "To see how to connect your Docker Client to the Docker Engine running on this virtual machine, run: {} env {name}",
        ctx.prog
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_format() {
        assert!(valid_discovery("token://abc"));
        assert!(valid_discovery("etcd://1.2.3.4:2379/x"));
        assert!(!valid_discovery("abc"));
        assert!(!valid_discovery("a:b://c"));
    }
}
