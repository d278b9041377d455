//! `COPY` and `ADD`: sources from the context (globs, directories copied by content, `ADD`
//! of a local tar extracted) or from another stage or image (`--from`), gathered into a tar
//! whose hash keys the cache; then extracted into a created (never started) container of the
//! stage's image (as `docker cp` does: every path resolved inside its root), whose upper dir
//! becomes the layer. On `FROM scratch` the tar itself is the layer.
use super::context::inside;
use super::parser::Instruction;
use super::steps::{container_layer, Builder, Stage};
use super::{shell, BuildError, BuildService};
use crate::container::archive::{ChannelReader, ChannelWriter};
use crate::container::CreateRequest;
use crate::image::child::LayerTar;
use crate::runtime::Runtime;
use bollard_stubs::models::ContainerCreateBody;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct CopySpec {
    pub add: bool,
    pub sources: Vec<String>,
    /// Absolute (WORKDIR applied); a trailing `/` kept.
    pub dest: String,
    pub chown: Option<String>,
    pub from: Option<String>,
}

impl CopySpec {
    pub fn parse(i: &Instruction, esc: char, vars: &[(String, String)], config: &Map<String, Value>) -> Result<Self, BuildError> {
        let add = i.cmd == "ADD";
        i.check_flags(if add { &["chown"] } else { &["chown", "from"] })?;
        let mut words = match &i.json {
            Some(v) => v.iter().map(|w| shell::word(w, esc, vars, i.line)).collect::<Result<Vec<_>, _>>()?,
            None => shell::words(&i.rest, esc, vars, i.line)?,
        };
        if words.len() < 2 {
            return Err(BuildError::Parse { line: i.line, msg: format!("{} requires at least two arguments", i.cmd) });
        }
        let dest = words.pop().expect("two words at least");
        let wd = config.get("WorkingDir").and_then(|v| v.as_str()).filter(|w| !w.is_empty()).unwrap_or("/");
        let mut abs = if dest.starts_with('/') { dest.clone() } else { format!("{}/{dest}", wd.trim_end_matches('/')) };
        if (dest.ends_with('/') || dest == "." || dest.ends_with("/.")) && !abs.ends_with('/') {
            abs.push('/');
        }
        let chown = i.flag("chown").map(|c| shell::word(c, esc, vars, i.line)).transpose()?;
        Ok(CopySpec { add, sources: words, dest: abs, chown, from: i.flag("from").map(String::from) })
    }

    pub fn descriptor(&self, hash: &str) -> String {
        let chown = self.chown.as_ref().map(|c| format!("--chown={c} ")).unwrap_or_default();
        let from = self.from.as_ref().map(|c| format!("--from={c} ")).unwrap_or_default();
        format!("{} {chown}{from}{hash} in {}", if self.add { "ADD" } else { "COPY" }, self.dest)
    }
}

/// The gathered sources: a tar of names relative to the destination, and its hash.
pub struct Collected {
    path: PathBuf,
    pub hash: String,
    /// One regular file: the destination may name the file itself.
    single_file: Option<String>,
    count: usize,
}

impl Drop for Collected {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes entries and hashes what matters for the cache (not times).
struct Gather<W: Write> {
    b: tar::Builder<W>,
    h: Sha256,
    uid_gid: Option<(u32, u32)>,
    entries: usize,
}

impl<W: Write> Gather<W> {
    fn add(&mut self, name: &str, mut h: tar::Header, data: &mut dyn Read) -> io::Result<()> {
        if let Some((u, g)) = self.uid_gid {
            h.set_uid(u as u64);
            h.set_gid(g as u64);
        }
        h.set_path(name)?;
        h.set_cksum();
        self.h.update(format!("{name}\0{:?}\0{:o}\0{}\0{}\0{}\0", h.entry_type(), h.mode()?, h.uid()?, h.gid()?, h.size()?).as_bytes());
        if let Some(l) = h.link_name_bytes() {
            self.h.update(&l);
        }
        let mut buf = Vec::with_capacity(h.size()? as usize);
        data.take(h.size()?).read_to_end(&mut buf)?;
        buf.resize(h.size()? as usize, 0);
        self.h.update(&buf);
        self.entries += 1;
        self.b.append(&h, &buf[..])
    }

    /// A host file of the context (never following links below the top).
    fn host(&mut self, name: &str, p: &Path, follow: bool) -> io::Result<()> {
        let m = if follow { fs::metadata(p)? } else { fs::symlink_metadata(p)? };
        let mut h = tar::Header::new_gnu();
        h.set_mode(m.permissions().mode() & 0o7777);
        h.set_mtime(m.mtime().max(0) as u64);
        h.set_uid(0);
        h.set_gid(0);
        if m.file_type().is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_link_name(fs::read_link(p)?)?;
            self.add(name, h, &mut io::empty())
        } else if m.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            self.add(&format!("{name}/"), h, &mut io::empty())?;
            let mut names: Vec<_> = fs::read_dir(p)?.flatten().map(|e| e.file_name()).collect();
            names.sort();
            for n in names {
                self.host(&format!("{name}/{}", n.to_string_lossy()), &p.join(&n), false)?;
            }
            Ok(())
        } else if m.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(m.len());
            let mut f = fs::File::open(p)?;
            self.add(name, h, &mut f)
        } else {
            Ok(()) // sockets, fifos and devices are not copied
        }
    }

    /// The entries of a tar (a local archive for ADD, or `--from` content), renamed.
    fn archive(&mut self, r: impl Read, rename: &dyn Fn(&str) -> Option<String>) -> io::Result<()> {
        let mut ar = tar::Archive::new(r);
        for e in ar.entries()? {
            let mut e = e?;
            let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let Some(name) = rename(&raw) else { continue };
            if name.split('/').any(|c| c == "..") {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("invalid tar entry {raw}: path contains '..'")));
            }
            let mut h = e.header().clone();
            if h.entry_type().is_hard_link() {
                continue; // the target's copy is enough
            }
            if h.entry_type().is_pax_global_extensions() || h.entry_type().is_pax_local_extensions() || h.entry_type().is_gnu_longname() {
                continue;
            }
            if self.uid_gid.is_none() && e.header().uid().is_err() {
                h.set_uid(0);
            }
            let link = e.link_name_bytes().map(|l| l.into_owned());
            if let Some(l) = link {
                h.set_link_name(String::from_utf8_lossy(&l).as_ref())?;
            }
            self.add(&name, h, &mut e)?;
        }
        Ok(())
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Context paths matching a glob (segment by segment, as Go's filepath.Match).
fn glob_context(ctx: &Path, pattern: &str) -> io::Result<Vec<PathBuf>> {
    let segs: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    let mut found = vec![PathBuf::new()];
    for seg in segs {
        let mut next = vec![];
        for dir in &found {
            let full = ctx.join(dir);
            if !full.is_dir() || fs::symlink_metadata(&full)?.file_type().is_symlink() {
                continue;
            }
            let mut names: Vec<_> = fs::read_dir(&full)?.flatten().map(|e| e.file_name()).collect();
            names.sort();
            for n in names {
                if super::ignore::glob(seg.as_bytes(), n.to_string_lossy().as_bytes()) {
                    next.push(dir.join(n));
                }
            }
        }
        found = next;
    }
    Ok(found)
}

fn is_archive(p: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut f) = fs::File::open(p) else { return false };
    let n = f.read(&mut head).unwrap_or(0);
    (n >= 2 && head[0] == 0x1f && head[1] == 0x8b) || (n >= 262 && &head[257..262] == b"ustar")
}

fn failed(what: String) -> BuildError {
    BuildError::Invalid(format!("COPY failed: {what}"))
}

/// `user[:group]` as ids, names looked up in the image's /etc/passwd and /etc/group.
fn chown_ids(spec: &str, layers: &[PathBuf]) -> Result<(u32, u32), BuildError> {
    let read = |f: &str| layers.iter().rev().find_map(|d| fs::read_to_string(d.join(f)).ok()).unwrap_or_default();
    let (u, g) = spec.split_once(':').map(|(u, g)| (u, Some(g))).unwrap_or((spec, None));
    let user = crate::runtime::user::parse_user(&format!("{u}:{}", g.unwrap_or("0")), &read("etc/passwd"), &read("etc/group"))
        .map_err(|e| BuildError::Invalid(format!("unable to convert --chown={spec} to ids: {e}")))?;
    Ok((user.uid, if g.is_some() { user.gid } else { user.uid }))
}

/// Gathers the sources of `c` into a tar in the build's directory.
pub async fn collect<R: Runtime>(
    b: &Builder<'_, R>,
    svc: &Arc<BuildService<R>>,
    stage: &Stage,
    c: &CopySpec,
) -> Result<Collected, BuildError> {
    let layers = match &stage.image {
        Some(id) => svc.images.resolve(id)?.layer_dirs,
        None => vec![],
    };
    let uid_gid = c.chown.as_deref().map(|s| chown_ids(s, &layers)).transpose()?;
    let path = b.work_dir().join(format!("copy-{}.tar", crate::ids::new_id()));
    let file = io::BufWriter::new(fs::File::create(&path).map_err(BuildError::io("creating", &path))?);
    let mut g = Gather { b: tar::Builder::new(file), h: Sha256::new(), uid_gid, entries: 0 };
    let mut collected = Collected { path: path.clone(), hash: String::new(), single_file: None, count: 0 };
    let mut fetched = vec![];
    if c.add && c.from.is_none() {
        for src in c.sources.iter().filter(|s| is_url(s)) {
            fetched.push((src.clone(), fetch(src, b.work_dir()).await?));
        }
    }
    let res = match &c.from {
        Some(from) => collect_from(b, svc, c, from, &mut g, &mut collected).await,
        None => collect_context(b.context(), c, &fetched, &mut g, &mut collected),
    };
    for (_, f) in &fetched {
        let _ = fs::remove_file(&f.0);
    }
    res?;
    let digest = hex::encode(g.h.finalize_reset());
    g.b.into_inner().and_then(|mut w| w.flush()).map_err(BuildError::io("writing", &path))?;
    collected.hash = format!(
        "{}:{digest}",
        if collected.count > 1 {
            "multi"
        } else if collected.single_file.is_some() {
            "file"
        } else {
            "dir"
        }
    );
    if collected.count > 1 && !c.dest.ends_with('/') {
        return Err(failed("when using COPY with more than one source file, the destination must be a directory and end with a /".into()));
    }
    Ok(collected)
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Downloads an `ADD <url>` source into the build's directory; returns (file, name).
async fn fetch(url: &str, dir: &Path) -> Result<(PathBuf, String), BuildError> {
    let err = |m: String| BuildError::Invalid(format!("ADD failed: {m}"));
    let http = reqwest::Client::builder()
        .user_agent(concat!("flotilla/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| err(e.to_string()))?;
    let mut resp = http.get(url).send().await.map_err(|e| err(format!("failed to GET {url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(err(format!("failed to GET {url} with status {}", resp.status())));
    }
    let name = resp.url().path().rsplit('/').find(|s| !s.is_empty()).unwrap_or("download").to_string();
    let path = dir.join(format!("fetch-{}", crate::ids::new_id()));
    let mut f = tokio::fs::File::create(&path).await.map_err(BuildError::io("creating", &path))?;
    while let Some(chunk) = resp.chunk().await.map_err(|e| err(format!("reading {url}: {e}")))? {
        tokio::io::AsyncWriteExt::write_all(&mut f, &chunk).await.map_err(BuildError::io("writing", &path))?;
    }
    tokio::io::AsyncWriteExt::flush(&mut f).await.map_err(BuildError::io("writing", &path))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(BuildError::io("chmod", &path))?;
    Ok((path, name))
}

fn collect_context<W: Write>(
    ctx: &Path,
    c: &CopySpec,
    fetched: &[(String, (PathBuf, String))],
    g: &mut Gather<W>,
    out: &mut Collected,
) -> Result<(), BuildError> {
    for src in &c.sources {
        if let Some((_, (path, name))) = fetched.iter().find(|(u, _)| u == src) {
            // A remote file: mode 0600, never extracted (as dockerd does).
            out.count += 1;
            out.single_file = Some(name.clone());
            g.host(name, path, false).map_err(BuildError::io("adding", path))?;
            continue;
        }
        if is_url(src) {
            return Err(failed(format!("source can't be a URL for COPY: {src}")));
        }
        let rel = inside(src).ok_or_else(|| failed(format!("forbidden path outside the build context: {src} ()")))?;
        let matches = if has_glob(src) {
            glob_context(ctx, &rel.to_string_lossy()).map_err(BuildError::io("matching in", ctx))?
        } else {
            let p = ctx.join(&rel);
            if fs::symlink_metadata(&p).is_err() {
                return Err(failed(format!(
                    "file not found in build context or excluded by .dockerignore: stat {src}: file does not exist"
                )));
            }
            vec![rel]
        };
        if matches.is_empty() {
            return Err(failed(format!("no source files were specified (no match for {src})")));
        }
        for rel in matches {
            let p = ctx.join(&rel);
            // The top of a source is followed (inside the context: links were checked on unpack).
            let m = fs::metadata(&p).map_err(|e| failed(format!("{src}: {e}")))?;
            let base = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.count += 1;
            if m.is_dir() {
                let mut names: Vec<_> = fs::read_dir(&p).map_err(BuildError::io("reading", &p))?.flatten().map(|e| e.file_name()).collect();
                names.sort();
                for n in names {
                    let child = p.join(&n);
                    g.host(&n.to_string_lossy(), &child, false).map_err(BuildError::io("adding", &child))?;
                }
            } else if c.add && is_archive(&p) {
                let f = fs::File::open(&p).map_err(BuildError::io("opening", &p))?;
                let r = crate::image::unpack::decompressed(f).map_err(|e| failed(format!("{src}: {e}")))?;
                g.archive(r, &|n| {
                    let n = n.trim_start_matches("./").trim_start_matches('/');
                    (!n.is_empty()).then(|| n.to_string())
                })
                .map_err(BuildError::io("extracting", &p))?;
            } else {
                out.single_file = Some(base.clone());
                g.host(&base, &p, true).map_err(BuildError::io("adding", &p))?;
            }
        }
    }
    if out.count != 1 {
        out.single_file = None;
    }
    Ok(())
}

async fn collect_from<R: Runtime, W: Write + Send>(
    b: &Builder<'_, R>,
    svc: &Arc<BuildService<R>>,
    c: &CopySpec,
    from: &str,
    g: &mut Gather<W>,
    out: &mut Collected,
) -> Result<(), BuildError> {
    let image = match b.stage_image(from) {
        Some(Some(id)) => id,
        Some(None) => return Err(failed(format!("stage {from} has no files (FROM scratch)"))),
        None => svc.images.resolve_id(from)?,
    };
    let cid = placeholder(svc, &image).await?;
    let res = async {
        for src in &c.sources {
            if has_glob(src) {
                return Err(BuildError::Unsupported(format!(
                    "COPY --from with a wildcard ({src}) is not supported by this engine: name the path"
                )));
            }
            let (stat, rx) = svc.containers.archive_get(&cid, src).await.map_err(|e| failed(e.to_string()))?;
            let is_dir = stat.mode & (1 << 31) != 0;
            let base = stat.name.clone();
            out.count += 1;
            if !is_dir {
                out.single_file = Some(base.clone());
            }
            // Collected in a blocking task: the entries arrive through a channel.
            let (tx, mut rx2) = tokio::sync::mpsc::channel::<(String, tar::Header, Vec<u8>)>(16);
            let reader = tokio::task::spawn_blocking(move || -> io::Result<()> {
                let mut ar = tar::Archive::new(ChannelReader::new(rx));
                for e in ar.entries()? {
                    let mut e = e?;
                    let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                    let name = if is_dir {
                        match raw.trim_end_matches('/').split_once('/') {
                            Some((_, rest)) => rest.to_string(),
                            None => continue, // the directory itself
                        }
                    } else {
                        base.clone()
                    };
                    let mut h = e.header().clone();
                    if let Some(l) = e.link_name_bytes() {
                        h.set_link_name(String::from_utf8_lossy(&l).as_ref())?;
                    }
                    if h.entry_type().is_hard_link() {
                        continue;
                    }
                    let mut data = vec![];
                    e.read_to_end(&mut data)?;
                    let name = if h.entry_type().is_dir() { format!("{name}/") } else { name };
                    if tx.blocking_send((name, h, data)).is_err() {
                        break;
                    }
                }
                Ok(())
            });
            while let Some((name, h, data)) = rx2.recv().await {
                g.add(&name, h, &mut &data[..]).map_err(BuildError::io("adding", Path::new(&name)))?;
            }
            reader
                .await
                .map_err(BuildError::join("COPY --from reader"))?
                .map_err(BuildError::io("reading COPY --from source", Path::new(src)))?;
        }
        Ok(())
    }
    .await;
    let _ = svc.containers.remove_with(&cid, true, true).await;
    if out.count != 1 {
        out.single_file = None;
    }
    res
}

/// A created, never started container of `image` (its rootfs is mounted for `docker cp`).
async fn placeholder<R: Runtime>(svc: &Arc<BuildService<R>>, image: &str) -> Result<String, BuildError> {
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec!["/bin/true".into()]),
        host_config: Some(bollard_stubs::models::HostConfig { network_mode: Some("none".into()), ..Default::default() }),
        ..Default::default()
    };
    Ok(svc.containers.create(CreateRequest { name: None, body, mac_address: None }).await?.0)
}

/// Puts the gathered files at the destination; returns the container used (to remove) and the layer.
pub async fn apply<R: Runtime>(
    svc: &Arc<BuildService<R>>,
    stage: &Stage,
    c: &CopySpec,
    col: &Collected,
) -> Result<(Option<String>, LayerTar), BuildError> {
    let dest = c.dest.clone();
    let Some(image) = stage.image.clone() else {
        // FROM scratch: the renamed tar is the layer.
        let target = Target::new(&dest, col, false);
        let (images, path) = (svc.images.clone(), col.path.clone());
        let layer = tokio::task::spawn_blocking(move || -> Result<LayerTar, BuildError> {
            let w = images.layer_writer().map_err(BuildError::io("writing the layer of", &path))?;
            target.rewrite(&path, w).and_then(|w| w.finish()).map_err(BuildError::io("writing the layer of", &path))
        })
        .await
        .map_err(BuildError::join("COPY layer"))??;
        return Ok((None, layer));
    };
    let cid = placeholder(svc, &image).await?;
    let res = async {
        let dest_is_dir = match svc.containers.archive_stat(&cid, dest.trim_end_matches('/')).await {
            Ok(st) => st.mode & (1 << 31) != 0,
            Err(_) => false,
        };
        let target = Target::new(&dest, col, dest_is_dir);
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let path = col.path.clone();
        let writer = tokio::task::spawn_blocking(move || target.rewrite(&path, ChannelWriter::new(tx)).and_then(|mut w| w.flush()));
        svc.containers.archive_put(&cid, "/", false, false, rx).await.map_err(|e| failed(e.to_string()))?;
        writer.await.map_err(BuildError::join("COPY writer"))?.map_err(BuildError::io("rewriting", &col.path))?;
        let (images, root, id2) = (svc.images.clone(), svc.data_root.clone(), cid.clone());
        let lowers = svc.containers.get(&cid)?.record().layer_dirs;
        tokio::task::spawn_blocking(move || container_layer(&images, &root, &id2, &lowers)).await.map_err(BuildError::join("COPY layer"))?
    }
    .await;
    match res {
        Ok(layer) => Ok((Some(cid), layer)),
        Err(e) => {
            let _ = svc.containers.remove_with(&cid, true, true).await;
            Err(e)
        }
    }
}

/// Where the gathered names go: below a directory, or one file renamed.
struct Target {
    dir: String,
    rename: Option<String>,
}

impl Target {
    fn new(dest: &str, col: &Collected, dest_is_dir: bool) -> Self {
        let trimmed = dest.trim_start_matches('/').trim_end_matches('/').to_string();
        match &col.single_file {
            Some(_) if !dest.ends_with('/') && !dest_is_dir => Target { dir: String::new(), rename: Some(trimmed) },
            _ => Target { dir: trimmed, rename: None },
        }
    }

    fn rewrite<W: Write>(&self, src: &Path, w: W) -> io::Result<W> {
        let mut ar = tar::Archive::new(io::BufReader::new(fs::File::open(src)?));
        let mut b = tar::Builder::new(w);
        for e in ar.entries()? {
            let mut e = e?;
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let new = match &self.rename {
                Some(r) => r.clone(),
                None if self.dir.is_empty() => name,
                None => format!("{}/{name}", self.dir),
            };
            let mut h = e.header().clone();
            b.append_data(&mut h, &new, &mut e)?;
        }
        b.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_globs() {
        let i = crate::build::parser::instruction("COPY --chown=1:2 a* $D", 3).unwrap();
        let cfg: Map<String, Value> = serde_json::from_value(serde_json::json!({"WorkingDir": "/srv"})).unwrap();
        let s = CopySpec::parse(&i, '\\', &[("D".into(), "out/".into())], &cfg).unwrap();
        assert_eq!((s.sources.as_slice(), s.dest.as_str(), s.chown.as_deref()), (&["a*".to_string()][..], "/srv/out/", Some("1:2")));
        let i = crate::build::parser::instruction("ADD --from=x a b", 3).unwrap();
        assert!(CopySpec::parse(&i, '\\', &[], &cfg).is_err());
        let d = tempfile::tempdir().unwrap();
        for f in ["a1", "a2", "b1", "sub/a3"] {
            fs::create_dir_all(d.path().join(f).parent().unwrap()).unwrap();
            fs::write(d.path().join(f), f).unwrap();
        }
        let got = glob_context(d.path(), "a*").unwrap();
        assert_eq!(got, [PathBuf::from("a1"), PathBuf::from("a2")]);
        assert_eq!(glob_context(d.path(), "*/a?").unwrap(), [PathBuf::from("sub/a3")]);
    }
}
