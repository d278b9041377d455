//! `provision`, `regenerate-certs`, `upgrade`: work on a machine's host after its creation.
use super::{confirm, for_each_parallel, msg, out, CommandError, Ctx};
use crate::certs;
use crate::driver::State;
use crate::provisioner::ca_paths;
use std::time::Duration;

fn reprovision(ctx: &Ctx, n: &str, force_certs: bool) -> Result<(), CommandError> {
    let m = ctx.load(n)?;
    if !m.driver.provisions() {
        return Err(msg(format!("machine \"{n}\" (driver {}) is not provisioned by machine", m.driver.driver_name())));
    }
    if m.state(Duration::from_secs(5)) != State::Running {
        return Err(msg(format!("Host \"{n}\" is not running")));
    }
    super::check_engine_options(ctx, &m.host, &m.ip_host()?, m.driver.engine_port())?;
    let log = |l: &str| out(&format!("({n}) {l}"));
    m.with_provisioner(ctx, &log, |p| p.provision(&ctx.provision_opts(force_certs)).map(|_| ()))
}

pub fn provision(ctx: &Ctx, names: &[String]) -> Result<(), CommandError> {
    let names = ctx.names_or_default(names)?;
    for_each_parallel(&names, |n| reprovision(ctx, n, false))
}

/// Forgets the SSH host key recorded for machine `n` (the next connection records the
/// key the host presents then).
fn reset_host_key(ctx: &Ctx, n: &str) -> Result<(), CommandError> {
    let m = ctx.load(n)?;
    let Some(kh) = m.driver.ssh_target().and_then(|t| t.known_hosts) else {
        return Ok(());
    };
    match kh.reset().map_err(msg)? {
        Some(old) => out(&format!("Forgetting the recorded SSH host key of \"{n}\": {}", old.describe())),
        None => out(&format!("No SSH host key was recorded for \"{n}\"")),
    }
    Ok(())
}

pub fn regenerate_certs(ctx: &Ctx, names: &[String], force: bool, client_certs: bool, reset_host_keys: bool) -> Result<(), CommandError> {
    let names = ctx.names_or_default(names)?;
    if !force && !confirm("Regenerate TLS machine certs?  Warning: this is irreversible. (y/n): ") {
        return Ok(());
    }
    if client_certs {
        let mut done = std::collections::BTreeSet::new();
        for n in &names {
            let ca = ca_paths(&ctx.store.load(n)?);
            if done.insert(ca.client_cert.clone()) {
                let b = certs::bootstrap(&ca, true).map_err(msg)?;
                out(&format!("Regenerating client certificate {}", ca.client_cert.display()));
                if b.created_ca {
                    out("The CA was renewed too: run regenerate-certs for every machine.");
                }
            }
        }
    }
    for_each_parallel(&names, |n| {
        if reset_host_keys {
            reset_host_key(ctx, n)?;
        }
        out(&format!("Regenerating TLS certificates for \"{n}\""));
        reprovision(ctx, n, true)
    })
}

pub fn upgrade(ctx: &Ctx, names: &[String]) -> Result<(), CommandError> {
    let names = ctx.names_or_default(names)?;
    for_each_parallel(&names, |n| {
        let m = ctx.load(n)?;
        if m.state(Duration::from_secs(5)) != State::Running && m.driver.driver_name() == "local" {
            super::lifecycle::start(ctx, &[n.to_string()])?;
        }
        out(&format!("Upgrading swarm on \"{n}\" from {}...", ctx.swarm_binary.display()));
        reprovision(ctx, n, false)
    })
}
