//! Which machines a `swarm` binary runs on (its ELF header), against what the host says it is
//! (`uname -m`), so a build for another architecture is never installed.
use std::io::Read;
use std::path::Path;

/// The architecture an ELF executable is built for, in `uname -m` terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfArch {
    /// E.g. `x86_64`, `aarch64`, `armv7l`.
    pub name: String,
    /// `uname -m` values of hosts that run it.
    pub runs_on: Vec<&'static str>,
}

/// Reads the ELF header of `path`: `Ok(None)` when it is not an ELF file.
pub fn elf_arch(path: &Path) -> std::io::Result<Option<ElfArch>> {
    let mut h = [0u8; 20];
    let mut f = std::fs::File::open(path)?;
    if f.read(&mut h)? < h.len() || &h[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let (class64, little) = (h[4] == 2, h[5] == 1);
    let machine = if little { u16::from_le_bytes([h[18], h[19]]) } else { u16::from_be_bytes([h[18], h[19]]) };
    let (name, runs_on): (&str, &[&'static str]) = match (machine, class64, little) {
        (62, true, _) => ("x86_64", &["x86_64", "amd64"]),
        (3, false, _) => ("i386", &["i386", "i486", "i586", "i686", "x86_64", "amd64"]),
        (183, true, _) => ("aarch64", &["aarch64", "arm64"]),
        (40, false, _) => ("arm", &["armv6l", "armv7l", "armv8l", "arm", "aarch64"]),
        (243, true, _) => ("riscv64", &["riscv64"]),
        (21, true, true) => ("ppc64le", &["ppc64le"]),
        (21, true, false) => ("ppc64", &["ppc64"]),
        (22, true, _) => ("s390x", &["s390x"]),
        (m, _, _) => return Ok(Some(ElfArch { name: format!("ELF machine {m}"), runs_on: vec![] })),
    };
    Ok(Some(ElfArch { name: name.into(), runs_on: runs_on.to_vec() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit little-endian ELF header for `machine` (enough for [`elf_arch`]).
    pub fn elf_header(machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[6] = 1;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    #[test]
    fn reads_the_machine() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin");
        std::fs::write(&p, elf_header(183)).unwrap();
        let a = elf_arch(&p).unwrap().unwrap();
        assert_eq!(a.name, "aarch64");
        assert!(a.runs_on.contains(&"arm64") && !a.runs_on.contains(&"x86_64"));
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        assert_eq!(elf_arch(&p).unwrap(), None);
        // This very test binary runs here.
        let me = elf_arch(&std::env::current_exe().unwrap()).unwrap().unwrap();
        let uname = std::process::Command::new("uname").arg("-m").output().unwrap();
        assert!(me.runs_on.contains(&String::from_utf8_lossy(&uname.stdout).trim()), "{me:?}");
    }
}
