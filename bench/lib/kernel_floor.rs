//! The kernel's floor for starting a container, with no engine involved (`bench/engine` prints it):
//! per run, the dirs of an overlay, one `clone` into new mount, uts, ipc, pid, net and cgroup
//! namespaces, the overlay of ROOTFS mounted, `pivot_root` into it, exec of `/bin/true`, and the
//! parent's `waitpid` until it has exited.
//!
//! Standalone (std only, the few libc calls declared here), so the bench builds it with plain
//! `rustc -O` in a second, without cargo resolving the workspace's features again.
//! Linux x86_64 and aarch64.
//!
//! Usage: `kernel_floor ROOTFS WORKDIR RUNS` (as root). ROOTFS is an unpacked image (the bench's
//! busybox), WORKDIR an empty dir on the same kind of filesystem as the engine's data root; what
//! a run creates under it is removed after the run, outside the timing. Prints one JSON object:
//! `{"runs":N,"min_ms":..,"median_ms":..,"mean_ms":..}`.
use std::ffi::{c_char, c_int, c_long, c_ulong, c_void, CString};
use std::path::{Path, PathBuf};
use std::time::Instant;

mod libc {
    use super::*;
    pub const CLONE_NEWNS: c_ulong = 0x0002_0000;
    pub const CLONE_NEWCGROUP: c_ulong = 0x0200_0000;
    pub const CLONE_NEWUTS: c_ulong = 0x0400_0000;
    pub const CLONE_NEWIPC: c_ulong = 0x0800_0000;
    pub const CLONE_NEWPID: c_ulong = 0x2000_0000;
    pub const CLONE_NEWNET: c_ulong = 0x4000_0000;
    pub const SIGCHLD: c_ulong = 17;
    pub const MS_REC: c_ulong = 16384;
    pub const MS_PRIVATE: c_ulong = 1 << 18;
    pub const MNT_DETACH: c_int = 2;
    #[cfg(target_arch = "x86_64")]
    pub const SYS_CLONE: c_long = 56;
    #[cfg(target_arch = "x86_64")]
    pub const SYS_PIVOT_ROOT: c_long = 155;
    #[cfg(target_arch = "aarch64")]
    pub const SYS_CLONE: c_long = 220;
    #[cfg(target_arch = "aarch64")]
    pub const SYS_PIVOT_ROOT: c_long = 41;
    extern "C" {
        pub fn syscall(n: c_long, ...) -> c_long;
        pub fn mount(src: *const c_char, target: *const c_char, fstype: *const c_char, flags: c_ulong, data: *const c_void) -> c_int;
        pub fn umount2(target: *const c_char, flags: c_int) -> c_int;
        pub fn chdir(path: *const c_char) -> c_int;
        pub fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
        pub fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
        pub fn _exit(code: c_int) -> !;
    }
}

/// Every path and option as C strings, made before the clone (the child only makes syscalls).
struct Prepared {
    root: PathBuf,
    merged: CString,
    opts: CString,
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in a path")
}

fn prepare(rootfs: &Path, workdir: &Path, i: usize) -> Prepared {
    let root = workdir.join(format!("run{i}"));
    let (upper, work, merged) = (root.join("upper"), root.join("work"), root.join("merged"));
    Prepared {
        opts: cstr(&format!("lowerdir={},upperdir={},workdir={}", rootfs.display(), upper.display(), work.display())),
        merged: cstr(&merged.to_string_lossy()),
        root,
    }
}

/// The child: PID 1 of its namespaces. Only raw syscalls (it was made by a raw clone).
fn child(p: &Prepared) -> ! {
    let fail = |code: c_int| -> ! {
        // SAFETY: _exit ends the process at once.
        unsafe { libc::_exit(code) }
    };
    let none = std::ptr::null::<c_char>();
    let overlay = c"overlay";
    // SAFETY: every pointer is a NUL-terminated string that lives until exec.
    unsafe {
        if libc::mount(none, c"/".as_ptr(), none, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
            fail(10);
        }
        if libc::mount(overlay.as_ptr(), p.merged.as_ptr(), overlay.as_ptr(), 0, p.opts.as_ptr().cast()) != 0 {
            fail(11);
        }
        if libc::chdir(p.merged.as_ptr()) != 0 {
            fail(12);
        }
        if libc::syscall(libc::SYS_PIVOT_ROOT, c".".as_ptr(), c".".as_ptr()) != 0 {
            fail(13);
        }
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
            fail(14);
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            fail(15);
        }
        let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
        let envp = [c"PATH=/bin".as_ptr(), std::ptr::null()];
        libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
    }
    fail(16)
}

/// One container start; returns its wall time in ms.
fn one(p: &Prepared) -> Result<f64, String> {
    let t0 = Instant::now();
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir_all(p.root.join(d)).map_err(|e| format!("mkdir: {e}"))?;
    }
    let flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP
        | libc::SIGCHLD;
    // SAFETY: a fork-like clone (no new stack, no shared memory) of this single-threaded process.
    let pid = unsafe { libc::syscall(libc::SYS_CLONE, flags, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        return Err(format!("clone: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        child(p);
    }
    let mut status = 0;
    // SAFETY: waits for the child we just made.
    if unsafe { libc::waitpid(pid as c_int, &mut status, 0) } < 0 {
        return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let (exited, code) = (status & 0x7f == 0, (status >> 8) & 0xff);
    if !exited || code != 0 {
        return Err(format!("the container's start failed at step {code} (status {status:#x})"));
    }
    Ok(ms)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: kernel_floor ROOTFS WORKDIR RUNS");
        std::process::exit(2);
    }
    let (rootfs, workdir) = (Path::new(&args[1]), Path::new(&args[2]));
    let runs: usize = args[3].parse().unwrap_or(20).max(1);
    let warmup = 3;
    let mut times = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let p = prepare(rootfs, workdir, i);
        let t = one(&p);
        let _ = std::fs::remove_dir_all(&p.root);
        match t {
            Ok(ms) if i >= warmup => times.push(ms),
            Ok(_) => {}
            Err(e) => {
                eprintln!("kernel_floor: {e}");
                std::process::exit(1);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    let median = if times.len() % 2 == 1 { times[times.len() / 2] } else { (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0 };
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(r#"{{"runs":{},"min_ms":{:.2},"median_ms":{:.2},"mean_ms":{:.2}}}"#, times.len(), times[0], median, mean);
}
