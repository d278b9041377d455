//! `ssh` and `scp`: the system's OpenSSH client with Docker Machine's options (interactive
//! shells, exit codes and stdio pass straight through), or libssh2 with `--native-ssh`.
use super::{msg, CommandError, Ctx, Machine};
use crate::driver::State;
use crate::ssh::SshTarget;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// Docker Machine's options for the external client, except that host keys are checked
/// against the machines' records (`known`), never accepted blindly.
pub fn base_options(known: &[std::path::PathBuf]) -> Vec<String> {
    let mut v: Vec<String> = [
        "-F",
        "/dev/null",
        "-o",
        "ConnectionAttempts=3",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
        "-o",
        "LogLevel=quiet",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "ServerAliveInterval=60",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "UpdateHostKeys=no",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let quoted = |p: &std::path::PathBuf| {
        let s = p.display().to_string();
        if s.contains(char::is_whitespace) {
            format!("\"{s}\"")
        } else {
            s
        }
    };
    let files: Vec<String> = known.iter().map(quoted).collect();
    let files = if files.is_empty() { "/dev/null".to_string() } else { files.join(" ") };
    v.extend(["-o".into(), format!("UserKnownHostsFile={files}")]);
    v
}

/// The machine's host key record (checked now, recorded on first use), for OpenSSH.
fn checked_known_hosts(m: &Machine, t: &SshTarget) -> Result<Vec<std::path::PathBuf>, CommandError> {
    m.check_host_key(t)?;
    Ok(t.known_hosts.iter().map(|k| k.path.clone()).collect())
}

fn in_path(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

fn target(m: &Machine) -> Result<SshTarget, CommandError> {
    m.driver.ssh_target().ok_or_else(|| msg(format!("machine \"{}\" has no SSH access (driver {})", m.name(), m.driver.driver_name())))
}

fn key_args(t: &SshTarget) -> Vec<String> {
    match &t.key {
        Some(k) => vec!["-o".into(), "IdentitiesOnly=yes".into(), "-i".into(), k.display().to_string()],
        None => vec![],
    }
}

/// `machine ssh [name] [command...]`.
pub fn ssh(ctx: &Ctx, args: &[String], native: bool) -> Result<(), CommandError> {
    let mut args = args.to_vec();
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    let name = if args.is_empty() { ctx.one_or_default(None)? } else { args.remove(0) };
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    let m = ctx.load(&name)?;
    if m.state(Duration::from_secs(10)) != State::Running {
        return Err(msg(format!("Error: Cannot run SSH command: Host \"{name}\" is not running")));
    }
    let t = target(&m)?;
    if native || !in_path("ssh") {
        if args.is_empty() {
            return Err(msg("an interactive session needs the OpenSSH client (ssh) installed"));
        }
        let c = m.ssh(Duration::from_secs(30))?;
        let o = crate::ssh::Ssh::exec(&c, &args.join(" ")).map_err(msg)?;
        print!("{}", o.output);
        return if o.status == 0 { Ok(()) } else { Err(CommandError::Exit(o.status)) };
    }
    let mut a = base_options(&checked_known_hosts(&m, &t)?);
    a.push(format!("{}@{}", t.user, t.host));
    a.extend(key_args(&t));
    a.extend(["-p".into(), t.port.to_string()]);
    a.extend(args);
    let e = Command::new("ssh").args(&a).exec();
    Err(msg(format!("running ssh: {e}")))
}

/// One side of a copy: local path or a machine's path.
#[derive(Debug, PartialEq)]
enum Side {
    Local(String),
    Remote { user: Option<String>, machine: String, path: String },
}

fn parse_side(s: &str, exists: &dyn Fn(&str) -> bool) -> Side {
    if let Some((host, path)) = s.split_once(':') {
        if !host.contains('/') {
            let (user, machine) = match host.split_once('@') {
                Some((u, m)) => (Some(u.to_string()), m.to_string()),
                None => (None, host.to_string()),
            };
            if machine == "localhost" {
                return Side::Local(path.to_string());
            }
            if exists(&machine) {
                return Side::Remote { user, machine, path: path.to_string() };
            }
        }
    }
    Side::Local(s.to_string())
}

#[derive(Debug, Clone, Default)]
pub struct ScpArgs {
    pub src: String,
    pub dst: String,
    pub recursive: bool,
    pub delta: bool,
    pub quiet: bool,
}

pub fn scp(ctx: &Ctx, a: &ScpArgs) -> Result<(), CommandError> {
    let exists = |n: &str| ctx.store.exists(n);
    let sides = [parse_side(&a.src, &exists), parse_side(&a.dst, &exists)];
    let mut keys = vec![];
    let mut known = vec![];
    let mut ports = std::collections::BTreeSet::new();
    let mut rendered = vec![];
    let mut machines = vec![];
    for s in &sides {
        match s {
            Side::Local(p) => rendered.push(p.clone()),
            Side::Remote { user, machine, path } => {
                let m = ctx.load(machine)?;
                let t = target(&m)?;
                known.extend(checked_known_hosts(&m, &t)?);
                ports.insert(t.port);
                if let Some(k) = &t.key {
                    keys.extend(["-i".to_string(), k.display().to_string()]);
                }
                rendered.push(format!("{}@{}:{path}", user.clone().unwrap_or(t.user.clone()), t.host));
                machines.push(m);
            }
        }
    }
    if ports.len() > 1 {
        return Err(msg("the two machines use different SSH ports: copy in two steps through this machine"));
    }
    let port = ports.into_iter().next().unwrap_or(22).to_string();
    let mut opts = base_options(&known);
    if !keys.is_empty() {
        opts.extend(["-o".into(), "IdentitiesOnly=yes".into()]);
        opts.extend(keys);
    }
    let mut cmd = if a.delta {
        check_rsync(ctx, &machines)?;
        rsync_command(&opts, &port, a)
    } else {
        if !in_path("scp") {
            return Err(msg("machine scp needs the OpenSSH client (scp), which is not installed"));
        }
        let mut c = Command::new("scp");
        c.arg("-3");
        if a.recursive {
            c.arg("-r");
        }
        if a.quiet {
            c.arg("-q");
        }
        c.args(&opts).args(["-P", &port]);
        c
    };
    cmd.args(&rendered);
    let st = cmd.status().map_err(|e| msg(format!("running {:?}: {e}", cmd.get_program())))?;
    if st.success() {
        Ok(())
    } else {
        Err(CommandError::Exit(st.code().unwrap_or(1)))
    }
}

/// `--delta` runs rsync here and on the machine (over `ssh`): both must have it, and rsync
/// cannot copy between two remote hosts.
fn check_rsync(ctx: &Ctx, machines: &[Machine]) -> Result<(), CommandError> {
    if machines.len() > 1 {
        return Err(msg("machine scp --delta copies between this host and one machine (rsync cannot copy between two remote hosts): copy without --delta, or in two steps"));
    }
    if !in_path("rsync") {
        return Err(msg("machine scp --delta needs rsync on this host, which is not installed (e.g. apt-get install rsync)"));
    }
    for m in machines {
        let c = m.ssh(Duration::from_secs(30))?;
        let o = crate::ssh::Ssh::exec(&c, "command -v rsync >/dev/null 2>&1 || [ -x /usr/bin/rsync ]").map_err(msg)?;
        if o.status != 0 {
            return Err(msg(format!(
                "machine scp --delta needs rsync on machine \"{n}\" too, which is not installed there: install it (e.g. `{p} ssh {n} sudo apt-get install -y rsync`) or copy without --delta",
                n = m.name(),
                p = ctx.prog
            )));
        }
    }
    Ok(())
}

/// `rsync -e "ssh <machine's options>"` preserving links, permissions and times (so the next
/// run's quick check skips unchanged files and only changed blocks travel).
fn rsync_command(ssh_opts: &[String], port: &str, a: &ScpArgs) -> Command {
    let mut ssh = vec!["ssh".to_string()];
    ssh.extend(ssh_opts.iter().map(|o| crate::ssh::quote(o)));
    ssh.extend(["-p".into(), port.into()]);
    let mut c = Command::new("rsync");
    c.arg("-e").arg(ssh.join(" ")).arg("-lptgoD");
    if a.recursive {
        c.arg("-r");
    }
    c.arg(if a.quiet { "-q" } else { "--progress" });
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides() {
        let ex = |n: &str| n == "m1";
        assert_eq!(parse_side("m1:/etc/hosts", &ex), Side::Remote { user: None, machine: "m1".into(), path: "/etc/hosts".into() });
        assert_eq!(parse_side("bob@m1:x", &ex), Side::Remote { user: Some("bob".into()), machine: "m1".into(), path: "x".into() });
        assert_eq!(parse_side("localhost:/tmp/a", &ex), Side::Local("/tmp/a".into()));
        assert_eq!(parse_side("./a:b", &ex), Side::Local("./a:b".into()));
        assert_eq!(parse_side("other:/x", &ex), Side::Local("other:/x".into()));
    }

    #[test]
    fn rsync_line() {
        let opts = vec!["-o".to_string(), "LogLevel=quiet".into(), "-i".into(), "/k dir/id".into()];
        let c = rsync_command(&opts, "2222", &ScpArgs { recursive: true, quiet: true, ..Default::default() });
        let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["-e", "ssh -o LogLevel=quiet -i '/k dir/id' -p 2222", "-lptgoD", "-r", "-q"]);
    }
}
