//! The build context: a tar (plain or gzip) unpacked into the build's own directory with the
//! layer unpacker's guards (no `..`, no writing through links), links that point outside the
//! context refused, and `.dockerignore` applied.
use super::ignore::Patterns;
use super::BuildError;
use crate::image::unpack::{self, UnpackOptions};
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Unpacks the context tar read from `r` into `dir` (an existing, empty directory).
pub fn unpack_context<R: Read>(r: R, dir: &Path) -> Result<(), BuildError> {
    unpack::unpack(r, dir, UnpackOptions::PLAIN).map_err(|e| match e {
        unpack::UnpackError::Refused { path, why } => BuildError::Invalid(format!("invalid build context: {path}: {why}")),
        other => BuildError::Invalid(format!("invalid build context: {other}")),
    })?;
    check_links(dir, dir)
}

/// Whether a request body is a plain Dockerfile rather than a (maybe compressed) tar: text
/// that is neither gzip nor has a tar header's `ustar` magic.
pub fn is_plain_dockerfile(path: &Path) -> Result<bool, BuildError> {
    let mut head = [0u8; 512];
    let mut f = fs::File::open(path).map_err(BuildError::io("opening", path))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).map_err(BuildError::io("reading", path))? {
            0 => break,
            k => n += k,
        }
    }
    let gzip = n >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    let tar = n >= 262 && &head[257..262] == b"ustar";
    let text = n > 0 && std::str::from_utf8(&head[..n]).is_ok_and(|t| !t.contains('\0'));
    Ok(!gzip && !tar && text)
}

/// Refuses symlinks that are absolute or climb out of the context.
fn check_links(root: &Path, dir: &Path) -> Result<(), BuildError> {
    for e in fs::read_dir(dir).map_err(BuildError::io("reading", dir))? {
        let e = e.map_err(BuildError::io("reading", dir))?;
        let p = e.path();
        let ft = e.file_type().map_err(BuildError::io("stat", &p))?;
        if ft.is_symlink() {
            let target = fs::read_link(&p).map_err(BuildError::io("reading link", &p))?;
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            if target.is_absolute() {
                return Err(BuildError::Invalid(format!(
                    "invalid build context: {}: absolute symlink to {} is not allowed",
                    rel.display(),
                    target.display()
                )));
            }
            let mut depth: i64 = rel.components().count() as i64 - 1;
            for c in target.components() {
                match c {
                    Component::ParentDir => depth -= 1,
                    Component::Normal(_) => depth += 1,
                    _ => {}
                }
                if depth < 0 {
                    return Err(BuildError::Invalid(format!(
                        "invalid build context: {}: symlink to {} points outside the context",
                        rel.display(),
                        target.display()
                    )));
                }
            }
        } else if ft.is_dir() {
            check_links(root, &p)?;
        }
    }
    Ok(())
}

/// A path inside the context named by a client (`dockerfile=`, COPY sources): cleaned,
/// relative, never above the root.
pub fn inside(rel: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => return None,
            _ => {}
        }
    }
    Some(out)
}

/// Reads the Dockerfile named `name` (default `Dockerfile`, or `dockerfile`).
pub fn read_dockerfile(dir: &Path, name: &str) -> Result<(String, Vec<u8>), BuildError> {
    let shown = if name.is_empty() { "Dockerfile" } else { name };
    let missing = || BuildError::Invalid(format!("Cannot locate specified Dockerfile: {shown}"));
    let rel = inside(shown).filter(|r| !r.as_os_str().is_empty()).ok_or_else(missing)?;
    let mut candidates = vec![rel.clone()];
    if name.is_empty() {
        candidates.push(PathBuf::from("dockerfile"));
    }
    for c in candidates {
        let p = dir.join(&c);
        let Ok(meta) = fs::symlink_metadata(&p) else { continue };
        if !meta.is_file() {
            return Err(BuildError::Invalid(format!("the Dockerfile ({shown}) must be a regular file")));
        }
        if meta.len() as usize > super::parser::MAX_DOCKERFILE {
            return Err(BuildError::Invalid(format!("{shown} is too large: {} bytes (the limit is 1 MiB)", meta.len())));
        }
        return Ok((shown.to_string(), fs::read(&p).map_err(BuildError::io("reading", &p))?));
    }
    Err(missing())
}

/// Removes what `.dockerignore` excludes (the file itself stays readable before this).
pub fn apply_dockerignore(dir: &Path) -> Result<(), BuildError> {
    let Ok(text) = fs::read_to_string(dir.join(".dockerignore")) else { return Ok(()) };
    let pats = Patterns::parse(&text);
    if pats.is_empty() {
        return Ok(());
    }
    prune(dir, Path::new(""), &pats)
}

fn prune(root: &Path, rel: &Path, pats: &Patterns) -> Result<(), BuildError> {
    let dir = root.join(rel);
    for e in fs::read_dir(&dir).map_err(BuildError::io("reading", &dir))? {
        let e = e.map_err(BuildError::io("reading", &dir))?;
        let child = rel.join(e.file_name());
        let excluded = pats.excludes(&child.to_string_lossy());
        let p = root.join(&child);
        let is_dir = e.file_type().map_err(BuildError::io("stat", &p))?.is_dir();
        if is_dir && (!excluded || pats.has_exceptions()) {
            prune(root, &child, pats)?;
            if excluded && fs::read_dir(&p).map_err(BuildError::io("reading", &p))?.next().is_none() {
                fs::remove_dir(&p).map_err(BuildError::io("removing", &p))?;
            }
        } else if excluded {
            if is_dir {
                fs::remove_dir_all(&p).map_err(BuildError::io("removing", &p))?;
            } else {
                fs::remove_file(&p).map_err(BuildError::io("removing", &p))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            if kind.is_symlink() || *kind == tar::EntryType::Link {
                h.set_size(0);
                h.set_link_name(data).unwrap();
                h.set_path(name).unwrap();
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            } else {
                h.set_size(data.len() as u64);
                // Written raw so that `../` survives (the tar crate refuses it in set_path).
                h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                h.set_cksum();
                b.append(&h, data.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn io_errors_name_the_op_and_path() {
        let e = is_plain_dockerfile(Path::new("/nonexistent-flotilla-ctx")).unwrap_err().to_string();
        assert!(e.starts_with("opening /nonexistent-flotilla-ctx: "), "{e}");
    }

    #[test]
    fn hostile_contexts_write_nothing_outside() {
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path().join("ctx");
        for (entries, want) in [
            (vec![("../escape", tar::EntryType::Regular, "x")], "'..'"),
            (vec![("abs", tar::EntryType::Symlink, "/etc")], "absolute symlink"),
            (vec![("up", tar::EntryType::Symlink, "../../x")], "outside the context"),
            (vec![("l", tar::EntryType::Symlink, "."), ("l/../../x", tar::EntryType::Regular, "x")], "'..'"),
        ] {
            fs::create_dir_all(&ctx).unwrap();
            let e = unpack_context(&tar_of(&entries)[..], &ctx).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            assert!(!d.path().join("escape").exists() && !d.path().join("x").exists());
            fs::remove_dir_all(&ctx).unwrap();
        }
        fs::create_dir_all(&ctx).unwrap();
        unpack_context(&tar_of(&[("a/b", tar::EntryType::Regular, "1"), ("a/l", tar::EntryType::Symlink, "../a/b")])[..], &ctx).unwrap();
        assert_eq!(fs::read_to_string(ctx.join("a/l")).unwrap(), "1");
    }

    #[test]
    fn plain_dockerfile_bodies() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("body");
        fs::write(&p, "FROM busybox\nRUN true\n").unwrap();
        assert!(is_plain_dockerfile(&p).unwrap());
        fs::write(&p, tar_of(&[("Dockerfile", tar::EntryType::Regular, "FROM x")])).unwrap();
        assert!(!is_plain_dockerfile(&p).unwrap());
    }

    #[test]
    fn dockerfile_lookup_and_ignore() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path();
        assert!(read_dockerfile(c, "").unwrap_err().to_string().contains("Cannot locate specified Dockerfile: Dockerfile"));
        fs::write(c.join("dockerfile"), "FROM x").unwrap();
        assert_eq!(read_dockerfile(c, "").unwrap().1, b"FROM x");
        assert!(read_dockerfile(c, "../../etc/passwd").is_err());
        fs::create_dir_all(c.join("logs/keep")).unwrap();
        fs::write(c.join("logs/a.log"), "").unwrap();
        fs::write(c.join("logs/keep/b.log"), "").unwrap();
        fs::write(c.join("secret.txt"), "").unwrap();
        fs::write(c.join("app.txt"), "").unwrap();
        fs::write(c.join(".dockerignore"), "# comment\nlogs\n!logs/keep\n*.txt\n!app.txt\n").unwrap();
        apply_dockerignore(c).unwrap();
        assert!(!c.join("logs/a.log").exists() && c.join("logs/keep/b.log").exists());
        assert!(!c.join("secret.txt").exists() && c.join("app.txt").exists());
    }
}
