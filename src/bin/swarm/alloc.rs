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
mod options {
    use std::ffi::{c_char, CStr};

    /// jemalloc's options in every process that uses it (the shim never does). By default jemalloc
    /// keeps freed pages for up to 10 s before it gives them back: a manager holding 1,000,000
    /// containers, whose node refreshes free memory all the time, had ~260 MiB of freed pages in
    /// its RSS that way (1,543 against 1,283 MiB in one run; a 1 s decay, with or without a
    /// background thread, kept as much). With no decay they go back as they are freed; the manager's
    /// CPU per create did not grow (bench/manager.md, "stop 24").
    /// jemalloc reads this symbol at its start; tikv-jemalloc-sys builds it with the `_rjem_` prefix,
    /// so a plain `malloc_conf` would be silently ignored (the test reads the options in force).
    /// `_RJEM_MALLOC_CONF` in the environment still overrides it.
    #[allow(non_upper_case_globals)]
    #[unsafe(export_name = "_rjem_malloc_conf")]
    pub static malloc_conf: MallocConf = MallocConf(MALLOC_CONF.as_ptr());

    /// Both decays: jemalloc turns dirty pages into muzzy ones (`MADV_FREE`, still counted in the RSS
    /// until the kernel needs them); muzzy pages are returned at once only while `muzzy_decay_ms`
    /// is 0, which is jemalloc 5.3's default but is said here so that no default is relied on.
    pub(super) const MALLOC_CONF: &CStr = c"dirty_decay_ms:0,muzzy_decay_ms:0";

    /// A C string pointer jemalloc reads (`const char *malloc_conf`).
    #[repr(transparent)]
    pub struct MallocConf(*const c_char);
    // SAFETY: it points at a static string that nothing writes.
    unsafe impl Sync for MallocConf {}
}

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

    /// One of jemalloc's `opt.*` values, as it reads it at its start.
    fn opt<T: Default>(name: &std::ffi::CStr) -> T {
        let mut value = T::default();
        let mut len = std::mem::size_of::<T>();
        // SAFETY: mallctl writes at most `len` bytes into `value`, of the option's own type.
        let rc = unsafe { tikv_jemalloc_sys::mallctl(name.as_ptr(), (&mut value as *mut T).cast(), &mut len, std::ptr::null_mut(), 0) };
        assert_eq!(rc, 0, "mallctl {name:?}");
        value
    }

    #[test]
    fn freed_memory_goes_back_at_once() {
        assert!(on_jemalloc());
        assert_eq!(opt::<isize>(c"opt.dirty_decay_ms"), 0, "jemalloc read {:?}", super::options::MALLOC_CONF);
        assert_eq!(opt::<isize>(c"opt.muzzy_decay_ms"), 0, "jemalloc read {:?}", super::options::MALLOC_CONF);
    }
}
