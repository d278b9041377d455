//! `inspect`, `ip`, `url`, `status`, `version`: what a machine is and how to reach it.
use super::{msg, CommandError, Ctx};
use crate::provisioner::ca_paths;
use crate::template::{pretty, Template};
use std::time::Duration;

pub fn inspect(ctx: &Ctx, name: Option<&str>, format: Option<&str>) -> Result<(), CommandError> {
    let name = ctx.one_or_default(name)?;
    let host = ctx.store.load(&name)?;
    let v = serde_json::to_value(&host).map_err(msg)?;
    match format {
        None | Some("") => println!("{}", pretty(&v)),
        Some(f) => {
            let t = Template::parse(f).map_err(msg)?;
            println!("{}", t.execute(&v).map_err(msg)?);
        }
    }
    Ok(())
}

pub fn ip(ctx: &Ctx, names: &[String]) -> Result<(), CommandError> {
    for n in ctx.names_or_default(names)? {
        let m = ctx.load(&n)?;
        println!("{}", m.driver.ip().map_err(msg)?);
    }
    Ok(())
}

pub fn url(ctx: &Ctx, name: Option<&str>) -> Result<(), CommandError> {
    let m = ctx.load(&ctx.one_or_default(name)?)?;
    println!("{}", m.driver.url().map_err(msg)?);
    Ok(())
}

pub fn status(ctx: &Ctx, name: Option<&str>) -> Result<(), CommandError> {
    let m = ctx.load(&ctx.one_or_default(name)?)?;
    println!("{}", m.state(Duration::from_secs(10)));
    Ok(())
}

pub fn version(ctx: &Ctx, name: Option<&str>) -> Result<(), CommandError> {
    let Some(name) = name else {
        println!("{} version {}, build flotilla", ctx.prog_name(), env!("CARGO_PKG_VERSION"));
        return Ok(());
    };
    let m = ctx.load(name)?;
    let ca = ca_paths(&m.host);
    let cfg = crate::tlsclient::client_config(&ca.ca_cert, &ca.client_cert, &ca.client_key).map_err(msg)?;
    let v = crate::tlsclient::docker_version(&cfg, &m.ip_host()?, m.driver.engine_port(), Duration::from_secs(20)).map_err(msg)?;
    println!("{}", v.trim_start_matches('v'));
    Ok(())
}
