//! Named network namespaces without forking: a short-lived std thread unshares (or enters) a
//! netns, bind-mounts it onto a file like `ip netns add` does, and opens a netlink socket that
//! stays bound to that netns after the thread exits. The engine's tokio threads never change
//! namespace.
//!
//! Mount propagation: `ip netns` makes `/run/netns` a shared mount so that a netns unmounted in
//! the host also disappears from mount namespaces created meanwhile. We do not: containers made by
//! libcontainer pivot_root and detach the host tree, so they keep no copy of these mounts, and
//! removing a file that is a mount point elsewhere is allowed since Linux 3.18. Keeping
//! `<exec_root>/netns` a plain directory also means no mount of the directory itself is left
//! behind when an engine (or a test) goes away.
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A named netns: an fd of it plus a netlink socket opened inside it.
pub struct NetNs {
    pub fd: OwnedFd,
    /// Raw `NETLINK_ROUTE` socket created in the netns (blocking mode; wrap it for tokio).
    pub netlink: OwnedFd,
}

/// True when `path` is a bind-mounted network namespace (nsfs).
pub fn is_netns(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Opens the netns bind-mounted at `path`, or creates a new one there.
pub async fn open_or_create(path: &Path) -> io::Result<NetNs> {
    let path = path.to_path_buf();
    on_thread(move || if is_netns(&path) { enter(&path) } else { create(&path) }).await
}

/// Unmounts and removes the netns file. Idempotent.
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(io::Error::other(format!("unmount {}: {e}", path.display()))),
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The inode of the netns `fd` refers to (what `/proc/<pid>/ns/net` shows as `net:[<inode>]`).
pub fn inode(fd: &OwnedFd) -> u64 {
    nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(fd)).map(|s| s.st_ino).unwrap_or(0)
}

/// Finds a process in the netns with inode `ino` and bind-mounts that netns on `path` again:
/// for a container that outlived its engine when the mount did not (the engine came back in
/// another mount namespace, or someone unmounted it). `Ok(false)` when no process is in it.
pub fn adopt(path: &Path, ino: u64) -> io::Result<bool> {
    if ino == 0 {
        return Ok(false);
    }
    let want = format!("net:[{ino}]");
    let Some(src) = fs::read_dir("/proc")?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .map(|e| e.path().join("ns/net"))
        .find(|p| fs::read_link(p).is_ok_and(|l| l.as_os_str() == want.as_str()))
    else {
        return Ok(false);
    };
    let _ = umount2(path, MntFlags::MNT_DETACH);
    OpenOptions::new().write(true).create(true).truncate(false).open(path).map_err(|e| ctx(e, path))?;
    mount(Some(&src), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| io::Error::other(format!("bind-mount {} on {}: {e}", src.display(), path.display())))?;
    Ok(is_netns(path))
}

/// Runs `f` on a fresh std thread (which may change its namespaces and then dies) and awaits it.
async fn on_thread<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("flt-netns".into()).spawn(move || {
        let _ = tx.send(f());
    })?;
    rx.await.map_err(|_| io::Error::other("netns thread panicked"))?
}

/// On a dedicated thread: new netns, bind-mounted at `path`.
fn create(path: &Path) -> io::Result<NetNs> {
    // The file must exist before it can be a mount point; a leftover plain file is reused.
    OpenOptions::new().write(true).create(true).truncate(false).open(path).map_err(|e| ctx(e, path))?;
    let res = (|| {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| io::Error::other(format!("unshare(CLONE_NEWNET): {e}")))?;
        mount(Some("/proc/thread-self/ns/net"), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| io::Error::other(format!("bind-mount netns on {}: {e}", path.display())))?;
        let fd = OwnedFd::from(File::open(path).map_err(|e| ctx(e, path))?);
        Ok(NetNs { fd, netlink: netlink_socket()? })
    })();
    if res.is_err() {
        let _ = remove(path);
    }
    res
}

/// On a dedicated thread: a new netns, mounted nowhere (held by its fd; see `netns_pool`).
pub async fn spare() -> io::Result<NetNs> {
    on_thread(|| {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| io::Error::other(format!("unshare(CLONE_NEWNET): {e}")))?;
        let fd = OwnedFd::from(File::open("/proc/thread-self/ns/net")?);
        Ok(NetNs { fd, netlink: netlink_socket()? })
    })
    .await
}

/// Bind-mounts the netns `ns` at `path` (a new file), where [`create`] mounts a new one.
pub fn mount_at(ns: &NetNs, path: &Path) -> io::Result<()> {
    OpenOptions::new().write(true).create(true).truncate(false).open(path).map_err(|e| ctx(e, path))?;
    // The fd's magic link names the namespace (any thread: the fd table is the process's).
    let src = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&ns.fd));
    if let Err(e) = mount(Some(src.as_str()), path, None::<&str>, MsFlags::MS_BIND, None::<&str>) {
        let _ = remove(path);
        return Err(io::Error::other(format!("bind-mount netns on {}: {e}", path.display())));
    }
    Ok(())
}

/// On a dedicated thread: joins the netns at `path` to open a netlink socket in it.
fn enter(path: &Path) -> io::Result<NetNs> {
    let fd = OwnedFd::from(File::open(path).map_err(|e| ctx(e, path))?);
    setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| io::Error::other(format!("setns {}: {e}", path.display())))?;
    Ok(NetNs { fd, netlink: netlink_socket()? })
}

/// The embedded resolver's sockets, bound to `addr` (127.0.0.11:53) inside the netns at `path`:
/// a UDP socket and a TCP listener, non-blocking, ready for tokio. They stay in that netns.
pub async fn resolver_sockets(path: &Path, addr: std::net::SocketAddr) -> io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let path = path.to_path_buf();
    on_thread(move || {
        let fd = OwnedFd::from(File::open(&path).map_err(|e| ctx(e, &path))?);
        setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| io::Error::other(format!("setns {}: {e}", path.display())))?;
        let udp = std::net::UdpSocket::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("bind udp {addr}: {e}")))?;
        let tcp = std::net::TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("bind tcp {addr}: {e}")))?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        Ok((udp, tcp))
    })
    .await
}

fn netlink_socket() -> io::Result<OwnedFd> {
    let s = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)?;
    // SAFETY: into_raw_fd hands over sole ownership of a valid, open descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(s.into_raw_fd()) })
}

fn ctx(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// `<dir>/<container id>`.
pub fn path_in(dir: &Path, container_id: &str) -> PathBuf {
    dir.join(container_id)
}
