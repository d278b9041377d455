//! `env` and `config`: how to point a docker client at a machine, after checking its TLS
//! certificates — and re-issuing the server certificate when the host's IP changed (Docker
//! Machine's top complaint) instead of failing.
use super::{err, msg, CommandError, Ctx, Machine};
use crate::certs;
use crate::provisioner::ca_paths;
use crate::tlsclient::{self, TlsCheckError};
use std::path::Path;
use std::time::Duration;

/// Verifies that a docker client will be able to talk to the machine over TLS; on an IP
/// change (server cert no longer naming the host) re-issues the certificate over SSH.
/// Returns the URL to use (the engine, or the manager with `swarm`).
pub fn check_connection(ctx: &Ctx, m: &mut Machine, swarm: bool, log: &dyn Fn(&str)) -> Result<String, CommandError> {
    let url = m.driver.url().map_err(msg)?;
    let sw = m.host.host_options.swarm_options.clone();
    if swarm && !sw.master {
        return Err(msg(format!("\"{}\" is not a swarm master. The --swarm flag is intended for use with swarm masters", m.name())));
    }
    let ip = m.ip_host()?;
    let port = m.driver.engine_port();
    let a = m.host.host_options.auth_options.clone();
    if m.driver.provisions() {
        let covers = certs::cert_info(Path::new(&a.server_cert_path)).is_ok_and(|i| i.covers(&ip));
        if !covers {
            log(&format!(
                "The server certificate of \"{}\" does not name its address {ip} (did the IP change?): regenerating it...",
                m.name()
            ));
            regenerate(ctx, m, log)?;
        }
    }
    let ca = ca_paths(&m.host);
    let handshake = || -> Result<(), TlsCheckError> {
        let cfg = tlsclient::client_config(&ca.ca_cert, &ca.client_cert, &ca.client_key)?;
        tlsclient::handshake(&cfg, &ip, port, Duration::from_secs(20))
    };
    let res = match handshake() {
        Err(TlsCheckError::NameMismatch(_)) if m.driver.provisions() => {
            log(&format!("The engine on \"{}\" presents a certificate for another address: regenerating it...", m.name()));
            regenerate(ctx, m, log)?;
            handshake()
        }
        other => other,
    };
    if let Err(e) = res {
        return Err(msg(format!(
            "Error checking TLS connection: Error checking and/or regenerating the certs: There was an error validating certificates for host \"{}\": {e}\n\
             You can attempt to regenerate them using '{} regenerate-certs [name]'.\n\
             Be advised that this will trigger a Docker daemon restart which might stop running containers.",
            crate::driver::generic::join_host_port(&ip, port),
            ctx.prog
        )));
    }
    if swarm {
        return Ok(format!("tcp://{}", crate::driver::generic::join_host_port(&ip, sw.manager_port())));
    }
    Ok(url)
}

fn regenerate(ctx: &Ctx, m: &mut Machine, log: &dyn Fn(&str)) -> Result<(), CommandError> {
    m.with_provisioner(ctx, log, |p| p.provision(&ctx.provision_opts(true)).map(|_| ()))
}

#[derive(Debug, Clone, Default)]
pub struct EnvArgs {
    pub name: Option<String>,
    pub swarm: bool,
    pub shell: Option<String>,
    pub unset: bool,
    pub no_proxy: bool,
    /// The command line as typed (for the usage hint).
    pub command_line: String,
}

/// How one shell sets and unsets a variable, and comments.
struct Shell {
    set: fn(&str, &str) -> String,
    unset: fn(&str) -> String,
    hint: fn(&str) -> String,
}

fn shell_for(name: &str) -> Shell {
    match name {
        "fish" => Shell {
            set: |k, v| format!("set -gx {k} \"{v}\";"),
            unset: |k| format!("set -e {k};"),
            hint: |c| format!("# Run this command to configure your shell: \n# eval ({c})"),
        },
        "powershell" | "pwsh" => Shell {
            set: |k, v| format!("$Env:{k} = \"{v}\""),
            unset: |k| format!("Remove-Item Env:\\\\{k}"),
            hint: |c| format!("# Run this command to configure your shell: \n# & {c} | Invoke-Expression"),
        },
        "cmd" => Shell {
            set: |k, v| format!("SET {k}={v}"),
            unset: |k| format!("SET {k}="),
            hint: |c| format!("REM Run this command to configure your shell: \nREM \t@FOR /f \"tokens=*\" %i IN ('{c}') DO @%i"),
        },
        "tcsh" | "csh" => Shell {
            set: |k, v| format!("setenv {k} \"{v}\";"),
            unset: |k| format!("unsetenv {k};"),
            hint: |c| format!(": Run this command to configure your shell: \n: eval `{c}`"),
        },
        "emacs" => Shell {
            set: |k, v| format!("(setenv \"{k}\" \"{v}\")"),
            unset: |k| format!("(setenv \"{k}\" nil)"),
            hint: |c| {
                format!(";; Run this buffer to configure your shell: \n;; (with-temp-buffer (shell-command \"{c}\" (current-buffer)) (eval-buffer))")
            },
        },
        _ => Shell {
            set: |k, v| format!("export {k}=\"{v}\""),
            unset: |k| format!("unset {k}"),
            hint: |c| format!("# Run this command to configure your shell: \n# eval $({c})"),
        },
    }
}

fn detect_shell() -> String {
    std::env::var("SHELL")
        .ok()
        .and_then(|s| Path::new(&s).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "bash".into())
}

/// `NO_PROXY`/`no_proxy` with `ip` added (idempotent).
fn no_proxy(ip: &str) -> (String, String) {
    let (var, cur) = match std::env::var("no_proxy").ok().filter(|v| !v.is_empty()) {
        Some(v) => ("no_proxy", v),
        None => ("NO_PROXY", std::env::var("NO_PROXY").unwrap_or_default()),
    };
    let val = if cur.is_empty() {
        ip.to_string()
    } else if cur.split(',').any(|x| x.trim() == ip) {
        cur
    } else {
        format!("{cur},{ip}")
    };
    (var.to_string(), val)
}

pub fn env(ctx: &Ctx, a: &EnvArgs) -> Result<(), CommandError> {
    let sh_name = a.shell.clone().unwrap_or_else(detect_shell);
    let sh = shell_for(&sh_name);
    let mut lines = vec![];
    if a.unset {
        if a.name.is_some() {
            return Err(msg("Error: Expected no machine name when the -u flag is present"));
        }
        for k in ["DOCKER_TLS_VERIFY", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_MACHINE_NAME"] {
            lines.push((sh.unset)(k));
        }
        if a.no_proxy {
            let (var, _) = no_proxy("");
            lines.push((sh.unset)(&var));
        }
    } else {
        let name = ctx.one_or_default(a.name.as_deref())?;
        let mut m = ctx.load(&name)?;
        let url = check_connection(ctx, &mut m, a.swarm, &err)?;
        let cert_path = ctx.store.machine_dir(&name).display().to_string();
        lines.push((sh.set)("DOCKER_TLS_VERIFY", "1"));
        lines.push((sh.set)("DOCKER_HOST", &url));
        lines.push((sh.set)("DOCKER_CERT_PATH", &cert_path));
        lines.push((sh.set)("DOCKER_MACHINE_NAME", &name));
        if a.no_proxy {
            let (var, val) = no_proxy(&m.ip_host()?);
            lines.push((sh.set)(&var, &val));
        }
    }
    lines.push((sh.hint)(&a.command_line));
    println!("{}", lines.join("\n"));
    Ok(())
}

/// `config`: the docker CLI flags for a machine (after the TLS check).
pub fn config(ctx: &Ctx, name: Option<&str>, swarm: bool) -> Result<(), CommandError> {
    let name = ctx.one_or_default(name)?;
    let mut m = ctx.load(&name)?;
    let url = check_connection(ctx, &mut m, swarm, &err)?;
    let d = ctx.store.machine_dir(&name);
    println!(
        "--tlsverify\n--tlscacert=\"{}\"\n--tlscert=\"{}\"\n--tlskey=\"{}\"\n-H={url}",
        d.join("ca.pem").display(),
        d.join("cert.pem").display(),
        d.join("key.pem").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells() {
        let b = shell_for("bash");
        assert_eq!((b.set)("A", "1"), "export A=\"1\"");
        assert_eq!((b.unset)("A"), "unset A");
        assert_eq!((b.hint)("machine env m1"), "# Run this command to configure your shell: \n# eval $(machine env m1)");
        assert_eq!((shell_for("fish").set)("A", "1"), "set -gx A \"1\";");
        assert_eq!((shell_for("powershell").set)("A", "1"), "$Env:A = \"1\"");
        assert_eq!((shell_for("powershell").unset)("A"), "Remove-Item Env:\\\\A");
        assert_eq!((shell_for("cmd").set)("A", "1"), "SET A=1");
        assert_eq!((shell_for("cmd").unset)("A"), "SET A=");
        assert_eq!((shell_for("tcsh").set)("A", "1"), "setenv A \"1\";");
        assert_eq!((shell_for("emacs").unset)("A"), "(setenv \"A\" nil)");
        assert!((shell_for("cmd").hint)("machine env m1").ends_with("REM \t@FOR /f \"tokens=*\" %i IN ('machine env m1') DO @%i"));
    }
}
