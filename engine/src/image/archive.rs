//! `docker load` (docker-archive with manifest.json, or an OCI layout with index.json) and
//! `docker save` (docker-archive as dockerd 20.10 writes it).
use super::manifest::{select_platform, Manifest};
use super::reference::Reference;
use super::store::digest_of;
use super::unpack::{self, UnpackOptions};
use super::{hex_of, ImageError, ImageService, IoContext};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize, Deserialize)]
pub struct ArchiveEntry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

/// A path inside an unpacked archive, refusing anything that leaves it.
fn inside(root: &Path, rel: &str) -> Result<PathBuf, ImageError> {
    let comps = unpack::clean_components(rel.as_bytes()).map_err(|_| ImageError::Invalid(format!("invalid path in archive: {rel}")))?;
    let mut p = root.to_path_buf();
    for c in comps {
        p.push(String::from_utf8_lossy(c).as_ref());
    }
    let real = p.canonicalize().map_err(|e| ImageError::Invalid(format!("archive is missing {rel}: {e}")))?;
    let base = root.canonicalize().at("resolving", root)?;
    if !real.starts_with(&base) {
        return Err(ImageError::Invalid(format!("invalid path in archive: {rel}")));
    }
    Ok(real)
}

/// One image found in an archive.
struct Found {
    config: PathBuf,
    layers: Vec<PathBuf>,
    tags: Vec<String>,
}

fn docker_archive(root: &Path) -> Result<Vec<Found>, ImageError> {
    let manifest = inside(root, "manifest.json")?;
    let data = fs::read(&manifest).at("reading", &manifest)?;
    let entries: Vec<ArchiveEntry> =
        serde_json::from_slice(&data).map_err(|e| ImageError::Invalid(format!("invalid manifest.json: {e}")))?;
    entries
        .into_iter()
        .map(|e| {
            Ok(Found {
                config: inside(root, &e.config)?,
                layers: e.layers.iter().map(|l| inside(root, l)).collect::<Result<_, _>>()?,
                tags: e.repo_tags.unwrap_or_default(),
            })
        })
        .collect()
}

fn oci_layout(root: &Path) -> Result<Vec<Found>, ImageError> {
    let blob = |d: &str| inside(root, &format!("blobs/sha256/{}", hex_of(d)));
    let index = inside(root, "index.json")?;
    let index = fs::read(&index).at("reading", &index)?;
    let Manifest::Index { manifests } = Manifest::parse(&index, Some(super::manifest::OCI_INDEX))? else {
        return Err(ImageError::Invalid("index.json is not an index".into()));
    };
    let mut out = Vec::new();
    for desc in &manifests {
        let name = desc.annotations.as_ref().and_then(|a| a.get("io.containerd.image.name").cloned());
        let path = blob(&desc.digest)?;
        let mut body = fs::read(&path).at("reading", &path)?;
        let mut m = Manifest::parse(&body, Some(&desc.media_type))?;
        if let Manifest::Index { manifests: inner } = &m {
            let pick = select_platform(inner)?.digest.clone();
            let path = blob(&pick)?;
            body = fs::read(&path).at("reading", &path)?;
            m = Manifest::parse(&body, None)?;
        }
        let Manifest::Image { config, layers } = m else {
            return Err(ImageError::Invalid("nested index in OCI layout".into()));
        };
        out.push(Found {
            config: blob(&config.digest)?,
            layers: layers.iter().map(|l| blob(&l.digest)).collect::<Result<_, _>>()?,
            tags: name.into_iter().collect(),
        });
    }
    Ok(out)
}

impl ImageService {
    /// Loads a spooled archive (blocking). Returns the lines dockerd prints.
    pub fn load_archive(&self, archive: &Path) -> Result<Vec<String>, ImageError> {
        let writer = self.writer();
        let work = self.tmp_path("load");
        fs::create_dir_all(&work).at("creating", &work)?;
        let res = self.load_unpacked(archive, &work);
        let _ = fs::remove_dir_all(&work);
        if res.is_err() {
            writer.failed();
        }
        res
    }

    fn load_unpacked(&self, archive: &Path, work: &Path) -> Result<Vec<String>, ImageError> {
        unpack::unpack(fs::File::open(archive).at("opening", archive)?, work, UnpackOptions::PLAIN)?;
        let found = if work.join("manifest.json").exists() {
            docker_archive(work)?
        } else if work.join("index.json").exists() {
            oci_layout(work)?
        } else {
            return Err(ImageError::Invalid(
                "invalid archive: neither manifest.json nor index.json found (is this a `docker save` tarball?)".into(),
            ));
        };
        let mut lines = Vec::new();
        for f in found {
            let config_bytes = fs::read(&f.config).at("reading", &f.config)?;
            let cfg = super::config::ImageConfigFile::parse(&config_bytes)?;
            if cfg.rootfs.diff_ids.len() != f.layers.len() {
                return Err(ImageError::Invalid(format!(
                    "invalid manifest, layers length mismatch: expected {}, got {}",
                    cfg.rootfs.diff_ids.len(),
                    f.layers.len()
                )));
            }
            for (path, diff_id) in f.layers.iter().zip(&cfg.rootfs.diff_ids) {
                if self.has_layer(diff_id) {
                    continue;
                }
                let (tmp, digest, _) = self.spool(fs::File::open(path).at("opening", path)?)?;
                if self.blob_path(&digest).exists() {
                    let _ = fs::remove_file(&tmp);
                } else {
                    self.adopt_blob(&tmp, &digest)?;
                }
                self.register_layer(&digest, Some(diff_id), &mut |_| {})?;
            }
            let id = self.commit_image(&config_bytes, None)?;
            if f.tags.is_empty() {
                lines.push(format!("Loaded image ID: {id}\n"));
            }
            for t in &f.tags {
                let r = Reference::parse_tagged(t)?;
                if let Some(old) = self.set_ref(&r, &id)? {
                    lines.push(format!("The image {} already exists, renaming the old one with ID {old} to empty string\n", r.familiar()));
                }
                lines.push(format!("Loaded image: {}\n", r.familiar()));
            }
        }
        Ok(lines)
    }

    /// Which images (and with which tags) `docker save NAMES` writes. Names without a tag
    /// take every tag of that repository, as dockerd does.
    pub fn save_plan(&self, names: &[String]) -> Result<Vec<(String, Vec<Reference>)>, ImageError> {
        let mut plan: Vec<(String, Vec<Reference>)> = Vec::new();
        let mut add = |id: String, r: Option<Reference>| {
            let i = match plan.iter().position(|(x, _)| *x == id) {
                Some(i) => i,
                None => {
                    plan.push((id, vec![]));
                    plan.len() - 1
                }
            };
            if let Some(r) = r {
                if !plan[i].1.contains(&r) {
                    plan[i].1.push(r);
                }
            }
        };
        let st = self.lock();
        for n in names {
            let parsed = Reference::parse(n).ok();
            if let Some(r) = parsed.as_ref().filter(|r| r.tag.is_none() && r.digest.is_none()) {
                let name = r.name();
                let tagged: Vec<(Reference, String)> = st
                    .refs
                    .iter()
                    .filter_map(|(k, v)| Reference::parse(k).ok().map(|rr| (rr, v.clone())))
                    .filter(|(rr, _)| rr.name() == name && rr.tag.is_some())
                    .collect();
                if !tagged.is_empty() {
                    for (rr, id) in tagged {
                        add(id, Some(rr));
                    }
                    continue;
                }
            }
            let id = super::lookup(&st, n)?;
            let tag =
                parsed.and_then(|_| Reference::parse_tagged(n).ok()).filter(|r| !r.is_digest() && st.refs.get(&r.to_string()) == Some(&id));
            add(id, tag);
        }
        Ok(plan)
    }

    /// Writes a docker-archive of `plan` to `out` (blocking).
    pub fn write_archive<W: Write>(&self, plan: &[(String, Vec<Reference>)], out: W) -> Result<(), ImageError> {
        let mut tb = tar::Builder::new(out);
        let mut manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut written = std::collections::HashSet::new();
        for (id, tags) in plan {
            let (config_bytes, diff_ids, created) = {
                let st = self.lock();
                let img = st.images.get(id).ok_or_else(|| ImageError::NotFound(id.clone()))?;
                let config = self.blob_path(id);
                (fs::read(&config).at("reading", &config)?, img.record.diff_ids.clone(), img.config.created.clone().unwrap_or_default())
            };
            let mtime = chrono::DateTime::parse_from_rfc3339(&created).map(|t| t.timestamp().max(0) as u64).unwrap_or(0);
            let name = format!("{}.json", hex_of(id));
            append_file(&mut tb, &name, &config_bytes, mtime).at(WRITING, Path::new(&name))?;
            let mut layers = Vec::new();
            let mut chain = String::new();
            let mut parent = String::new();
            for d in &diff_ids {
                chain = if chain.is_empty() { d.clone() } else { digest_of(format!("{chain} {d}").as_bytes()) };
                let dir = hex_of(&chain).to_string();
                layers.push(format!("{dir}/layer.tar"));
                if written.insert(dir.clone()) {
                    let meta = self.lock().layers.get(d).cloned().ok_or_else(|| ImageError::NotFound(format!("layer {d}")))?;
                    append_dir(&mut tb, &dir, mtime).at(WRITING, Path::new(&dir))?;
                    append_file(&mut tb, &format!("{dir}/VERSION"), b"1.0", mtime).at(WRITING, &Path::new(&dir).join("VERSION"))?;
                    let mut v1 = json!({"id": dir, "created": created, "container_config": {"Cmd": null}});
                    if !parent.is_empty() {
                        v1["parent"] = json!(parent);
                    }
                    append_file(&mut tb, &format!("{dir}/json"), v1.to_string().as_bytes(), mtime)
                        .at(WRITING, &Path::new(&dir).join("json"))?;
                    let blob_path = self.blob_path(&meta.blob);
                    let blob = fs::File::open(&blob_path).at("opening", &blob_path)?;
                    let entry = Path::new(&dir).join("layer.tar");
                    let reader = unpack::decompressed(io::BufReader::new(blob))?;
                    let mut h = tar::Header::new_gnu();
                    h.set_path(&entry).at(WRITING, &entry)?;
                    h.set_size(meta.tar_size);
                    h.set_mode(0o644);
                    h.set_mtime(mtime);
                    h.set_cksum();
                    tb.append(&h, reader.take(meta.tar_size)).at(WRITING, &entry)?;
                }
                parent = dir;
            }
            for r in tags {
                if let Some(t) = &r.tag {
                    repositories.entry(r.familiar_name()).or_default().insert(t.clone(), parent.clone());
                }
            }
            manifest.push(ArchiveEntry {
                config: format!("{}.json", hex_of(id)),
                repo_tags: (!tags.is_empty()).then(|| tags.iter().map(|r| r.familiar()).collect()),
                layers,
            });
        }
        let m = serde_json::to_vec(&manifest).map_err(|e| ImageError::Invalid(e.to_string()))?;
        append_file(&mut tb, "manifest.json", &m, 0).at(WRITING, Path::new("manifest.json"))?;
        if !repositories.is_empty() {
            let r = serde_json::to_vec(&repositories).map_err(|e| ImageError::Invalid(e.to_string()))?;
            append_file(&mut tb, "repositories", &r, 0).at(WRITING, Path::new("repositories"))?;
        }
        let last = if repositories.is_empty() { "manifest.json" } else { "repositories" };
        tb.into_inner().and_then(|mut w| w.flush()).at("finishing the image archive after", Path::new(last))?;
        Ok(())
    }
}

/// The operation of a save's io errors; the path is the entry inside the archive.
const WRITING: &str = "writing the image archive entry";

fn append_file<W: Write>(tb: &mut tar::Builder<W>, path: &str, data: &[u8], mtime: u64) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_path(path)?;
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_cksum();
    tb.append(&h, data)
}

fn append_dir<W: Write>(tb: &mut tar::Builder<W>, path: &str, mtime: u64) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_path(format!("{path}/"))?;
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(mtime);
    h.set_cksum();
    tb.append(&h, io::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn save_load_roundtrip_keeps_id() {
        let d = tempfile::tempdir().unwrap();
        let svc = Arc::new(ImageService::open(d.path(), &[], Default::default()).unwrap());
        let tar = crate::image::store::tests::layer_tar(&[("a", b"1"), ("b/c", b"22")]);
        let blob = svc.put_blob(&tar, None).unwrap();
        let m = svc.register_layer(&blob, None, &mut |_| {}).unwrap();
        let cfg = serde_json::to_vec(&json!({"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
            "rootfs":{"type":"layers","diff_ids":[m.diff_id]}}))
        .unwrap();
        let id = svc.commit_image(&cfg, None).unwrap();
        svc.set_ref(&Reference::parse_tagged("rt:one").unwrap(), &id).unwrap();
        svc.set_ref(&Reference::parse_tagged("rt:two").unwrap(), &id).unwrap();
        let plan = svc.save_plan(&["rt".into()]).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].1.len(), 2);
        let mut out = Vec::new();
        svc.write_archive(&plan, &mut out).unwrap();

        let d2 = tempfile::tempdir().unwrap();
        let svc2 = Arc::new(ImageService::open(d2.path(), &[], Default::default()).unwrap());
        let p = d2.path().join("a.tar");
        fs::write(&p, &out).unwrap();
        let lines = svc2.load_archive(&p).unwrap();
        assert_eq!(lines, vec!["Loaded image: rt:one\n", "Loaded image: rt:two\n"]);
        assert_eq!(svc2.resolve_id("rt:two").unwrap(), id);
        assert_eq!(fs::read(svc2.resolve("rt:one").unwrap().layer_dirs[0].join("b/c")).unwrap(), b"22");
        // untagged save by id
        let plan = svc.save_plan(&[hex_of(&id)[..12].to_string()]).unwrap();
        assert!(plan[0].1.is_empty());
        assert!(svc.save_plan(&["nope".into()]).is_err());
    }

    #[test]
    fn loads_oci_layout() {
        let d = tempfile::tempdir().unwrap();
        let svc = Arc::new(ImageService::open(d.path(), &[], Default::default()).unwrap());
        let tar = crate::image::store::tests::layer_tar(&[("etc/os", b"oci")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let cfg = serde_json::to_vec(&json!({"architecture":"amd64","os":"linux",
            "rootfs":{"type":"layers","diff_ids":[digest_of(&tar)]}}))
        .unwrap();
        let man = serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":digest_of(&cfg),"size":cfg.len()},
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":digest_of(&gz),"size":gz.len()}]}))
        .unwrap();
        let index = serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
            "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":digest_of(&man),"size":man.len(),
            "annotations":{"io.containerd.image.name":"docker.io/library/ocitest:v1","org.opencontainers.image.ref.name":"v1"}}]}))
        .unwrap();
        let mut tb = tar::Builder::new(Vec::new());
        append_file(&mut tb, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0).unwrap();
        append_file(&mut tb, "index.json", &index, 0).unwrap();
        for b in [&cfg, &man, &gz] {
            append_file(&mut tb, &format!("blobs/sha256/{}", hex_of(&digest_of(b))), b, 0).unwrap();
        }
        let p = d.path().join("oci.tar");
        fs::write(&p, tb.into_inner().unwrap()).unwrap();
        assert_eq!(svc.load_archive(&p).unwrap(), vec!["Loaded image: ocitest:v1\n"]);
        let r = svc.resolve("ocitest:v1").unwrap();
        assert_eq!(r.id, digest_of(&cfg));
        assert_eq!(fs::read(r.layer_dirs[0].join("etc/os")).unwrap(), b"oci");
    }

    #[test]
    fn failed_load_leaves_no_garbage() {
        let d = tempfile::tempdir().unwrap();
        let svc = Arc::new(ImageService::open(d.path(), &[], Default::default()).unwrap());
        let tar = crate::image::store::tests::layer_tar(&[("f", b"x")]);
        let cfg = br#"{"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#;
        let mut tb = tar::Builder::new(Vec::new());
        append_file(&mut tb, "manifest.json", br#"[{"Config":"c.json","RepoTags":["x:y"],"Layers":["l/layer.tar"]}]"#, 0).unwrap();
        append_file(&mut tb, "c.json", cfg, 0).unwrap();
        append_file(&mut tb, "l/layer.tar", &tar, 0).unwrap();
        let p = d.path().join("bad.tar");
        fs::write(&p, tb.into_inner().unwrap()).unwrap();
        let e = svc.load_archive(&p).unwrap_err().to_string();
        assert!(e.contains("diff id mismatch"), "{e}");
        assert_eq!(fs::read_dir(svc.root().join("blobs/sha256")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(svc.root().join("layers")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(svc.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn refuses_archive_paths_outside() {
        let d = tempfile::tempdir().unwrap();
        let svc = Arc::new(ImageService::open(d.path(), &[], Default::default()).unwrap());
        let mut tb = tar::Builder::new(Vec::new());
        let m = br#"[{"Config":"../../etc/passwd","RepoTags":null,"Layers":[]}]"#;
        append_file(&mut tb, "manifest.json", m, 0).unwrap();
        let p = d.path().join("x.tar");
        fs::write(&p, tb.into_inner().unwrap()).unwrap();
        assert!(svc.load_archive(&p).is_err());
    }
}
