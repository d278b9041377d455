//! Removing everything an engine under test may leave behind: processes, mounts, cgroups,
//! the bridge and its veths, iptables rules and chains. Every function is best effort and
//! only touches what is named after the given unique names and roots.
use crate::cmd::run_args;
use fsutil::unescape_mount;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to clean: all optional, so a stale slot can be cleaned knowing only its names.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// Bridge name (also matched in iptables rules and chain names).
    pub bridge: Option<String>,
    /// Cgroup parent, e.g. `/fltt0042`.
    pub cgroup_parent: Option<String>,
    /// Data/exec roots: mounts below them are unmounted, processes whose argv or cwd mention
    /// them are killed.
    pub roots: Vec<PathBuf>,
}

/// Cleans everything; returns human-readable notes about what could not be removed.
pub fn cleanup(r: &Resources) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(cg) = &r.cgroup_parent {
        thaw(cg);
    }
    kill_processes(r, &mut notes);
    for root in &r.roots {
        unmount_below(root, &mut notes);
    }
    if let Some(cg) = &r.cgroup_parent {
        remove_cgroups(cg, &mut notes);
    }
    if let Some(br) = &r.bridge {
        remove_links(br, &mut notes);
        remove_iptables(br, &mut notes);
    }
    notes
}

fn pids() -> Vec<i32> {
    std::fs::read_dir("/proc").map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()).unwrap_or_default()
}

/// True when a `/proc/<pid>/cgroup` line's path is `parent` or below it.
pub fn in_cgroup(cgroup_file: &str, parent: &str) -> bool {
    let parent = parent.trim_end_matches('/');
    cgroup_file.lines().any(|l| {
        let path = l.splitn(3, ':').nth(2).unwrap_or("");
        path == parent || path.starts_with(&format!("{parent}/"))
    })
}

fn matches(pid: i32, r: &Resources) -> bool {
    if let Some(cg) = &r.cgroup_parent {
        if std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| in_cgroup(&c, cg)) {
            return true;
        }
    }
    if r.roots.is_empty() {
        return false;
    }
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
    r.roots.iter().any(|root| {
        let s = root.to_string_lossy();
        argv.contains(s.as_ref()) || cwd.starts_with(root)
    })
}

fn thaw(parent: &str) {
    let root = Path::new("/sys/fs/cgroup/freezer").join(parent.trim_start_matches('/'));
    for dir in walk_dirs(&root) {
        let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
    }
}

/// SIGKILLs every process in the cgroup parent or mentioning a root, until none is left.
pub fn kill_processes(r: &Resources, notes: &mut Vec<String>) {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let victims: Vec<i32> = pids().into_iter().filter(|&p| p != me && p > 1 && matches(p, r)).collect();
        // Zombies cannot be killed further; they disappear when reaped.
        let alive: Vec<i32> = victims
            .into_iter()
            .filter(|p| {
                !std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| s.rsplit(')').next().is_some_and(|t| t.trim_start().starts_with('Z')))
            })
            .collect();
        if alive.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            notes.push(format!("processes still alive: {alive:?}"));
            return;
        }
        for p in &alive {
            // SAFETY: kill(2) on a pid we just matched by cgroup/argv.
            unsafe { libc::kill(*p, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Mount points at or below `root`, deepest (and latest) first.
pub fn mounts_below(root: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<(usize, usize, PathBuf)> = info
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let mp = PathBuf::from(unescape_mount(l.split(' ').nth(4)?));
            mp.starts_with(root).then(|| (mp.components().count(), i, mp))
        })
        .collect();
    v.sort_by_key(|x| std::cmp::Reverse((x.0, x.1)));
    v.into_iter().map(|(_, _, p)| p).collect()
}

fn umount(p: &Path, flags: i32) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: umount2(2) with a valid NUL-terminated path.
    unsafe { libc::umount2(c.as_ptr(), flags) == 0 }
}

/// Unmounts everything below `root` (lazily when busy).
pub fn unmount_below(root: &Path, notes: &mut Vec<String>) {
    for _ in 0..5 {
        let ms = mounts_below(root);
        if ms.is_empty() {
            return;
        }
        for m in ms {
            if !umount(&m, 0) {
                umount(&m, libc::MNT_DETACH);
            }
        }
    }
    let left = mounts_below(root);
    if !left.is_empty() {
        notes.push(format!("mounts left below {}: {left:?}", root.display()));
    }
}

fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
            out.push(d);
        }
    }
    out
}

/// Removes `<hierarchy>/<parent>` and everything below it in every cgroup hierarchy.
pub fn remove_cgroups(parent: &str, notes: &mut Vec<String>) {
    let rel = parent.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    let Ok(hs) = std::fs::read_dir("/sys/fs/cgroup") else { return };
    for h in hs.flatten() {
        let root = h.path().join(rel);
        if !root.exists() {
            continue;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut dirs = walk_dirs(&root);
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in &dirs {
                let _ = std::fs::remove_dir(d);
            }
            if !root.exists() {
                break;
            }
            if Instant::now() > deadline {
                notes.push(format!("cgroup {} not removed", root.display()));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Deletes the bridge, every link enslaved to it, and the engine's other bridges (user
/// networks are named `<bridge>-<hex>`, tests' custom bridge names start with the bridge name).
pub fn remove_links(bridge: &str, notes: &mut Vec<String>) {
    if bridge.is_empty() {
        return;
    }
    let o = run_args("ip", &["-o", "link", "show", "type", "bridge"]);
    for l in o.stdout.lines() {
        let name = l.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or("")).unwrap_or("");
        if name != bridge && name.starts_with(bridge) {
            remove_one_bridge(name, notes);
        }
    }
    remove_one_bridge(bridge, notes);
}

fn remove_one_bridge(bridge: &str, notes: &mut Vec<String>) {
    let o = run_args("ip", &["-o", "link", "show", "master", bridge]);
    for l in o.stdout.lines() {
        if let Some(name) = l.split(':').nth(1) {
            let name = name.trim().split('@').next().unwrap_or("");
            if !name.is_empty() {
                run_args("ip", &["link", "del", name]);
            }
        }
    }
    if run_args("ip", &["link", "show", bridge]).success() {
        let o = run_args("ip", &["link", "del", bridge]);
        if !o.success() {
            notes.push(format!("bridge {bridge}: {}", o.stderr.trim()));
        }
    }
}

/// Splits an iptables-save rule line into arguments (double quotes with backslash escapes).
pub fn split_rule(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// True when `name` occurs in `s` as a whole word (not followed/preceded by [A-Za-z0-9_]).
pub fn mentions(s: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    s.match_indices(name).any(|(i, _)| {
        let before = s[..i].chars().next_back().is_none_or(|c| !word(c));
        let after = s[i + name.len()..].chars().next().is_none_or(|c| !word(c));
        before && after
    })
}

/// (rules to delete as argument lists, chains to flush and delete) for one table's save output.
pub fn iptables_plan(save: &str, name: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let mut rules = Vec::new();
    let mut chains = BTreeSet::new();
    for l in save.lines() {
        if let Some(rest) = l.strip_prefix(':') {
            let chain = rest.split_whitespace().next().unwrap_or("");
            if mentions(chain, name) {
                chains.insert(chain.to_string());
            }
        } else if let Some(rest) = l.strip_prefix("-A ") {
            if mentions(l, name) {
                let mut args = vec!["-D".to_string()];
                args.extend(split_rule(rest));
                rules.push(args);
            }
        }
    }
    (rules, chains.into_iter().collect())
}

/// Deletes iptables rules mentioning `name` and chains named after it (filter and nat tables).
pub fn remove_iptables(name: &str, notes: &mut Vec<String>) {
    for table in ["filter", "nat", "mangle"] {
        let save = run_args("iptables-save", &["-t", table]);
        if !save.success() {
            continue;
        }
        let (rules, chains) = iptables_plan(&save.stdout, name);
        for r in rules {
            let mut args: Vec<&str> = vec!["-w", "-t", table];
            args.extend(r.iter().map(String::as_str));
            let o = run_args("iptables", &args);
            if !o.success() {
                notes.push(format!("iptables {}: {}", args.join(" "), o.stderr.trim()));
            }
        }
        for c in &chains {
            run_args("iptables", &["-w", "-t", table, "-F", c]);
        }
        for c in &chains {
            let o = run_args("iptables", &["-w", "-t", table, "-X", c]);
            if !o.success() {
                notes.push(format!("iptables -t {table} -X {c}: {}", o.stderr.trim()));
            }
        }
    }
}

/// What a dockerd leaves in the root netns (its DOCKER* chains and the jumps to them, FORWARD
/// policy DROP, /run/docker), removed only when no dockerd that manages iptables runs any more.
pub fn dockerd_leftovers() {
    // A dockerd started with --iptables=false (as some tests do) does not own these.
    let others = run_args("pgrep", &["-a", "-x", "dockerd"]).stdout;
    if others.lines().any(|l| !l.contains("--iptables=false")) {
        return;
    }
    for table in ["filter", "nat"] {
        let save = run_args("iptables-save", &["-t", table]).stdout;
        for l in save.lines() {
            if let Some(rest) = l.strip_prefix("-A ") {
                let chain = rest.split_whitespace().next().unwrap_or("");
                if ["FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING", "INPUT"].contains(&chain) && l.contains("DOCKER") {
                    let mut args = vec!["-w".to_string(), "-t".into(), table.into(), "-D".into()];
                    args.extend(split_rule(rest));
                    run_args("iptables", &args.iter().map(String::as_str).collect::<Vec<_>>());
                }
            }
        }
        for c in ["DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2"] {
            run_args("iptables", &["-w", "-t", table, "-F", c]);
            run_args("iptables", &["-w", "-t", table, "-X", c]);
        }
    }
    run_args("iptables", &["-w", "-P", "FORWARD", "ACCEPT"]);
    if !others.trim().is_empty() {
        return;
    }
    let _ = std::fs::remove_dir("/run/docker/plugins");
    let _ = std::fs::remove_dir("/run/docker");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_membership() {
        let f = "4:memory:/fltt0001/abc\n3:cpu:/\n0::/\n";
        assert!(in_cgroup(f, "/fltt0001"));
        assert!(!in_cgroup(f, "/fltt000"));
        assert!(in_cgroup("1:cpu:/fltt0001\n", "/fltt0001/"));
    }

    #[test]
    fn rules_and_chains() {
        let save = "*nat\n:PREROUTING ACCEPT [0:0]\n:FLT-fltt0042 - [0:0]\n:FLT-fltt00420 - [0:0]\n\
            -A POSTROUTING -s 10.160.1.0/24 ! -o fltt0042 -m comment --comment \"flotilla fltt0042 nat\" -j MASQUERADE\n\
            -A PREROUTING -j FLT-fltt0042\n-A POSTROUTING -o other -j MASQUERADE\nCOMMIT\n";
        let (rules, chains) = iptables_plan(save, "fltt0042");
        assert_eq!(chains, vec!["FLT-fltt0042".to_string()]);
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0],
            [
                "-D",
                "POSTROUTING",
                "-s",
                "10.160.1.0/24",
                "!",
                "-o",
                "fltt0042",
                "-m",
                "comment",
                "--comment",
                "flotilla fltt0042 nat",
                "-j",
                "MASQUERADE"
            ]
        );
        assert_eq!(split_rule(r#"A "x \"y\"" "" b"#), ["A", "x \"y\"", "", "b"]);
    }

    #[test]
    fn word_mentions() {
        assert!(mentions("-o fltt0042 -j X", "fltt0042"));
        assert!(!mentions("-o fltt00421", "fltt0042"));
        assert!(mentions("FLT-fltt0042", "fltt0042"));
    }

    #[test]
    fn mounts_below_sorted_deepest_first() {
        let root = Path::new("/");
        let ms = mounts_below(root);
        assert!(ms.iter().any(|m| m == Path::new("/proc")));
        let depths: Vec<usize> = ms.iter().map(|m| m.components().count()).collect();
        assert!(depths.windows(2).all(|w| w[0] >= w[1]));
    }
}
