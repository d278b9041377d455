//! What the runtime tests share: a busybox rootfs dir, an exec root and a private cgroup
//! parent per test (`World`), the shim binary, and readers of attach streams.
#![allow(dead_code, unused_imports)]
pub use engine::runtime::gate::{self, Gate};
pub use engine::runtime::{AttachOpts, BindMount, ExecSpec, NetNs, RunSpec, Runtime, RuntimeError, ShimRuntime};
pub use std::io::{Read, Write};
pub use std::path::{Path, PathBuf};
pub use std::sync::atomic::{AtomicUsize, Ordering};
pub use std::time::{Duration, Instant};
pub use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub static SEQ: AtomicUsize = AtomicUsize::new(0);

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `target/<profile>/examples/shim`; `cargo test -p engine` builds it, a filtered run may not,
/// so build it once if missing (cargo's build lock is free while tests run).
/// `FLOTILLA_SHIM_BINARY=/path/to/swarm` runs the tests against the real `swarm shim`.
pub fn shim_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("FLOTILLA_SHIM_BINARY") {
        return bin.into();
    }
    static BUILD: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().expect("test exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
    let bin = profile_dir.join("examples/shim");
    BUILD.call_once(|| {
        if !bin.exists() {
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "-p", "engine", "--example", "shim"])
                .env("CARGO_TARGET_DIR", profile_dir.parent().expect("target root"))
                .status()
                .expect("running cargo");
            assert!(status.success(), "building the shim example failed");
        }
    });
    assert!(bin.exists(), "{} missing: run `cargo build -p engine --example shim`", bin.display());
    bin
}

/// A busybox rootfs with relative applet links and root/nobody users.
pub fn make_rootfs(root: &Path) {
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// One test's world: rootfs, exec root and a private cgroup parent; everything is removed on
/// drop (container processes killed, shims told to delete, cgroups removed).
pub struct World {
    pub dir: tempfile::TempDir,
    pub runtime: ShimRuntime,
    pub cgroup_parent: String,
    pub ids: Vec<(String, PathBuf)>,
}

impl World {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("flt-rt").tempdir_in("/tmp").unwrap();
        make_rootfs(&dir.path().join("rootfs"));
        let runtime = ShimRuntime::new(shim_binary(), dir.path().join("lc"));
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let cgroup_parent = format!("/flt-test-{}-{n}", std::process::id());
        World { dir, runtime, cgroup_parent, ids: vec![] }
    }

    pub fn spec(&mut self, args: &[&str]) -> RunSpec {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let id = format!("{:016x}{:016x}", std::process::id(), n);
        let state_dir = self.dir.path().join("s").join(&id[..16]).join(n.to_string());
        self.ids.push((id.clone(), state_dir.clone()));
        RunSpec {
            cgroup_path: format!("{}/{id}", self.cgroup_parent),
            log_path: self.dir.path().join("logs").join(format!("{id}-json.log")),
            id,
            rootfs: self.dir.path().join("rootfs"),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: String::new(),
            hostname: "box".into(),
            domainname: String::new(),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            netns: NetNs::New,
            mounts: vec![],
            state_dir,
            readonly_rootfs: false,
            tmpfs: vec![],
            resources: Default::default(),
            console_size: None,
            seccomp: Default::default(),
            options: Default::default(),
            log: Default::default(),
        }
    }
}

pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    let mut v: Vec<PathBuf> =
        std::fs::read_dir("/sys/fs/cgroup").map(|rd| rd.flatten().map(|e| e.path().join(rel)).collect()).unwrap_or_default();
    v.push(Path::new("/sys/fs/cgroup").join(rel));
    v
}

impl Drop for World {
    fn drop(&mut self) {
        for (id, state_dir) in &self.ids {
            let cg = format!("{}/{id}", self.cgroup_parent);
            for d in cgroup_dirs(&cg) {
                if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                    for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            if let Ok(mut c) = std::os::unix::net::UnixStream::connect(state_dir.join("shim.sock")) {
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = c.write_all(b"{\"op\":\"delete\"}\n");
                let _ = c.read(&mut [0u8; 64]);
            }
            for d in cgroup_dirs(&cg) {
                let _ = std::fs::remove_dir(d);
            }
        }
        for d in cgroup_dirs(&self.cgroup_parent) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

pub const ALL: AttachOpts = AttachOpts { stdin: false, stdout: true, stderr: true };

pub async fn read_all(s: &mut tokio::net::UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await.expect("attach stream EOF").unwrap();
    out
}

pub async fn wait(rt: &ShimRuntime, spec: &RunSpec) -> engine::runtime::Exit {
    tokio::time::timeout(Duration::from_secs(20), rt.wait(&spec.id, &spec.state_dir)).await.expect("wait timed out").unwrap()
}

/// Decodes stdcopy frames into (stream, bytes) with adjacent frames of a stream merged.
pub fn demux(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out: Vec<(u8, Vec<u8>)> = vec![];
    while b.len() >= 8 {
        let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        let (stream, data) = (b[0], &b[8..8 + len]);
        match out.last_mut() {
            Some((s, v)) if *s == stream => v.extend_from_slice(data),
            _ => out.push((stream, data.to_vec())),
        }
        b = &b[8 + len..];
    }
    assert!(b.is_empty(), "trailing bytes {b:?}");
    out
}
