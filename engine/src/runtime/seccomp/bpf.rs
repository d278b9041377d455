//! A container's seccomp filter as a BPF program. libseccomp takes 6 ms (one architecture) to
//! 40 ms (Docker's x86_64 + x86 + x32) to compile Docker's profile, which libcontainer would do
//! in every container's init and runc-style in every exec. Here the engine compiles each distinct
//! filter once (`super::program_for` keeps it), writes the program next to the bundle
//! ([`BPF_FILE`]), and the spec libcontainer reads has no `linux.seccomp`; the shim loads the
//! program with one seccomp(2) call: into the container's init before its start (or just before
//! the exec, with `no_new_privileges`; the init keeps
//! CAP_SYS_ADMIN in its permitted and effective sets until then, never in its bounding set, see
//! [`grant_loading`]), and into each exec'd process before it drops its capabilities.
use super::SeccompError;
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, Spec};
use std::io::{Read, Seek};
use std::os::fd::FromRawFd;
use std::str::FromStr;
use std::sync::Arc;

/// The program, in the bundle directory: `flags` (u32, little endian) then the instructions.
pub const BPF_FILE: &str = "seccomp.bpf";

/// linux/capability.h
const CAP_SYS_ADMIN: u32 = 21;

/// Filters with more rules than this are compiled into a binary tree (runc's threshold, which
/// counts the spec's rule groups; Docker's profile has ~350 rules).
const BINARY_TREE_FROM: usize = 32;

/// A compiled filter: seccomp(2) flags and `struct sock_filter` instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub flags: u32,
    pub code: Vec<u8>,
}

impl Program {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.flags.to_le_bytes().to_vec();
        out.extend_from_slice(&self.code);
        out
    }

    pub fn decode(data: &[u8]) -> Option<Program> {
        let (flags, code) = data.split_first_chunk::<4>()?;
        let ok = !code.is_empty() && code.len().is_multiple_of(8) && code.len() / 8 <= u16::MAX as usize;
        ok.then(|| Program { flags: u32::from_le_bytes(*flags), code: code.to_vec() })
    }

    /// Installs the filter on the calling thread. Allocation-free (for forked children); the
    /// caller needs CAP_SYS_ADMIN or no_new_privs. Err is the errno.
    pub fn load(&self) -> Result<(), i32> {
        let prog = libc::sock_fprog { len: (self.code.len() / 8) as u16, filter: self.code.as_ptr() as *mut libc::sock_filter };
        // SAFETY: seccomp reads the program from our buffer, which outlives the call.
        let r = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, self.flags, &prog) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL))
        }
    }
}

fn bad(m: impl std::fmt::Display) -> SeccompError {
    SeccompError::InvalidProfile(m.to_string())
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, SeccompError> {
    let errno = errno.map_or(libc::EPERM, |e| e as i32);
    let name = serde_json::to_value(a).map_err(bad)?;
    ScmpAction::from_str(name.as_str().unwrap_or_default(), Some(errno)).map_err(bad)
}

fn compile(s: &LinuxSeccomp) -> Result<Program, SeccompError> {
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(bad)?;
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(bad("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is for seccomp notify, which is not supported"))
            }
        } as u32;
    }
    for a in s.architectures().iter().flatten() {
        let name = serde_json::to_value(a).map_err(bad)?;
        let arch = ScmpArch::from_str(name.as_str().unwrap_or_default()).map_err(bad)?;
        ctx.add_arch(arch).map_err(bad)?;
    }
    let mut rules = 0;
    for call in s.syscalls().iter().flatten() {
        let act = action(call.action(), call.errno_ret())?;
        if act == default {
            continue;
        }
        let conds: Vec<ScmpArgCompare> = call
            .args()
            .iter()
            .flatten()
            .map(|a| {
                let op = match serde_json::to_value(a.op()).map_err(bad)?.as_str().unwrap_or_default() {
                    "SCMP_CMP_MASKED_EQ" => ScmpCompareOp::MaskedEqual(a.value_two().unwrap_or(0)),
                    op => ScmpCompareOp::from_str(op).map_err(bad)?,
                };
                Ok(ScmpArgCompare::new(a.index() as u32, op, a.value()))
            })
            .collect::<Result<_, SeccompError>>()?;
        // One comparison per argument per rule (as runc): several on one argument are split.
        let mut seen = std::collections::HashSet::new();
        let split = !call.args().iter().flatten().all(|a| seen.insert(a.index()));
        for name in call.names() {
            // A call this libseccomp does not know cannot be made here either (as libcontainer).
            let Ok(sc) = ScmpSyscall::from_name(name) else { continue };
            let added = if conds.is_empty() {
                ctx.add_rule(act, sc)
            } else if split {
                conds.iter().try_for_each(|c| ctx.add_rule_conditional(act, sc, std::slice::from_ref(c)).map(|_| ())).map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, sc, &conds)
            };
            added.map_err(|e| bad(format!("{name}: {e}")))?;
            rules += 1;
        }
    }
    // A binary search over the call numbers instead of one comparison after another, as runc
    // asks for: every call a container makes is found in O(log n), and the kernel
    // checks which calls the filter always allows (its per-call cache, done at load, on the
    // path of every start) twice as fast (~0.35 ms against ~0.7 ms for Docker's profile here).
    // Not for short filters (libseccomp up to 2.5.3 dropped the default action of one without
    // rules); a libseccomp without the attribute (before 2.5) keeps its linear filter.
    if rules > BINARY_TREE_FROM {
        let _ = ctx.set_ctl_optimize(2);
    }
    // SAFETY: memfd_create with a C string; the fd is ours and moves into the File.
    let fd = unsafe { libc::memfd_create(c"seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(bad(std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd nothing else owns.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    ctx.export_bpf(&f).map_err(bad)?;
    let mut code = vec![];
    f.rewind().and_then(|_| f.read_to_end(&mut code)).map_err(bad)?;
    Program::decode(&[&flags.to_le_bytes()[..], &code].concat()).ok_or_else(|| bad("libseccomp produced no program"))
}

/// The program for `filter` (`super::program_for` keeps it per profile and capability set).
pub fn program(filter: &LinuxSeccomp) -> Result<Arc<Program>, SeccompError> {
    compile(filter).map(Arc::new)
}

/// Prepares the spec libcontainer reads for a container whose init loads a program (it has no
/// `linux.seccomp`: the shim loads the program instead). Loading needs CAP_SYS_ADMIN, and the
/// init loads it after libcontainer has set its capabilities: CAP_SYS_ADMIN goes to its
/// permitted and effective sets (not its bounding set, so no exec'd program can have it) and the
/// shim drops it again right after loading.
pub fn grant_loading(spec: &mut Spec) {
    if let Some(p) = spec.process_mut().as_mut() {
        if let Some(mut caps) = p.capabilities().clone() {
            let with_admin = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut set = set.clone().unwrap_or_default();
                set.insert(Capability::SysAdmin);
                Some(set)
            };
            let (permitted, effective) = (with_admin(caps.permitted()), with_admin(caps.effective()));
            caps.set_permitted(permitted).set_effective(effective);
            p.set_capabilities(Some(caps));
        }
    }
}

/// Why the container's init could not load its filter (runs in the init: the text reaches the
/// user through libcontainer).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading the seccomp filter: {0}")]
    Load(std::io::Error),
    #[error("dropping CAP_SYS_ADMIN after the seccomp filter: {0}")]
    DropAdmin(std::io::Error),
}

/// In the container's init, before its start or just before its exec (`shim::create`): loads
/// the program, then drops CAP_SYS_ADMIN from the permitted and effective sets unless the
/// container has it (its bounding set).
pub fn load_in_init(program: &Program) -> Result<(), LoadError> {
    program.load().map_err(|e| LoadError::Load(std::io::Error::from_raw_os_error(e)))?;
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) } == 1 {
        return Ok(());
    }
    const V3: u32 = 0x2008_0522;
    let header: [u32; 2] = [V3, 0];
    let mut data = [0u32; 6];
    // SAFETY: capget/capset with a v3 header and two data structs in our arrays.
    let r = unsafe {
        if libc::syscall(libc::SYS_capget, header.as_ptr(), data.as_mut_ptr()) != 0 {
            -1
        } else {
            let bit = 1u32 << CAP_SYS_ADMIN;
            data[0] &= !bit; // effective
            data[1] &= !bit; // permitted
            libc::syscall(libc::SYS_capset, header.as_ptr(), data.as_ptr())
        }
    };
    if r != 0 {
        return Err(LoadError::DropAdmin(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn programs_round_trip() {
        let f = filter(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read", "write", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
                         {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}));
        let p = program(&f).unwrap();
        assert!(!p.code.is_empty() && p.code.len().is_multiple_of(8));
        assert_eq!(Program::decode(&p.encode()).as_ref(), Some(&*p));
        assert_eq!(Program::decode(&[0, 0, 0, 0, 1, 2, 3]), None);
        let log = filter(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"], "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}),
        );
        assert_eq!(program(&log).unwrap().flags, libc::SECCOMP_FILTER_FLAG_LOG as u32);
    }

    #[test]
    fn the_spec_for_libcontainer_has_a_loading_capability() {
        let mut spec: Spec = serde_json::from_value(json!({"ociVersion": "1.0.2", "root": {"path": "/r"},
            "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}}}))
        .unwrap();
        grant_loading(&mut spec);
        let caps = spec.process().as_ref().unwrap().capabilities().as_ref().unwrap();
        assert!(!caps.bounding().as_ref().unwrap().contains(&Capability::SysAdmin));
        assert!(caps.permitted().as_ref().unwrap().contains(&Capability::SysAdmin));
        assert!(caps.effective().as_ref().unwrap().contains(&Capability::SysAdmin));
    }

    /// Docker's profile compiled as containers get it, loaded in a forked child: what it allows
    /// and refuses, argument checks included (the filter is a binary tree since it is long).
    #[test]
    fn the_default_profile_allows_and_refuses_by_call_and_argument() {
        let caps: Vec<String> = crate::runtime::spec::DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        let v = super::super::translate(&super::super::default::default_profile(), &caps).unwrap();
        let p = compile(&serde_json::from_value(v).unwrap()).unwrap();
        // The calls' outcomes, each as 0 or errno, from a child that loaded the program.
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the test's child only makes raw syscalls, writes to its pipe and exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                let errno = |ret: libc::c_long| if ret < 0 { *libc::__errno_location() } else { 0 };
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                let loaded = p.load().err().unwrap_or(0);
                let out: [i32; 6] = [
                    loaded,
                    errno(libc::syscall(libc::SYS_getppid)),
                    errno(libc::syscall(libc::SYS_personality, 0xffff_ffffu64)),
                    errno(libc::syscall(libc::SYS_personality, 0x0040000u64)),
                    errno(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)),
                    errno(libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0)),
                ];
                libc::write(std::os::fd::AsRawFd::as_raw_fd(&w), out.as_ptr().cast(), std::mem::size_of_val(&out));
                libc::_exit(0)
            },
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                let mut b = [0u8; 24];
                nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&r), &mut b).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
                let got: Vec<i32> = b.chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
                // loaded; getppid; personality query; ADDR_NO_RANDOMIZE; new user ns; keyctl
                assert_eq!(got, [0, 0, 0, libc::EPERM, libc::EPERM, libc::EPERM]);
            }
        }
    }
}
