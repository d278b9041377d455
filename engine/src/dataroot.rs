//! The modes of the engine's directories, as dockerd keeps them: the data root 0710 and what
//! holds containers, images, volumes and networks 0700 under it; the exec root (bundles with
//! each container's environment, shim sockets, network namespaces) 0700; container records and
//! logs 0600. Set at every start, so an existing root made by an older engine is fixed too. A
//! local user can then neither list the data root, nor read a container's environment or logs,
//! nor run setuid files of a container's root file system.
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub const ROOT_MODE: u32 = 0o710;
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Container records (`config.v2.json`, with the environment) and json-file logs.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Directories right under the data root, each private.
pub const PRIVATE_DIRS: &[&str] = &["containers", "image", "volumes", "network", "tmp"];

fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() || meta.permissions().mode() & 0o7777 == mode {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Is `name` (in a container's directory) its record or one of its logs?
fn private_file(name: &str) -> bool {
    name == "config.v2.json" || name.contains("-json.log")
}

/// Creates the data root and exec root when missing and sets their modes, and those of the
/// records and logs already there.
pub fn secure(data_root: &Path, exec_root: &Path) -> io::Result<()> {
    for (dir, mode) in [(data_root, ROOT_MODE), (exec_root, PRIVATE_DIR_MODE)] {
        fs::create_dir_all(dir)?;
        chmod(dir, mode)?;
    }
    for name in PRIVATE_DIRS {
        let dir = data_root.join(name);
        if *name != "tmp" {
            fs::create_dir_all(&dir)?;
        }
        match chmod(&dir, PRIVATE_DIR_MODE) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            r => r?,
        }
    }
    for ctr in fs::read_dir(data_root.join("containers"))?.flatten() {
        let Ok(files) = fs::read_dir(ctr.path()) else { continue };
        for f in files.flatten() {
            if f.file_type().is_ok_and(|t| t.is_file()) && private_file(&f.file_name().to_string_lossy()) {
                chmod(&f.path(), PRIVATE_FILE_MODE)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn fixes_an_existing_root() {
        let d = tempfile::tempdir().unwrap();
        let (root, exec) = (d.path().join("data"), d.path().join("exec"));
        let ctr = root.join("containers/abc");
        fs::create_dir_all(&ctr).unwrap();
        fs::create_dir_all(root.join("tmp")).unwrap();
        for f in ["config.v2.json", "abc-json.log", "abc-json.log.1", "hosts"] {
            fs::write(ctr.join(f), "x").unwrap();
            fs::set_permissions(ctr.join(f), fs::Permissions::from_mode(0o644)).unwrap();
        }
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        secure(&root, &exec).unwrap();
        assert_eq!((mode(&root), mode(&exec)), (0o710, 0o700));
        for dir in PRIVATE_DIRS {
            assert_eq!(mode(&root.join(dir)), 0o700, "{dir}");
        }
        for f in ["config.v2.json", "abc-json.log", "abc-json.log.1"] {
            assert_eq!(mode(&ctr.join(f)), 0o600, "{f}");
        }
        // Bind-mounted into the container, read there by any user.
        assert_eq!(mode(&ctr.join("hosts")), 0o644);
    }
}
