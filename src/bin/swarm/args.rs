//! Classic Swarm's command line was parsed by Go's flag package, which reads `-flag` and
//! `--flag` alike (`swarm -l debug -experimental manage -cluster-opt k=v …`). clap reads only
//! `--flag`, so before parsing, a single-dash word that names a long flag of the command being
//! parsed (or of `swarm` itself) is rewritten to its double-dash form. Anything else (short
//! flags, values, positionals, everything after `--`, the shim's arguments) is left alone.
use clap::Command;
use std::ffi::OsString;

/// The long names (and aliases) of `cmd`'s flags, with whether each takes a value.
fn longs(cmd: &Command) -> Vec<(String, bool)> {
    let mut v = vec![];
    for a in cmd.get_arguments() {
        let takes = a.get_num_args().is_some_and(|n| n.takes_values()) || a.get_action().takes_values();
        for l in a.get_long_and_visible_aliases().into_iter().flatten() {
            v.push((l.to_string(), takes));
        }
        for l in a.get_all_aliases().into_iter().flatten() {
            v.push((l.to_string(), takes));
        }
    }
    v
}

/// Whether `arg` (a short flag or a short-flag cluster like `-H`) consumes the next word.
fn short_takes_value(cmd: &Command, word: &str) -> bool {
    let Some(c) = word.strip_prefix('-').and_then(|s| s.chars().last()) else { return false };
    if word.len() != 2 {
        return false;
    }
    cmd.get_arguments().any(|a| a.get_short() == Some(c) && a.get_action().takes_values())
}

/// Rewrites `-name`/`-name=value` to `--name`/`--name=value` where `name` is a long flag of
/// the command being parsed (see the module doc).
pub fn normalize(args: Vec<OsString>, root: &Command) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    if let Some(prog) = it.next() {
        out.push(prog);
    }
    let root_longs = longs(root);
    let mut cmd: &Command = root;
    let mut cmd_longs = root_longs.clone();
    let mut at_root = true;
    let mut skip_value = false;
    for a in it.by_ref() {
        let Some(s) = a.to_str().map(str::to_string) else {
            out.push(a);
            continue;
        };
        if skip_value {
            skip_value = false;
            out.push(a);
            continue;
        }
        if s == "--" {
            out.push(a);
            break;
        }
        if !s.starts_with('-') {
            if at_root {
                match root.get_subcommands().find(|c| c.get_name() == s || c.get_all_aliases().any(|x| x == s)) {
                    Some(sub) if sub.get_name() == "shim" => {
                        out.push(a);
                        break;
                    }
                    Some(sub) => {
                        cmd = sub;
                        cmd_longs = longs(sub);
                        at_root = false;
                    }
                    None => {}
                }
            }
            out.push(a);
            continue;
        }
        let (name, has_value) = match s.trim_start_matches('-').split_once('=') {
            Some((n, _)) => (n.to_string(), true),
            None => (s.trim_start_matches('-').to_string(), false),
        };
        let known = cmd_longs.iter().chain(if at_root { [].iter() } else { root_longs.iter() }).find(|(l, _)| *l == name);
        if let Some((_, takes)) = known {
            skip_value = *takes && !has_value;
            if !s.starts_with("--") && name.len() > 1 {
                out.push(OsString::from(format!("-{s}")));
                continue;
            }
        } else if short_takes_value(cmd, &s) {
            skip_value = true;
        }
        out.push(a);
    }
    out.extend(it);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn norm(args: &[&str]) -> Vec<String> {
        let v = args.iter().map(OsString::from).collect();
        normalize(v, &crate::Cli::command()).into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn single_dash_long_flags() {
        assert_eq!(
            norm(&[
                "swarm",
                "-l",
                "debug",
                "-experimental",
                "manage",
                "-H",
                "127.0.0.1:1",
                "-cluster-opt",
                "swarm.overcommit=-2",
                "-heartbeat=1s",
                "nodes://h:1"
            ]),
            [
                "swarm",
                "-l",
                "debug",
                "--experimental",
                "manage",
                "-H",
                "127.0.0.1:1",
                "--cluster-opt",
                "swarm.overcommit=-2",
                "--heartbeat=1s",
                "nodes://h:1"
            ]
        );
        // A value that looks like a flag stays a value; unknown words stay as they are.
        assert_eq!(
            norm(&["swarm", "manage", "--cluster-opt", "-debug", "-nonsense"]),
            ["swarm", "manage", "--cluster-opt", "-debug", "-nonsense"]
        );
        assert_eq!(
            norm(&["swarm", "join", "-advertise", "1.2.3.4:5", "-insecure-tcp", "token://x"]),
            ["swarm", "join", "--advertise", "1.2.3.4:5", "--insecure-tcp", "token://x"]
        );
        // Global flags may follow the subcommand's name in Go's style too; `--` ends it all.
        assert_eq!(norm(&["swarm", "list", "-timeout", "2s", "--", "-timeout"]), ["swarm", "list", "--timeout", "2s", "--", "-timeout"]);
        assert_eq!(norm(&["swarm", "shim", "-debug"]), ["swarm", "shim", "-debug"]);
    }
}
