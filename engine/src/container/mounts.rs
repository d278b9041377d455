//! A container's mounts: resolved at create (volumes created, `--volumes-from` copied),
//! handed to the runtime at start (image content copied into empty volumes first, as dockerd),
//! and given back at exit and removal (anonymous volumes go with `rm -v` and `--rm`).
use super::archive::{extract, fsview, tar_out};
use super::record::Record;
use super::{ContainerError, ContainerService};
use crate::runtime::{BindMount, Runtime, TmpfsMount};
use crate::volume::spec::{self, MountKind, MountPoint};
use crate::volume::{local, VolumeError};
use bollard_stubs::models::HostConfig;
use std::collections::{BTreeMap, HashSet};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

fn invalid(e: impl ToString) -> ContainerError {
    ContainerError::InvalidParam(e.to_string())
}

fn depth(dest: &str) -> usize {
    dest.trim_end_matches('/').matches('/').count()
}

/// Copies the image's content at `dest` (resolved inside `rootfs`) into the empty volume
/// directory `data`, with owners, modes and times; the volume's root takes the directory's
/// owner and mode. Both sides are accessed through fds only.
pub fn copy_image_content(rootfs: &Path, dest: &str, data: &Path) -> std::io::Result<bool> {
    let src_root = fsview::open_root(rootfs)?;
    let src = match fsview::resolve(&src_root, dest, true) {
        Ok(s) if fsview::is_dir(&s.stat) => s,
        _ => return Ok(false),
    };
    let dst_root = fsview::open_root(data)?;
    let dst = fsview::resolve(&dst_root, "/", true)?;
    let (mut reader, writer) = std::io::pipe()?;
    let src_fd = src.fd.try_clone()?;
    let producer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut b = tar::Builder::new(writer);
        tar_out::write_dir_contents(&mut b, &mut tar_out::TarState::default(), &src_fd, "")?;
        b.into_inner().map(drop)
    });
    let res = extract::extract(&dst_root, &dst, &mut reader, extract::ExtractOptions::default());
    drop(reader);
    let produced = producer.join().map_err(|_| std::io::Error::other("copy thread panicked"))?;
    res.map_err(|e| std::io::Error::other(e.to_string()))?;
    produced?;
    let p = format!("/proc/self/fd/{}", dst.fd.as_raw_fd());
    std::os::unix::fs::chown(&p, Some(src.stat.st_uid), Some(src.stat.st_gid))?;
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(src.stat.st_mode & 0o7777))?;
    Ok(true)
}

impl<R: Runtime> ContainerService<R> {
    /// Every mount of a new container, volumes created. `image_volumes`: the image's `VOLUME`s.
    pub(super) fn resolve_mounts(&self, hc: &HostConfig, image_volumes: &[String]) -> Result<Vec<MountPoint>, ContainerError> {
        let mut by_dest: BTreeMap<String, MountPoint> = BTreeMap::new();
        for vf in hc.volumes_from.iter().flatten() {
            let (name, rw) = spec::parse_volumes_from(vf).map_err(invalid)?;
            // 400, not 404: a 404 on create makes the CLI pull the image.
            let src = self.get(&name).map_err(|e| invalid(e.to_string()))?.record();
            for mut m in src.mounts.into_iter().filter(|m| !m.hidden) {
                if let Some(rw) = rw {
                    m.rw = rw;
                    m.mode = if rw { "rw".into() } else { "ro".into() };
                }
                by_dest.insert(m.destination.clone(), m);
            }
        }
        for d in image_volumes {
            let m = MountPoint::anonymous_volume(d);
            by_dest.entry(m.destination.clone()).or_insert(m);
        }
        let mut user = HashSet::new();
        let mut add = |m: MountPoint| -> Result<(), ContainerError> {
            if !user.insert(m.destination.clone()) {
                return Err(invalid(format!("Duplicate mount point: {}", m.destination)));
            }
            by_dest.insert(m.destination.clone(), m);
            Ok(())
        };
        for b in hc.binds.iter().flatten() {
            add(spec::parse_bind(b).map_err(invalid)?)?;
        }
        for m in hc.mounts.iter().flatten() {
            let m = spec::parse_mount(m).map_err(invalid)?;
            if m.kind == MountKind::Bind && !m.source.exists() {
                return Err(invalid(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    m.source.display()
                )));
            }
            add(m)?;
        }
        for (dst, opts) in hc.tmpfs.iter().flatten() {
            add(spec::parse_tmpfs(dst, opts).map_err(invalid)?)?;
        }
        let mut out: Vec<MountPoint> = by_dest.into_values().collect();
        let mut created: Vec<MountPoint> = vec![];
        for m in out.iter_mut().filter(|m| m.kind == MountKind::Volume && m.source.as_os_str().is_empty()) {
            let name = (!m.name.is_empty()).then_some(m.name.as_str());
            let existed = name.is_some_and(|n| self.volumes.exists(n));
            match self.volumes.create(name, Some(&m.driver), m.volume_labels.clone(), BTreeMap::new()) {
                Ok(v) => {
                    m.name = v.name;
                    m.source = self.volumes.data_dir(&m.name);
                    if !existed && m.anonymous {
                        created.push(m.clone());
                    }
                }
                Err(e) => {
                    self.drop_anonymous(&created);
                    return Err(e.into());
                }
            }
        }
        Ok(out)
    }

    /// Removes the anonymous volumes of `mounts` no other container uses.
    pub(super) fn drop_anonymous(&self, mounts: &[MountPoint]) {
        for m in mounts.iter().filter(|m| m.kind == MountKind::Volume && m.anonymous && !m.name.is_empty()) {
            match self.volumes.remove(&m.name, true) {
                Ok(()) | Err(VolumeError::InUse { .. }) => {}
                Err(e) => tracing::warn!(volume = %m.name, error = %e, "removing an anonymous volume failed"),
            }
        }
    }

    /// The containers whose mounts reference volume `name`.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .all()
            .iter()
            .map(|c| c.record())
            .filter(|r| r.mounts.iter().any(|m| m.kind == MountKind::Volume && m.name == name))
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids
    }

    /// Creates the volumes' and bind mounts' sources as needed (copying image content into an
    /// empty volume), and refuses a bind source that does not exist.
    async fn prepare_sources(&self, rec: &Record, rootfs: &Path) -> Result<(), ContainerError> {
        let mounts = rec.mounts.clone();
        let root = rootfs.to_path_buf();
        let volumes = self.volumes.clone();
        tokio::task::spawn_blocking(move || -> Result<(), ContainerError> {
            for m in &mounts {
                match m.kind {
                    MountKind::Volume => {
                        volumes.ensure_mounted(&m.name)?;
                        std::fs::create_dir_all(&m.source).map_err(ContainerError::io("creating the volume directory", &m.source))?;
                        if m.copy_data && local::is_empty(&m.source) {
                            if let Err(e) = copy_image_content(&root, &m.destination, &m.source) {
                                tracing::warn!(volume = %m.name, error = %e, "copying image content into the volume failed");
                            }
                        }
                    }
                    MountKind::Bind if m.create_source && !m.source.exists() => {
                        std::fs::create_dir_all(&m.source).map_err(ContainerError::io("creating the bind source", &m.source))?
                    }
                    MountKind::Bind if !m.source.exists() => {
                        return Err(invalid(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {}",
                            m.source.display()
                        )))
                    }
                    _ => {}
                }
            }
            Ok(())
        })
        .await
        .map_err(ContainerError::task("preparing the mounts"))?
    }

    /// The runtime's mounts for a start: volumes (filled from the image when new and empty),
    /// binds, then the engine's /etc files unless the user mounts those paths; parents first.
    pub(super) async fn run_mounts(
        &self,
        rec: &Record,
        rootfs: &Path,
        etc: &[(PathBuf, &'static str)],
    ) -> Result<(Vec<BindMount>, Vec<TmpfsMount>), ContainerError> {
        // Volumes and bind sources are prepared on a blocking thread; a container with neither
        // (a tmpfs at most) does not wait for one (a thread hop costs ~0.1-1 ms of a start on a
        // busy host).
        if rec.mounts.iter().any(|m| m.kind != MountKind::Tmpfs) {
            self.prepare_sources(rec, rootfs).await?;
        }
        let user: HashSet<&str> = rec.mounts.iter().map(|m| m.destination.as_str()).collect();
        let mut binds: Vec<BindMount> = rec
            .mounts
            .iter()
            .filter(|m| m.kind != MountKind::Tmpfs)
            .map(|m| BindMount {
                source: m.source.clone(),
                destination: m.destination.clone(),
                readonly: !m.rw,
                // Binds only: a volume's mount is the engine's own, private.
                propagation: if m.kind == MountKind::Bind { m.propagation.clone() } else { String::new() },
            })
            .chain(etc.iter().filter(|(_, d)| !user.contains(d)).map(|(s, d)| BindMount {
                source: s.clone(),
                destination: d.to_string(),
                readonly: false,
                propagation: String::new(),
            }))
            .collect();
        binds.sort_by_key(|b| depth(&b.destination));
        let tmpfs = rec
            .mounts
            .iter()
            .filter(|m| m.kind == MountKind::Tmpfs)
            .map(|m| TmpfsMount { destination: m.destination.clone(), options: spec::tmpfs_mount_options(m) })
            .collect();
        for m in rec.mounts.iter().filter(|m| m.kind == MountKind::Volume) {
            let rw = m.rw.to_string();
            self.events.publish(
                "volume",
                "mount",
                &m.name,
                &[
                    ("container", &rec.id),
                    ("destination", &m.destination),
                    ("driver", &m.driver),
                    ("propagation", &m.propagation),
                    ("read/write", &rw),
                ],
            );
        }
        Ok((binds, tmpfs))
    }

    /// After the process exited: the volumes are no longer mounted.
    pub(super) fn unmount_events(&self, rec: &Record) {
        for m in rec.mounts.iter().filter(|m| m.kind == MountKind::Volume) {
            self.events.publish("volume", "unmount", &m.name, &[("container", &rec.id), ("driver", &m.driver)]);
        }
    }
}

/// `Mounts` of inspect and ps.
pub fn mounts_json(rec: &Record) -> Vec<serde_json::Value> {
    rec.mounts.iter().filter(|m| !m.hidden).map(|m| m.to_json()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn copies_image_content_inside_only() {
        let d = tempfile::tempdir().unwrap();
        let rootfs = d.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("real/sub")).unwrap();
        std::fs::write(rootfs.join("real/sub/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/real", rootfs.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", rootfs.join("real/p")).unwrap();
        let data = d.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        assert!(copy_image_content(&rootfs, "/link", &data).unwrap());
        assert_eq!(std::fs::read(data.join("sub/f")).unwrap(), b"x");
        assert_eq!(std::fs::read_link(data.join("p")).unwrap(), PathBuf::from("/etc/passwd"));
        let empty = d.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(!copy_image_content(&rootfs, "/nope", &empty).unwrap());
        assert!(!copy_image_content(&rootfs, "/real/sub/f", &empty).unwrap());
        assert_eq!(depth("/a/b"), 2);
    }
}
