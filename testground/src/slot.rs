//! Unique names for one engine under test: a slot number held with an flock(2) on a file
//! in the shared cache dir for the engine's lifetime (released when the process dies), from
//! which the bridge name, subnet and cgroup parent are derived. Stale resources left by a
//! killed previous holder of the slot are cleaned when it is acquired.
use crate::cleanup::{self, Resources};
use std::os::fd::AsRawFd;

/// Number of slots; subnets are 10.160.0.0/24 … 10.167.255.0/24.
pub const SLOTS: u32 = 2048;

pub struct Slot {
    pub index: u32,
    /// `fltt` + 4 digits (fixed width, so no name is a prefix of another).
    pub bridge: String,
    pub cgroup_parent: String,
    _lock: std::fs::File,
}

impl Slot {
    pub fn acquire() -> Slot {
        let dir = crate::image::cache_dir().join("slots");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let start = (std::process::id().wrapping_mul(7919) ^ nanos) % SLOTS;
        for i in 0..SLOTS {
            let index = (start + i) % SLOTS;
            let path = dir.join(format!("slot-{index:04}.lock"));
            let Ok(f) = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path) else { continue };
            // SAFETY: flock(2) on an fd we own.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue;
            }
            let slot = Slot { index, bridge: format!("fltt{index:04}"), cgroup_parent: format!("/fltt{index:04}"), _lock: f };
            let notes = cleanup::cleanup(&Resources {
                bridge: Some(slot.bridge.clone()),
                cgroup_parent: Some(slot.cgroup_parent.clone()),
                roots: vec![],
            });
            if !notes.is_empty() {
                eprintln!("testground: stale slot {index} not fully cleaned: {notes:?}");
                continue;
            }
            if host_ipv4().contains(&format!(" {}", slot.prefix())) {
                continue; // some other interface sits in this subnet
            }
            return slot;
        }
        panic!("no free testground slot in {}", dir.display());
    }

    /// `10.16X.Y.` for this slot.
    pub fn prefix(&self) -> String {
        format!("10.{}.{}.", 160 + self.index / 256, self.index % 256)
    }
    pub fn gateway(&self) -> String {
        format!("{}1", self.prefix())
    }
    /// `--bip` value.
    pub fn bip(&self) -> String {
        format!("{}/24", self.gateway())
    }
}

fn host_ipv4() -> String {
    crate::cmd::run_args("ip", &["-4", "-o", "addr", "show"]).stdout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_and_named() {
        let a = Slot::acquire();
        let b = Slot::acquire();
        assert_ne!(a.index, b.index);
        assert_eq!(a.bridge.len(), 8);
        assert!(a.bip().ends_with(".1/24") && a.bip().starts_with("10.16"));
        assert_eq!(a.cgroup_parent, format!("/{}", a.bridge));
    }
}
