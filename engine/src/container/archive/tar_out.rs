//! Tar streams of a container path (`docker cp` out, `docker export`), read through fds of a
//! [`super::fsview`] so nothing outside the container is ever opened. Entry names are written
//! byte for byte (`./x` stays `./x`, as dockerd sends it), long ones with GNU extensions.
use super::fsview::{self, file_type, Item, Resolved};
use nix::sys::stat::{FileStat, SFlag};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What a tar stream carries besides the files, as dockerd's archives do: owner names (looked
/// up in the container's /etc/passwd and /etc/group) and hard links (a second name of a file
/// already written is a link entry to the first).
#[derive(Default)]
pub struct TarState {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
    seen: HashMap<(u64, u64), Vec<u8>>,
}

/// `name:x:id:...` lines as id -> name (the first name of an id wins).
fn id_names(db: &str) -> HashMap<u32, String> {
    let mut m = HashMap::new();
    for l in db.lines() {
        let mut f = l.split(':');
        if let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) {
            if let Ok(id) = id.trim().parse() {
                m.entry(id).or_insert_with(|| name.to_string());
            }
        }
    }
    m
}

impl TarState {
    /// Owner names from the contents of the container's /etc/passwd and /etc/group.
    pub fn with_names(passwd: &str, group: &str) -> Self {
        TarState { users: id_names(passwd), groups: id_names(group), seen: HashMap::new() }
    }

    fn name_owner(&self, h: &mut tar::Header, st: &FileStat) {
        if let Some(u) = self.users.get(&st.st_uid) {
            let _ = h.set_username(u);
        }
        if let Some(g) = self.groups.get(&st.st_gid) {
            let _ = h.set_groupname(g);
        }
    }

    /// For a file with more names: the name it was first written under, else remembers `name`.
    fn first_name(&mut self, st: &FileStat, name: &[u8]) -> Option<Vec<u8>> {
        if fsview::is_dir(st) || st.st_nlink < 2 {
            return None;
        }
        let key = (st.st_dev, st.st_ino);
        if let Some(first) = self.seen.get(&key) {
            return Some(first.clone());
        }
        self.seen.insert(key, name.to_vec());
        None
    }
}

/// Fills mode, owner, time and type from `st`.
fn header_for(st: &FileStat) -> Option<tar::Header> {
    let mut h = tar::Header::new_gnu();
    let t = match file_type(st) {
        SFlag::S_IFDIR => tar::EntryType::Directory,
        SFlag::S_IFREG => tar::EntryType::Regular,
        SFlag::S_IFLNK => tar::EntryType::Symlink,
        SFlag::S_IFCHR => tar::EntryType::Char,
        SFlag::S_IFBLK => tar::EntryType::Block,
        SFlag::S_IFIFO => tar::EntryType::Fifo,
        _ => return None, // sockets are not archived
    };
    h.set_entry_type(t);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(if t == tar::EntryType::Regular { st.st_size as u64 } else { 0 });
    if matches!(t, tar::EntryType::Char | tar::EntryType::Block) {
        let _ = h.set_device_major(libc::major(st.st_rdev));
        let _ = h.set_device_minor(libc::minor(st.st_rdev));
    }
    Some(h)
}

/// Writes one entry; names or link targets over 100 bytes get a GNU long-name record first.
fn append<W: Write>(b: &mut tar::Builder<W>, mut h: tar::Header, name: &[u8], link: Option<&[u8]>, data: impl Read) -> io::Result<()> {
    for (bytes, kind) in [(Some(name), b'L'), (link, b'K')] {
        let Some(bytes) = bytes else { continue };
        if bytes.len() > 100 {
            let mut l = tar::Header::new_gnu();
            l.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            l.set_entry_type(tar::EntryType::new(kind));
            l.set_mode(0o644);
            l.set_size(bytes.len() as u64 + 1);
            l.set_cksum();
            let mut data = bytes.to_vec();
            data.push(0);
            b.append(&l, data.as_slice())?;
        }
    }
    let n = name.len().min(100);
    h.as_old_mut().name = [0; 100];
    h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    if let Some(l) = link {
        let n = l.len().min(100);
        h.as_old_mut().linkname = [0; 100];
        h.as_old_mut().linkname[..n].copy_from_slice(&l[..n]);
    }
    h.set_cksum();
    b.append(&h, data)
}

fn join(prefix: &str, rel: &Path) -> Vec<u8> {
    if prefix.is_empty() {
        rel.as_os_str().as_bytes().to_vec()
    } else {
        let mut v = prefix.as_bytes().to_vec();
        if !prefix.ends_with('/') {
            v.push(b'/');
        }
        v.extend_from_slice(rel.as_os_str().as_bytes());
        v
    }
}

pub(crate) fn append_item<W: Write>(b: &mut tar::Builder<W>, ts: &mut TarState, it: &Item, name: Vec<u8>) -> io::Result<()> {
    let Some(mut h) = header_for(&it.stat) else { return Ok(()) };
    ts.name_owner(&mut h, &it.stat);
    if let Some(first) = ts.first_name(&it.stat, &name) {
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        return append(b, h, &name, Some(&first), io::empty());
    }
    match file_type(&it.stat) {
        SFlag::S_IFDIR => {
            let mut n = name;
            n.push(b'/');
            append(b, h, &n, None, io::empty())
        }
        SFlag::S_IFREG => {
            let f = match it.open() {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            // A file that shrinks meanwhile is padded, one that grows is cut: the header's size rules.
            let size = h.size().unwrap_or(0);
            let data = f.take(size).chain(io::repeat(0)).take(size);
            append(b, h, &name, None, data)
        }
        SFlag::S_IFLNK => {
            let target = it.link_target()?;
            append(b, h, &name, Some(target.as_bytes()), io::empty())
        }
        _ => append(b, h, &name, None, io::empty()),
    }
}

/// Writes everything below the directory `dir`, names prefixed by `prefix` (none when empty).
pub fn write_dir_contents<W: Write>(
    b: &mut tar::Builder<W>,
    ts: &mut TarState,
    dir: &std::os::fd::OwnedFd,
    prefix: &str,
) -> io::Result<()> {
    fsview::walk(
        dir,
        Path::new(""),
        &mut |it| {
            append_item(b, ts, it, join(prefix, it.rel))?;
            Ok(true)
        },
        &mut |_, _| Ok(()),
    )
}

/// The archive `GET /containers/{id}/archive` sends: `target` named `base` (`passwd`, `dir`, `.`),
/// a directory with everything below it.
pub fn write_path<W: Write>(w: W, ts: &mut TarState, target: &Resolved, base: &str) -> io::Result<W> {
    let mut b = tar::Builder::new(w);
    let parent = target.parent.as_ref().map(|(p, n)| (p, n.clone()));
    match (file_type(&target.stat), parent) {
        (SFlag::S_IFDIR, _) => {
            if let Some(mut h) = header_for(&target.stat) {
                ts.name_owner(&mut h, &target.stat);
                let top = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
                append(&mut b, h, top.as_bytes(), None, io::empty())?;
            }
            write_dir_contents(&mut b, ts, &target.fd, base)?;
        }
        (_, Some((p, name))) => {
            let it = Item { rel: Path::new(base), stat: target.stat, dir: std::os::fd::AsRawFd::as_raw_fd(p), name: &name };
            append_item(&mut b, ts, &it, base.as_bytes().to_vec())?;
        }
        (_, None) => {}
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn archives_keep_names_links_and_long_paths() {
        let d = tempfile::tempdir().unwrap();
        let long = "d".repeat(120);
        std::fs::create_dir_all(d.path().join("dir").join(&long)).unwrap();
        std::fs::write(d.path().join("dir/f"), b"hello").unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("dir/l")).unwrap();
        let root = fsview::open_root(d.path()).unwrap();
        let read = |path: &str, base: &str| {
            let r = fsview::resolve(&root, path, false).unwrap();
            let buf = write_path(Vec::new(), &mut TarState::default(), &r, base).unwrap();
            let mut ar = tar::Archive::new(buf.as_slice());
            ar.entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let link = e.link_name().unwrap().map(|l| format!(" -> {}", l.display())).unwrap_or_default();
                    format!("{}{link}", String::from_utf8_lossy(&e.path_bytes()))
                })
                .collect::<Vec<_>>()
        };
        let names = read("/dir", "dir");
        assert_eq!(names, ["dir/", format!("dir/{long}/").as_str(), "dir/f", "dir/l -> /etc"]);
        assert_eq!(read("/dir/.", ".")[0], "./");
        assert_eq!(read("/", "/")[..2], ["/", "/dir/"]);
        assert_eq!(read("/dir/f", "f"), ["f"]);
        assert_eq!(read("/dir/l", "l"), ["l -> /etc"]);
        let r = fsview::resolve(&root, "/dir/f", false).unwrap();
        let buf = write_path(Vec::new(), &mut TarState::default(), &r, "f").unwrap();
        let mut ar = tar::Archive::new(buf.as_slice());
        let mut e = ar.entries().unwrap().next().unwrap().unwrap();
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
    }

    #[test]
    fn owner_names_and_hard_links() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("dir")).unwrap();
        std::fs::write(d.path().join("dir/a"), b"data").unwrap();
        std::fs::hard_link(d.path().join("dir/a"), d.path().join("dir/b")).unwrap();
        let root = fsview::open_root(d.path()).unwrap();
        let r = fsview::resolve(&root, "/dir", false).unwrap();
        let mut ts = TarState::with_names("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n", "wheel:x:0:\n");
        let buf = write_path(Vec::new(), &mut ts, &r, "dir").unwrap();
        let mut ar = tar::Archive::new(buf.as_slice());
        let mut got = vec![];
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            got.push((
                String::from_utf8_lossy(&e.path_bytes()).to_string(),
                h.entry_type().is_hard_link(),
                e.link_name().unwrap().map(|l| l.display().to_string()).unwrap_or_default(),
                h.username().unwrap().unwrap_or_default().to_string(),
                h.groupname().unwrap().unwrap_or_default().to_string(),
            ));
        }
        got.sort();
        let first = if got[1].1 { &got[2] } else { &got[1] };
        let second = if got[1].1 { &got[1] } else { &got[2] };
        assert_eq!(got[0], ("dir/".into(), false, String::new(), "root".into(), "wheel".into()));
        assert!(!first.1 && second.1, "{got:?}");
        assert_eq!(second.2, first.0, "{got:?}");
        assert_eq!((second.3.as_str(), second.4.as_str()), ("root", "wheel"));
    }
}
