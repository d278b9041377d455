//! `docker cp` (`HEAD|GET|PUT /containers/{id}/archive`), `docker export` and `docker diff`.
//!
//! Paths are resolved in a [`View`] of the container: a running container's own mount
//! namespace (its root reached through [`pidroot`], volumes and tmpfs included); a stopped one's rootfs,
//! mounted for the operation with its volumes and binds bound in (as dockerd does), under the
//! container's operation lock. All file access goes through [`fsview`], never a host path.
pub mod changes;
mod export;
pub mod extract;
pub mod fsview;
pub mod layer;
pub mod pidroot;
pub mod tar_out;

use super::record::Record;
use super::{rootfs, ContainerError, ContainerService, Ctr};
use crate::runtime::Runtime;
use crate::volume::MountKind;
use bytes::Bytes;
use fsview::{file_type, resolve, Resolved};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::SFlag;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What `X-Docker-Container-Path-Stat` carries (base64 of this JSON).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` bits.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    pub fn header_value(&self) -> String {
        crate::image::registry::base64_encode(&serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Go's `os.FileMode` from a unix `st_mode`.
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    match SFlag::from_bits_truncate(st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => m |= 1 << 31,
        SFlag::S_IFLNK => m |= 1 << 27,
        SFlag::S_IFCHR => m |= (1 << 26) | (1 << 21),
        SFlag::S_IFBLK => m |= 1 << 26,
        SFlag::S_IFIFO => m |= 1 << 25,
        SFlag::S_IFSOCK => m |= 1 << 24,
        _ => {}
    }
    if st_mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

/// `path` made absolute, keeping a trailing `/` or `/.` (they mean "follow" and "contents").
pub fn normalize(path: &str) -> String {
    let clean = crate::volume::spec::clean_path(path);
    if (path.ends_with("/.") || path == ".") && clean != "/" {
        format!("{clean}/.")
    } else if path.ends_with('/') && clean != "/" {
        format!("{clean}/")
    } else {
        clean
    }
}

/// The name the archive's top entry gets: the last component as requested (`.` for `dir/.`).
pub fn base_name(path: &str) -> String {
    if path.ends_with("/.") {
        return ".".into();
    }
    match path.trim_end_matches('/').rsplit('/').next() {
        Some("") | None => "/".into(),
        Some(b) => b.to_string(),
    }
}

/// A container's filesystem for one operation; undoes its mounts when dropped.
pub struct View {
    pub root: OwnedFd,
    /// Host paths bound for the operation, innermost last.
    bound: Vec<PathBuf>,
    /// The container dir, when the rootfs was mounted for this view.
    mounted_rootfs: Option<PathBuf>,
    pub readonly_rootfs: bool,
    /// Destinations of writable volumes and binds.
    rw_mounts: Vec<String>,
}

impl Drop for View {
    fn drop(&mut self) {
        for p in self.bound.iter().rev() {
            if let Err(e) = umount2(p, MntFlags::MNT_DETACH) {
                tracing::warn!(path = %p.display(), error = %e, "unmounting a volume bound for docker cp failed");
            }
        }
        if let Some(dir) = &self.mounted_rootfs {
            if let Err(e) = rootfs::unmount_rootfs(dir) {
                tracing::warn!(error = %e, "unmounting the rootfs after docker cp failed");
            }
        }
    }
}

impl View {
    /// True when writing at `path` (canonical) would hit the read-only rootfs.
    pub fn read_only_at(&self, path: &str) -> bool {
        self.readonly_rootfs && !self.rw_mounts.iter().any(|m| path == m || path.starts_with(&format!("{m}/")))
    }

    /// Blocking: a view of `rec`, running (`pid` > 0) or not.
    fn open(rec: &Record, data_root: &std::path::Path, pid: u32) -> io::Result<View> {
        let view = |root, mounted_rootfs| View {
            root,
            bound: vec![],
            mounted_rootfs,
            readonly_rootfs: rec.host_config.readonly_rootfs.unwrap_or(false),
            rw_mounts: rec.mounts.iter().filter(|m| m.rw).map(|m| m.destination.clone()).collect(),
        };
        if pid > 0 {
            // Through a pidfd-checked handle on the container's process, never a bare pid.
            return Ok(view(pidroot::open(pid, &rec.id)?, None));
        }
        let dir = Record::dir(data_root, &rec.id);
        let merged = rootfs::paths(&dir).merged;
        let mounted = if rootfs::is_mounted(&merged) {
            None
        } else {
            rootfs::mount_rootfs(&dir, &rec.layer_dirs)?;
            Some(dir.clone())
        };
        let root = match fsview::open_root(&merged) {
            Ok(r) => r,
            Err(e) => {
                if mounted.is_some() {
                    let _ = rootfs::unmount_rootfs(&dir);
                }
                return Err(e);
            }
        };
        let mut v = view(root, mounted);
        let mut mounts: Vec<_> = rec.mounts.iter().filter(|m| m.kind != MountKind::Tmpfs && m.source.exists()).collect();
        mounts.sort_by_key(|m| m.destination.matches('/').count());
        for m in mounts {
            let target = match mountpoint(&v.root, &m.destination, m.source.is_dir()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(destination = %m.destination, error = %e, "cannot prepare a mountpoint for docker cp; skipped");
                    continue;
                }
            };
            let host = merged.join(target.path.trim_start_matches('/'));
            let via = format!("/proc/self/fd/{}", target.fd.as_raw_fd());
            mount(Some(&m.source), via.as_str(), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(fsview::errno)?;
            v.bound.push(host.clone());
            if !m.rw {
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                mount(None::<&str>, &host, None::<&str>, flags, None::<&str>).map_err(fsview::errno)?;
            }
        }
        Ok(v)
    }
}

/// The mountpoint `dest` inside the view, created (a directory, or an empty file for a file
/// source) where missing, as the runtime would create it.
fn mountpoint(root: &OwnedFd, dest: &str, dir: bool) -> io::Result<Resolved> {
    match resolve(root, dest, true) {
        Ok(r) => return Ok(r),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let (parent, name) = dest.rsplit_once('/').unwrap_or(("", dest));
    let p = if parent.is_empty() { resolve(root, "/", true)? } else { mountpoint(root, parent, true)? };
    let n = std::ffi::OsStr::new(name);
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o755);
    if dir {
        nix::sys::stat::mkdirat(Some(p.fd.as_raw_fd()), n, mode).map_err(fsview::errno)?;
    } else {
        fsview::open_at(
            p.fd.as_raw_fd(),
            n,
            nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_NOFOLLOW,
            mode,
        )?;
    }
    resolve(root, dest, true)
}

fn stat_of(view: &View, path: &str, r: &Resolved) -> PathStat {
    let st = &r.stat;
    let link_target = if file_type(st) == SFlag::S_IFLNK {
        match resolve(&view.root, path, true) {
            Ok(t) => t.path,
            Err(_) => r
                .parent
                .as_ref()
                .and_then(|(p, n)| nix::fcntl::readlinkat(Some(p.as_raw_fd()), n.as_os_str()).ok())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    } else {
        String::new()
    };
    let mtime = chrono::DateTime::from_timestamp(st.st_mtime, st.st_mtime_nsec as u32).unwrap_or_default();
    PathStat {
        name: base_name(path),
        size: st.st_size,
        mode: go_file_mode(st.st_mode),
        mtime: mtime.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        link_target,
    }
}

/// A blocking writer that feeds a response body in 64 KiB chunks.
pub struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<Bytes>) -> Self {
        ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) }
    }
}

impl io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(b).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

/// A blocking reader over request body chunks.
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChannelReader { rx, cur: Bytes::new() }
    }
}

impl io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

fn not_found(path: &str, key: &str) -> ContainerError {
    ContainerError::PathNotFound(format!("Could not find the file {path} in container {key}"))
}

fn map_resolve(e: io::Error, path: &str, key: &str) -> ContainerError {
    if e.kind() == io::ErrorKind::NotFound {
        not_found(path, key)
    } else {
        ContainerError::Io { op: "lstat", path: path.into(), source: e }
    }
}

impl<R: Runtime> ContainerService<R> {
    /// Runs `f` with a view of the container in a blocking task. A stopped container's view
    /// holds its operation lock, so it cannot start meanwhile.
    async fn with_view<T: Send + 'static>(
        &self,
        key: &str,
        f: impl FnOnce(&View, &Record) -> Result<T, ContainerError> + Send + 'static,
    ) -> Result<T, ContainerError> {
        let ctr: Arc<Ctr> = self.get(key)?;
        let rec = ctr.record();
        let data_root = self.cfg.data_root.clone();
        if rec.running() && rec.state.pid > 0 {
            let pid = rec.state.pid;
            return tokio::task::spawn_blocking(move || {
                f(
                    &View::open(&rec, &data_root, pid)
                        .map_err(ContainerError::io("opening the files of", Record::dir(&data_root, &rec.id)))?,
                    &rec,
                )
            })
            .await
            .map_err(ContainerError::task("reading the container's files"))?;
        }
        let _op = ctr.op.lock().await;
        let rec = ctr.record();
        let pid = if rec.running() { rec.state.pid } else { 0 };
        tokio::task::spawn_blocking(move || {
            f(
                &View::open(&rec, &data_root, pid).map_err(ContainerError::io("opening the files of", Record::dir(&data_root, &rec.id)))?,
                &rec,
            )
        })
        .await
        .map_err(ContainerError::task("reading the container's files"))?
    }

    /// `HEAD /containers/{id}/archive`.
    pub async fn archive_stat(&self, key: &str, path: &str) -> Result<PathStat, ContainerError> {
        let path = normalize(path);
        let key2 = key.to_string();
        self.with_view(key, move |v, _| {
            let r = resolve(&v.root, &path, false).map_err(|e| map_resolve(e, &path, &key2))?;
            Ok(stat_of(v, &path, &r))
        })
        .await
    }

    /// `GET /containers/{id}/archive`: the stat and a tar stream of the path.
    pub async fn archive_get(self: &Arc<Self>, key: &str, path: &str) -> Result<(PathStat, mpsc::Receiver<Bytes>), ContainerError> {
        let path = normalize(path);
        let (tx, rx) = mpsc::channel::<Bytes>(8);
        let (stat_tx, stat_rx) = tokio::sync::oneshot::channel();
        let key2 = key.to_string();
        let svc = self.clone();
        let key3 = key.to_string();
        let job = async move {
            svc.with_view(&key3, move |v, _| {
                let r = match resolve(&v.root, &path, false) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = stat_tx.send(Err(map_resolve(e, &path, &key2)));
                        return Ok(());
                    }
                };
                let _ = stat_tx.send(Ok(stat_of(v, &path, &r)));
                let mut ts = tar_out::TarState::with_names(&read_etc(v, "/etc/passwd"), &read_etc(v, "/etc/group"));
                if let Err(e) =
                    tar_out::write_path(ChannelWriter::new(tx), &mut ts, &r, &base_name(&path)).and_then(|mut w| io::Write::flush(&mut w))
                {
                    tracing::info!(error = %e, "archive stream ended early");
                }
                Ok(())
            })
            .await
        };
        // The view lives in the job until the stream ends; the stat comes first.
        // Serves one request: it ends with its stream.
        let handle = tokio::spawn(job);
        match stat_rx.await {
            Ok(Ok(stat)) => Ok((stat, rx)),
            Ok(Err(e)) => Err(e),
            Err(_) => match handle.await {
                Ok(Err(e)) => Err(e),
                Err(e) => Err(ContainerError::Task { op: "archive", source: e }),
                Ok(Ok(())) => Err(ContainerError::TaskFailed("archive")),
            },
        }
    }

    /// `PUT /containers/{id}/archive`: extracts the tar from `body` into the directory `path`.
    pub async fn archive_put(
        &self,
        key: &str,
        path: &str,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
        body: mpsc::Receiver<Bytes>,
    ) -> Result<(), ContainerError> {
        let path = normalize(path);
        let key2 = key.to_string();
        self.with_view(key, move |v, rec| {
            let dest = resolve(&v.root, &path, true).map_err(|e| map_resolve(e, &path, &key2))?;
            if !fsview::is_dir(&dest.stat) {
                return Err(ContainerError::InvalidParam("extraction point is not a directory".into()));
            }
            if v.read_only_at(&dest.path) {
                return Err(ContainerError::InvalidParam("container rootfs is marked read-only".into()));
            }
            let chown = if copy_uid_gid { Some(container_user(v, rec)?) } else { None };
            let opts = extract::ExtractOptions { no_overwrite_dir_non_dir, chown };
            extract::extract(&v.root, &dest, ChannelReader::new(body), opts).map_err(|e| match e {
                extract::ExtractError::Refused(m) => ContainerError::InvalidParam(m),
                extract::ExtractError::Io { op, path, source } => ContainerError::Io { op, path: path.into(), source },
            })
        })
        .await
    }
}

/// A file of the container (read inside its root), empty if missing.
fn read_etc(v: &View, p: &str) -> String {
    resolve(&v.root, p, true)
        .and_then(|r| fsview::reopen(&r.fd, nix::fcntl::OFlag::O_RDONLY))
        .and_then(|fd| io::read_to_string(std::fs::File::from(fd)))
        .unwrap_or_default()
}

/// uid/gid of the container's configured user, from its own /etc/passwd and /etc/group.
fn container_user(v: &View, rec: &Record) -> Result<(u32, u32), ContainerError> {
    let read = |p: &str| read_etc(v, p);
    let user = rec.config.user.clone().unwrap_or_default();
    let u = crate::runtime::user::parse_user(&user, &read("/etc/passwd"), &read("/etc/group"))
        .map_err(|e| ContainerError::InvalidParam(e.to_string()))?;
    Ok((u.uid, u.gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn modes_and_names() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), 2147484141);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), 134218239);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o644), 420);
        assert_eq!(go_file_mode(libc::S_IFREG | libc::S_ISUID | 0o755), (1 << 23) | 0o755);
        assert_eq!(normalize("etc/passwd"), "/etc/passwd");
        assert_eq!(normalize("/newdir/."), "/newdir/.");
        assert_eq!(normalize("/lnk/"), "/lnk/");
        assert_eq!(normalize("/../../x"), "/x");
        assert_eq!(normalize("/"), "/");
        assert_eq!(base_name("/etc/passwd"), "passwd");
        assert_eq!(base_name("/newdir/."), ".");
        assert_eq!(base_name("/lnk/"), "lnk");
        assert_eq!(base_name("/"), "/");
        let s = PathStat { name: "a".into(), size: 1, mode: 420, mtime: "t".into(), link_target: String::new() };
        let decoded = crate::image::registry::base64_decode(&s.header_value()).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), r#"{"name":"a","size":1,"mode":420,"mtime":"t","linkTarget":""}"#);
    }
}
