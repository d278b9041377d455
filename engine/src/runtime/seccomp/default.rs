//! Docker's default seccomp profile (moby's `profiles/seccomp/default.json`) as data: an
//! allowlist, then calls allowed by argument, by architecture, or by a capability of the
//! container. Anything else fails with EPERM.
use super::{Arg, ArchMap, DockerProfile, Filter, Syscall};

/// One rule of the default profile: `names` get `action` when the conditions hold.
struct Rule {
    names: &'static [&'static str],
    action: &'static str,
    errno: Option<u32>,
    /// (index, value, op)
    args: &'static [(u32, u64, &'static str)],
    inc_caps: &'static [&'static str],
    inc_arches: &'static [&'static str],
    inc_min_kernel: Option<&'static str>,
    exc_caps: &'static [&'static str],
    exc_arches: &'static [&'static str],
}

const ALLOW: &str = "SCMP_ACT_ALLOW";
const RULE: Rule = Rule {
    names: &[],
    action: ALLOW,
    errno: None,
    args: &[],
    inc_caps: &[],
    inc_arches: &[],
    inc_min_kernel: None,
    exc_caps: &[],
    exc_arches: &[],
};

/// Calls every container may make (Docker's default allowlist).
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod", "chown",
    "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
    "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
    "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
    "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit",
    "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir",
    "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
    "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync",
    "ftruncate", "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
    "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
    "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
    "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "io_uring_enter",
    "io_uring_register", "io_uring_setup", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr",
    "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "membarrier", "memfd_create",
    "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2",
    "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
    "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll",
    "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
    "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv",
    "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename",
    "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
    "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
    "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
    "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32",
    "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt",
    "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget",
    "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair",
    "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
    "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
    "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname",
    "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid",
    "waitpid", "write", "writev",
];

/// clone(2) flags that create namespaces (`CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|
/// NEWNET`): without CAP_SYS_ADMIN a clone must have none of them.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

/// Docker's default profile: the allowlist, then calls allowed by argument, by architecture,
/// or by a capability in the container's bounding set. Anything else fails with EPERM.
const DEFAULT_RULES: &[Rule] = &[
    Rule { names: ALLOWED, ..RULE },
    Rule { names: &["process_vm_readv", "process_vm_writev", "ptrace"], inc_min_kernel: Some("4.8"), ..RULE },
    Rule { names: &["socket"], args: &[(0, 40, "SCMP_CMP_NE")], ..RULE }, // no AF_VSOCK
    Rule { names: &["personality"], args: &[(0, 0, "SCMP_CMP_EQ")], ..RULE },
    Rule { names: &["personality"], args: &[(0, 8, "SCMP_CMP_EQ")], ..RULE },
    Rule { names: &["personality"], args: &[(0, 131072, "SCMP_CMP_EQ")], ..RULE },
    Rule { names: &["personality"], args: &[(0, 131080, "SCMP_CMP_EQ")], ..RULE },
    Rule { names: &["personality"], args: &[(0, 4294967295, "SCMP_CMP_EQ")], ..RULE },
    Rule { names: &["sync_file_range2", "swapcontext"], inc_arches: &["ppc64le"], ..RULE },
    Rule {
        names: &["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
        inc_arches: &["arm", "arm64"],
        ..RULE
    },
    Rule { names: &["arch_prctl"], inc_arches: &["amd64", "x32"], ..RULE },
    Rule { names: &["modify_ldt"], inc_arches: &["amd64", "x32", "x86"], ..RULE },
    Rule { names: &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"], inc_arches: &["s390", "s390x"], ..RULE },
    Rule { names: &["riscv_flush_icache"], inc_arches: &["riscv64"], ..RULE },
    Rule { names: &["open_by_handle_at"], inc_caps: &["CAP_DAC_READ_SEARCH"], ..RULE },
    Rule {
        names: &[
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie", "mount",
            "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
            "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
        ],
        inc_caps: &["CAP_SYS_ADMIN"],
        ..RULE
    },
    Rule { names: &["clone"], args: &[(0, CLONE_NS_FLAGS, "SCMP_CMP_MASKED_EQ")], exc_caps: &["CAP_SYS_ADMIN"], exc_arches: &["s390", "s390x"], ..RULE },
    // s390 passes clone's flags second.
    Rule { names: &["clone"], args: &[(1, CLONE_NS_FLAGS, "SCMP_CMP_MASKED_EQ")], inc_arches: &["s390", "s390x"], exc_caps: &["CAP_SYS_ADMIN"], ..RULE },
    // ENOSYS, so that libcs fall back to clone(2), whose flags can be checked.
    Rule { names: &["clone3"], action: "SCMP_ACT_ERRNO", errno: Some(38), exc_caps: &["CAP_SYS_ADMIN"], ..RULE },
    Rule { names: &["reboot"], inc_caps: &["CAP_SYS_BOOT"], ..RULE },
    Rule { names: &["chroot"], inc_caps: &["CAP_SYS_CHROOT"], ..RULE },
    Rule { names: &["delete_module", "init_module", "finit_module"], inc_caps: &["CAP_SYS_MODULE"], ..RULE },
    Rule { names: &["acct"], inc_caps: &["CAP_SYS_PACCT"], ..RULE },
    Rule {
        names: &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"],
        inc_caps: &["CAP_SYS_PTRACE"],
        ..RULE
    },
    Rule { names: &["iopl", "ioperm"], inc_caps: &["CAP_SYS_RAWIO"], ..RULE },
    Rule { names: &["settimeofday", "stime", "clock_settime", "clock_settime64"], inc_caps: &["CAP_SYS_TIME"], ..RULE },
    Rule { names: &["vhangup"], inc_caps: &["CAP_SYS_TTY_CONFIG"], ..RULE },
    Rule { names: &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"], inc_caps: &["CAP_SYS_NICE"], ..RULE },
    Rule { names: &["syslog"], inc_caps: &["CAP_SYSLOG"], ..RULE },
    Rule { names: &["bpf"], inc_caps: &["CAP_BPF"], ..RULE },
    Rule { names: &["perf_event_open"], inc_caps: &["CAP_PERFMON"], ..RULE },
];

/// Docker's default profile as a [`DockerProfile`], so it goes through the same translation as
/// a user's.
pub(super) fn default_profile() -> DockerProfile {
    let strings = |s: &[&str]| (!s.is_empty()).then(|| s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    let arch_map = [
        ("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"][..]),
        ("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
        ("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
        ("SCMP_ARCH_RISCV64", &[]),
    ];
    let syscalls = DEFAULT_RULES
        .iter()
        .map(|r| {
            let filter = |caps: &[&str], arches: &[&str], min: Option<&str>| {
                (!caps.is_empty() || !arches.is_empty() || min.is_some()).then(|| Filter {
                    caps: strings(caps),
                    arches: strings(arches),
                    min_kernel: min.map(str::to_string),
                })
            };
            Syscall {
                names: strings(r.names),
                action: r.action.to_string(),
                errno_ret: r.errno,
                args: (!r.args.is_empty()).then(|| {
                    r.args.iter().map(|&(index, value, op)| Arg { index, value, value_two: 0, op: op.to_string() }).collect()
                }),
                includes: filter(r.inc_caps, r.inc_arches, r.inc_min_kernel),
                excludes: filter(r.exc_caps, r.exc_arches, None),
                ..Default::default()
            }
        })
        .collect();
    DockerProfile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(libc::EPERM as u32),
        arch_map: Some(
            arch_map
                .iter()
                .map(|(a, subs)| ArchMap { architecture: a.to_string(), sub_architectures: strings(subs) })
                .collect(),
        ),
        syscalls: Some(syscalls),
        ..Default::default()
    }
}
