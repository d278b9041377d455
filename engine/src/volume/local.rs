//! The `local` driver on disk: `<root>/<name>/_data` (what containers mount) and
//! `<root>/<name>/volume.json` (metadata).
use super::{io_err, Volume, VolumeError};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Creates `dir/_data` and writes the metadata atomically.
pub fn create(dir: &Path, v: &Volume) -> Result<(), VolumeError> {
    let data = dir.join("_data");
    std::fs::create_dir_all(&data).map_err(io_err(&data))?;
    // As dockerd: the volume dir is not listable by others, `_data` is.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o701)).map_err(io_err(dir))?;
    let meta = dir.join("volume.json");
    crate::fsutil::write_json(&meta, v).map_err(io_err(&meta))
}

pub fn remove(dir: &Path) -> Result<(), VolumeError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Bytes of regular files below `data`.
pub fn size(data: &Path) -> u64 {
    crate::image::unpack::du(data)
}

/// True when `data` has no entries (a volume that gets the image's content on first mount).
pub fn is_empty(data: &Path) -> bool {
    std::fs::read_dir(data).map(|mut d| d.next().is_none()).unwrap_or(false)
}

/// The directory's modification time as RFC 3339 (for volumes found without metadata).
pub fn created_at(dir: &Path) -> String {
    let t =
        std::fs::metadata(dir).and_then(|m| m.modified()).map(chrono::DateTime::<chrono::Utc>::from).unwrap_or_else(|_| chrono::Utc::now());
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn layout() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("v1");
        let v = Volume {
            name: "v1".into(),
            driver: "local".into(),
            labels: Default::default(),
            options: Default::default(),
            created_at: created_at(d.path()),
        };
        create(&dir, &v).unwrap();
        assert!(is_empty(&dir.join("_data")));
        std::fs::write(dir.join("_data/f"), b"12345").unwrap();
        assert!(!is_empty(&dir.join("_data")));
        assert_eq!(size(&dir.join("_data")), 5);
        remove(&dir).unwrap();
        remove(&dir).unwrap();
        assert!(!dir.exists());
    }
}
