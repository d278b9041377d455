//! What a container shares with another at start: `--pid`/`--ipc container:X` (the donor's
//! namespaces) and the /dev/shm of `--ipc shareable`.
use super::runopts::{joined_container, run_options};
use super::{ContainerError, ContainerService};
use crate::runtime::options::{Namespace, RunOptions};
use crate::runtime::Runtime;
use std::path::{Path, PathBuf};

/// The shared /dev/shm of an `--ipc shareable` container, under its directory.
fn shm_dir(container_dir: &Path) -> PathBuf {
    container_dir.join("shm")
}

/// Mounts the shareable /dev/shm (a tmpfs of `size` bytes) unless it is there already.
fn mount_shm(dir: &Path, size: u64) -> std::io::Result<()> {
    use nix::mount::{mount, MsFlags};
    std::fs::create_dir_all(dir)?;
    if crate::container::rootfs::is_mounted(dir) {
        return Ok(());
    }
    let opts = format!("mode=1777,size={size}");
    mount(Some("shm"), dir, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, Some(opts.as_str()))
        .map_err(|e| std::io::Error::other(format!("mounting the shareable /dev/shm at {}: {e}", dir.display())))
}

/// Unmounts an `--ipc shareable` container's /dev/shm (when it stops).
pub(super) fn release_shm(container_dir: &Path) {
    let dir = shm_dir(container_dir);
    if crate::container::rootfs::is_mounted(&dir) {
        let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
    }
}

impl<R: Runtime> ContainerService<R> {
    /// The running process of `--pid`/`--ipc container:X`, in dockerd's words when it is not.
    fn donor(&self, key: &str, what: &str) -> Result<super::record::Record, ContainerError> {
        let rec = self.get(key)?.record();
        if !rec.running() || rec.state.pid == 0 {
            return Err(ContainerError::Conflict(format!("cannot join {what} of a non running container: {key}")));
        }
        Ok(rec)
    }

    /// The run options of a container about to start: its HostConfig's, with the namespaces
    /// of the containers it joins and its shared /dev/shm.
    pub(super) fn run_options_for(&self, rec: &super::record::Record) -> Result<RunOptions, ContainerError> {
        let hc = &rec.host_config;
        let mut o = run_options(hc)?;
        if let Some(other) = joined_container(hc.pid_mode.as_deref()) {
            let d = self.donor(other, "PID")?;
            o.pid = Namespace::Join(format!("/proc/{}/ns/pid", d.state.pid).into());
        }
        if let Some(other) = joined_container(hc.ipc_mode.as_deref()) {
            let d = self.donor(other, "IPC")?;
            if d.host_config.ipc_mode.as_deref() != Some("shareable") {
                return Err(ContainerError::InvalidParam("non-shareable IPC (hint: use IpcMode:shareable for the donor container)".into()));
            }
            o.ipc = Namespace::Join(format!("/proc/{}/ns/ipc", d.state.pid).into());
            o.shm_dir = Some(shm_dir(&super::Record::dir(&self.cfg.data_root, &d.id)));
        }
        if hc.ipc_mode.as_deref() == Some("shareable") {
            let dir = shm_dir(&super::Record::dir(&self.cfg.data_root, &rec.id));
            mount_shm(&dir, o.shm_size.unwrap_or(64 << 20)).map_err(ContainerError::io("mounting the shareable /dev/shm", &dir))?;
            o.shm_dir = Some(dir);
        }
        Ok(o)
    }
}
