//! `start`, `stop`, `kill`, `restart`, `rm`: drivers do the host part; after a start the
//! Flotilla services are brought back (hosts without systemd have nothing else to start them)
//! and an IP change is caught by re-checking the certificates.
use super::{confirm, for_each_parallel, msg, out, CommandError, Ctx, Machine};
use crate::driver::State;
use std::time::{Duration, Instant};

fn wait_state(m: &Machine, want: State, max: Duration) -> Result<(), CommandError> {
    let deadline = Instant::now() + max;
    while m.state(Duration::from_secs(3)) != want {
        if Instant::now() > deadline {
            return Err(msg(format!("Machine \"{}\" did not reach state {want} within {max:?}", m.name())));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok(())
}

/// After the host is (re)started: SSH, services, certificates.
fn after_start(ctx: &Ctx, m: &mut Machine) -> Result<(), CommandError> {
    if !m.driver.provisions() {
        return Ok(());
    }
    out("Waiting for SSH to be available...");
    out("Detecting the provisioner...");
    m.with_provisioner(ctx, &|l: &str| out(l), |p| p.start_services(ctx.engine_wait))?;
    super::env::check_connection(ctx, m, false, &|l: &str| out(l))?;
    Ok(())
}

pub fn start(ctx: &Ctx, names: &[String]) -> Result<(), CommandError> {
    let names = ctx.names_or_default(names)?;
    for_each_parallel(&names, |n| {
        let mut m = ctx.load(n)?;
        if m.state(Duration::from_secs(5)) == State::Running && m.driver.driver_name() != "generic" && m.driver.driver_name() != "none" {
            return Err(msg(format!("Machine \"{n}\" is already running.")));
        }
        out(&format!("Starting \"{n}\"..."));
        m.driver.start().map_err(msg)?;
        wait_state(&m, State::Running, Duration::from_secs(60))?;
        m.save(&ctx.store)?;
        out(&format!("Machine \"{n}\" was started."));
        after_start(ctx, &mut m)
    })?;
    out(&format!("Started machines may have new IP addresses. You may need to re-run the `{} env` command.", ctx.prog));
    Ok(())
}

pub fn stop(ctx: &Ctx, names: &[String]) -> Result<(), CommandError> {
    let names = ctx.names_or_default(names)?;
    for_each_parallel(&names, |n| {
        let mut m = ctx.load(n)?;
        if m.driver.driver_name() == "local" && m.state(Duration::from_secs(2)) == State::Stopped {
            return Err(msg(format!("Machine \"{n}\" is already stopped.")));
        }
        out(&format!("Stopping \"{n}\"..."));
        m.driver.stop().map_err(msg)?;
        wait_state(&m, State::Stopped, Duration::from_secs(60))?;
        out(&format!("Machine \"{n}\" was stopped."));
        Ok(())
    })
}

pub fn kill(ctx: &Ctx, names: &[String]) -> Result<(), CommandError> {
    let names = ctx.names_or_default(names)?;
    for_each_parallel(&names, |n| {
        let mut m = ctx.load(n)?;
        if m.driver.driver_name() == "local" && m.state(Duration::from_secs(2)) == State::Stopped {
            return Err(msg(format!("Machine \"{n}\" is already stopped.")));
        }
        out(&format!("Killing \"{n}\"..."));
        m.driver.kill().map_err(msg)?;
        wait_state(&m, State::Stopped, Duration::from_secs(60))?;
        out(&format!("Machine \"{n}\" was killed."));
        Ok(())
    })
}

pub fn restart(ctx: &Ctx, names: &[String]) -> Result<(), CommandError> {
    let names = ctx.names_or_default(names)?;
    for_each_parallel(&names, |n| {
        let mut m = ctx.load(n)?;
        out(&format!("Restarting \"{n}\"..."));
        if m.state(Duration::from_secs(5)) == State::Stopped {
            m.driver.start().map_err(msg)?;
        } else {
            match m.driver.restart().map_err(msg)? {
                Some(()) => {}
                None => {
                    // No way to reboot (generic): restart the Flotilla services instead.
                    return m.with_provisioner(ctx, &|l: &str| out(l), |p| p.restart_services(ctx.engine_wait));
                }
            }
        }
        wait_state(&m, State::Running, Duration::from_secs(60))?;
        m.save(&ctx.store)?;
        after_start(ctx, &mut m)
    })?;
    out(&format!("Restarted machines may have new IP addresses. You may need to re-run the `{} env` command.", ctx.prog));
    Ok(())
}

pub fn rm(ctx: &Ctx, names: &[String], force: bool, yes: bool) -> Result<(), CommandError> {
    if names.is_empty() {
        return Err(msg("Error: Expected to get one or more machine names as arguments"));
    }
    out(&format!("About to remove {}", names.join(", ")));
    out("WARNING: This action will delete both local reference and remote instance.");
    if !force && !yes && !confirm("Are you sure? (y/n): ") {
        return Ok(());
    }
    let res = for_each_parallel(names, |n| {
        let mut m = match ctx.load(n) {
            Ok(m) => m,
            Err(e) => {
                if force && ctx.store.exists(n) {
                    let _ = ctx.store.remove(n);
                    out(&format!("Successfully removed {n}"));
                    return Ok(());
                }
                return Err(msg(format!("Error removing host \"{n}\": {e}")));
            }
        };
        if m.driver.driver_name() == "generic" {
            // Take the Flotilla services off the host (its data stays).
            let quick = Duration::from_secs(10);
            let r = m.ssh(quick).and_then(|ssh| {
                let p = crate::provisioner::Provisioner { host: &m.host, driver: m.driver.as_ref(), ssh: &ssh, log: &|_: &str| {} };
                p.deprovision().map_err(msg)
            });
            if let Err(e) = r {
                out(&format!("WARNING: could not remove the Flotilla services from \"{n}\": {e}"));
            }
        }
        let removed = m.driver.remove();
        if let Err(e) = &removed {
            if !force {
                return Err(msg(format!("Error removing host \"{n}\": {e}")));
            }
        }
        ctx.store.remove(n).map_err(|e| msg(format!("Error removing host \"{n}\": {e}")))?;
        out(&format!("Successfully removed {n}"));
        Ok(())
    });
    match res {
        Err(e) if force => {
            eprintln!("{e}");
            Ok(())
        }
        other => other,
    }
}
