//! The `swarm` binary's allocator, chosen by feature (glibc's without one).
//!
//! With `jemalloc` (the default) one binary still serves two kinds of process: the long-lived
//! daemons (`manage`, `engine`, `join`, …), which gain from jemalloc (bench/manager.md, "Issue 18
//! (malloc)"), and the per-container `swarm shim`, which must stay small (jemalloc's arenas and
//! caches add ~2.6 MB of private memory to each: bench/shim-mem). So the first allocation decides,
//! once per process, from the process's own command line: a shim (`swarm shim …`, the same rule
//! as `main`) keeps glibc's allocator, everything else uses jemalloc. A forked child inherits the
//! decision with the heap it was made for.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: by_process::ByProcess = by_process::ByProcess;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
mod by_process {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicU8, Ordering};
    use tikv_jemallocator::Jemalloc;

    const UNDECIDED: u8 = 0;
    const GLIBC: u8 = 1;
    const JEMALLOC: u8 = 2;

    /// Which allocator this process uses; decided before its first allocation is served and
    /// never changed after, so every block is freed by the allocator that gave it.
    static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

    pub struct ByProcess;

    #[inline]
    fn jemalloc() -> bool {
        match CHOICE.load(Ordering::Relaxed) {
            JEMALLOC => true,
            GLIBC => false,
            _ => decide(),
        }
    }

    /// Two threads racing here read the same command line and store the same answer.
    #[cold]
    fn decide() -> bool {
        let choice = if is_shim() { GLIBC } else { JEMALLOC };
        CHOICE.store(choice, Ordering::Relaxed);
        choice == JEMALLOC
    }

    /// Whether `argv[1]` is `shim`, read from `/proc/self/cmdline` with plain syscalls (this runs
    /// inside the allocator: nothing here may allocate). Unreadable counts as a shim: glibc's
    /// allocator is the safe default.
    fn is_shim() -> bool {
        let mut buf = [0u8; 512];
        // SAFETY: a NUL-terminated path, a stack buffer of the length given, the fd closed once.
        let n = unsafe {
            let fd = libc::open(c"/proc/self/cmdline".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return true;
            }
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            libc::close(fd);
            n
        };
        let Ok(n) = usize::try_from(n) else { return true };
        argv1_is_shim(&buf[..n])
    }

    /// `cmdline` is NUL-separated arguments; argv[0] is the binary.
    pub(super) fn argv1_is_shim(cmdline: &[u8]) -> bool {
        let mut args = cmdline.split(|&b| b == 0);
        args.next();
        args.next() == Some(b"shim".as_slice())
    }

    // SAFETY: every call forwards to one allocator, the same one for the whole process (see
    // `CHOICE`), with the caller's layout and pointer unchanged.
    unsafe impl GlobalAlloc for ByProcess {
        #[inline]
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if jemalloc() {
                unsafe { Jemalloc.alloc(layout) }
            } else {
                unsafe { System.alloc(layout) }
            }
        }
        #[inline]
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if jemalloc() {
                unsafe { Jemalloc.alloc_zeroed(layout) }
            } else {
                unsafe { System.alloc_zeroed(layout) }
            }
        }
        #[inline]
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if jemalloc() {
                unsafe { Jemalloc.dealloc(ptr, layout) }
            } else {
                unsafe { System.dealloc(ptr, layout) }
            }
        }
        #[inline]
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if jemalloc() {
                unsafe { Jemalloc.realloc(ptr, layout, new_size) }
            } else {
                unsafe { System.realloc(ptr, layout, new_size) }
            }
        }
    }

    /// Whether this process is on jemalloc (for the test below and diagnostics).
    #[cfg(test)]
    pub(super) fn on_jemalloc() -> bool {
        jemalloc()
    }
}

#[cfg(all(test, feature = "jemalloc", not(feature = "mimalloc")))]
mod tests {
    use super::by_process::{argv1_is_shim, on_jemalloc};

    #[test]
    fn only_the_shim_keeps_glibc() {
        assert!(argv1_is_shim(b"/usr/bin/swarm\0shim\0--pooled\0/run/x\0"));
        assert!(argv1_is_shim(b"swarm\0shim\0"));
        assert!(!argv1_is_shim(b"swarm\0manage\0nodes://a\0"));
        assert!(!argv1_is_shim(b"swarm\0shimmer\0"));
        assert!(!argv1_is_shim(b"swarm\0"));
        assert!(!argv1_is_shim(b""));
        // The test binary's argv[1] is not `shim`.
        assert!(on_jemalloc());
    }
}
