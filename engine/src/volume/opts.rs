//! The local driver's options, as dockerd's: `type`, `device` and `o` (`docker volume create
//! -o type=tmpfs -o device=tmpfs -o o=size=10m`) make the volume a mount of `device` on its
//! `_data`, done when a container first uses it; `volume rm` unmounts it.
//! Unlike dockerd the mount then stays until the volume is removed (dockerd unmounts when the
//! last container using it stops), so a tmpfs volume keeps its content between containers.
use super::{io_err, VolumeError};
use fsutil::is_mount_point as is_mounted;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::collections::BTreeMap;
use std::path::Path;

/// dockerd's checks: only known keys, and `type`, `device` (and `o`) only together.
pub fn validate(name: &str, opts: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    for k in opts.keys() {
        if !["type", "device", "o"].contains(&k.as_str()) {
            return Err(VolumeError::Invalid(format!("create {name}: invalid option: \"{k}\"")));
        }
    }
    for (opt, required) in [("device", &["type"][..]), ("type", &["device"][..]), ("o", &["device", "type"][..])] {
        if opts.contains_key(opt) {
            if let Some(missing) = required.iter().find(|r| !opts.contains_key(**r)) {
                return Err(VolumeError::Invalid(format!("create {name}: missing required option: \"{missing}\"")));
            }
        }
    }
    Ok(())
}

/// `o` as mount(2) flags and the filesystem's own data (`size=10m`, `addr=...`).
pub fn parse_o(o: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = vec![];
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        let (set, clear) = match opt {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            other => {
                data.push(other);
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, data.join(","))
}

/// Mounts `device` on `data` as the options say, unless it is mounted already.
pub fn mount_on(data: &Path, opts: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    let (Some(typ), Some(device)) = (opts.get("type"), opts.get("device")) else { return Ok(()) };
    if is_mounted(data) {
        return Ok(());
    }
    std::fs::create_dir_all(data).map_err(io_err(data))?;
    let (flags, fs_data) = parse_o(opts.get("o").map(String::as_str).unwrap_or(""));
    let fstype = (typ != "none").then_some(typ.as_str());
    let fs_data = (!fs_data.is_empty()).then_some(fs_data.as_str());
    mount(Some(device.as_str()), data, fstype, flags, fs_data).map_err(|e| {
        VolumeError::Invalid(format!(
            "error while mounting volume '{}': failed to mount local volume: mount {device}:{}, flags: {:#x}, data: {}: {}",
            data.display(),
            data.display(),
            flags.bits(),
            fs_data.unwrap_or(""),
            e.desc()
        ))
    })
}

/// Unmounts what [`mount_on`] mounted (before the volume's directory is removed).
pub fn unmount(data: &Path) -> Result<(), VolumeError> {
    if is_mounted(data) {
        umount2(data, MntFlags::MNT_DETACH).map_err(|e| io_err(data)(std::io::Error::from(e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn validation_like_dockerd() {
        assert!(validate("v", &opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=10m")])).is_ok());
        assert!(validate("v", &opts(&[])).is_ok());
        let e = validate("v", &opts(&[("foo", "1")])).unwrap_err().to_string();
        assert_eq!(e, "create v: invalid option: \"foo\"");
        let e = validate("v", &opts(&[("type", "tmpfs")])).unwrap_err().to_string();
        assert_eq!(e, "create v: missing required option: \"device\"");
    }

    #[test]
    fn o_splits_flags_and_data() {
        let (f, d) = parse_o("size=10m,ro,uid=1000,nosuid");
        assert_eq!(f, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(d, "size=10m,uid=1000");
        assert_eq!(parse_o("bind").0, MsFlags::MS_BIND);
        assert_eq!(parse_o(""), (MsFlags::empty(), String::new()));
    }

    #[test]
    fn root_is_mounted() {
        assert!(is_mounted(Path::new("/")));
        assert!(!is_mounted(Path::new("/flotilla-no-such-mount")));
    }
}
