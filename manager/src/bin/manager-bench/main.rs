//! Manager benchmark: N simulated nodes (child processes of 3,000 nodes, one loopback port
//! each), then each manager command in turn, started as its own process against the same
//! nodes, and the same load through its HTTP API. One markdown row per manager.
//!
//! ```text
//! manager-bench run --nodes N [--creates K] [--concurrency C] [--containers T] [--prefill]
//!                   [--poll] [--discovery auto|nodes|file] [--ready-timeout SECS] [--hold SECS]
//!                   --manager 'CMD' [--name NAME] [--manager 'CMD2' [--name NAME2]] [--no-header]
//! manager-bench sim --first F --count N --addrs FILE [--prefill K] [--poll]
//! ```
//! `CMD` is a shell command (run as `sh -c 'exec CMD'`, so its pid is the manager's) with
//! `{nodes}` (`nodes://a,b,…`, or `file:///…` past 64 nodes) and `{addr}` (`127.0.0.1:port`).
//! A manager is measured once every node is Healthy in its `/info` (and, unless `--poll`, once
//! the simulator sees one event stream per node). Between managers the nodes go back to their
//! prefilled containers (`/_sim/reset`), so each manager starts from the same state.
//! `--prefill`: the T containers exist before the manager starts (T/N per node) instead of
//! being filled through creates. `--poll`: the nodes answer `/events` with 404. `--hold`: after
//! its row, each manager keeps running that long (its address on stderr), for requests by hand.
mod load;
mod managed;
mod sims;

use anyhow::{bail, Context};
use std::time::Duration;

/// Flags of one subcommand, parsed strictly: an unknown flag or a bad value is an error.
struct Flags {
    pairs: Vec<(String, Option<String>)>,
}

impl Flags {
    fn parse(args: &[String], valued: &[&str], switches: &[&str]) -> anyhow::Result<Flags> {
        let mut pairs = vec![];
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if switches.contains(&a.as_str()) {
                pairs.push((a.clone(), None));
            } else if valued.contains(&a.as_str()) {
                let v = it.next().with_context(|| format!("{a} needs a value"))?;
                pairs.push((a.clone(), Some(v.clone())));
            } else {
                bail!("unknown argument {a:?} (flags: {} {})", valued.join(" "), switches.join(" "));
            }
        }
        Ok(Flags { pairs })
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.pairs.iter().filter(|(k, _)| k == name).filter_map(|(_, v)| v.clone()).collect()
    }

    fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    fn num(&self, name: &str, default: usize) -> anyhow::Result<usize> {
        match self.all(name).last() {
            Some(v) => v.parse().with_context(|| format!("{name} {v:?}: not a number")),
            None => Ok(default),
        }
    }
}

fn raise_fd_limit() {
    let want = 1 << 20;
    // SAFETY: setrlimit(2)/getrlimit(2) with valid structs.
    unsafe {
        let lim = libc::rlimit { rlim_cur: want, rlim_max: want };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur);
            cur.rlim_cur = cur.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &cur);
        }
    }
}

/// How the manager is told the nodes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DiscoveryForm {
    Auto,
    Nodes,
    File,
}

pub struct RunOpts {
    pub nodes: usize,
    pub creates: usize,
    pub concurrency: usize,
    pub containers: usize,
    pub prefill: bool,
    pub poll: bool,
    pub discovery: DiscoveryForm,
    pub ready_timeout: Duration,
    /// How long a manager keeps running after it is measured.
    pub hold: Duration,
    /// (name, command template)
    pub managers: Vec<(String, String)>,
}

fn run_opts(args: &[String]) -> anyhow::Result<(RunOpts, bool)> {
    let f = Flags::parse(
        args,
        &["--nodes", "--creates", "--concurrency", "--containers", "--discovery", "--ready-timeout", "--hold", "--manager", "--name"],
        &["--prefill", "--poll", "--no-header"],
    )?;
    let nodes = f.num("--nodes", 100)?;
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let commands = f.all("--manager");
    if commands.is_empty() {
        bail!("no --manager command (bench/manager passes MANAGER_CMD, and MANAGER2_CMD when set)");
    }
    let names = f.all("--name");
    if names.len() > commands.len() {
        bail!("{} --name for {} --manager", names.len(), commands.len());
    }
    let mut managers = vec![];
    for (i, cmd) in commands.iter().enumerate() {
        let var = if i == 0 { "MANAGER_CMD".to_string() } else { format!("MANAGER{}_CMD", i + 1) };
        manager::sim::template::check(&var, cmd)?;
        let name = names.get(i).cloned().unwrap_or_else(|| cmd.split_whitespace().next().unwrap_or("manager").to_string());
        managers.push((name, cmd.clone()));
    }
    let discovery = match f.all("--discovery").last().map(String::as_str) {
        None | Some("auto") => DiscoveryForm::Auto,
        Some("nodes") => DiscoveryForm::Nodes,
        Some("file") => DiscoveryForm::File,
        Some(o) => bail!("--discovery {o:?}: expected auto, nodes or file"),
    };
    // Validation inspects every container a node already holds.
    let default_ready = 120 + nodes / 25 + if f.has("--prefill") { f.num("--containers", 100_000)? / 2000 } else { 0 };
    let opts = RunOpts {
        nodes,
        creates: f.num("--creates", 5000)?,
        concurrency: f.num("--concurrency", 32)?.max(1),
        containers: f.num("--containers", 100_000)?,
        prefill: f.has("--prefill"),
        poll: f.has("--poll"),
        discovery,
        ready_timeout: Duration::from_secs(f.num("--ready-timeout", default_ready)? as u64),
        hold: Duration::from_secs(f.num("--hold", 0)? as u64),
        managers,
    };
    Ok((opts, !f.has("--no-header")))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Ignore the result: a provider may already be installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
    raise_fd_limit();
    match args.first().map(String::as_str) {
        Some("sim") => {
            let f = Flags::parse(&args[1..], &["--first", "--count", "--addrs", "--prefill"], &["--poll"])?;
            let addrs = f.all("--addrs").pop().context("sim: --addrs FILE is required")?;
            // One thread per simulator process: fewer cross-thread wake-ups on a small machine.
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(sims::child(f.num("--first", 0)?, f.num("--count", 1)?, f.num("--prefill", 0)?, f.has("--poll"), addrs.into()))
        }
        Some("run") => {
            let (opts, header) = run_opts(&args[1..])?;
            let rt = tokio::runtime::Runtime::new()?;
            if header {
                load::print_header(opts.concurrency);
            }
            rt.block_on(load::run(opts))
        }
        _ => bail!("usage: manager-bench run --nodes N --manager 'CMD with {{nodes}} and {{addr}}' ... | manager-bench sim ..."),
    }
}
