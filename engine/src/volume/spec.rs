//! Mount specifications of a container (pure parsing, Docker's rules and error texts):
//! `-v src:dst[:mode]` (`HostConfig.Binds`), `--mount` (`HostConfig.Mounts`), `--tmpfs`
//! (`HostConfig.Tmpfs`), `--volumes-from` and image `VOLUME`s all become [`MountPoint`]s.
use bollard_stubs::models::{Mount, MountType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why one `-v`, `--mount`, `--tmpfs` or `--volumes-from` entry does not parse (Docker's texts).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("invalid volume specification: '{0}'")]
    Malformed(String),
    /// A `-v`/`--tmpfs` entry (`raw`) whose destination is refused.
    #[error("invalid volume specification: '{raw}': invalid mount config for type \"{typ}\": {reason}")]
    Bind { raw: String, typ: String, reason: ConfigError },
    /// A `--mount` entry of type `typ` that is refused.
    #[error("invalid mount config for type \"{typ}\": {reason}")]
    Mount { typ: String, reason: ConfigError },
    #[error("invalid mode: {0}")]
    Mode(String),
    #[error(transparent)]
    Name(#[from] super::VolumeError),
    #[error("error looking up volume plugin {0}: plugin \"{0}\" not found")]
    NoPlugin(String),
    #[error("mount type \"{0}\" is not supported by this engine")]
    UnsupportedType(String),
    /// A `--mount` option this engine does not apply.
    #[error("mount option {0} is not supported by this engine")]
    Unsupported(String),
}

/// What is wrong with one field of a mount (the tail of [`SpecError::Bind`] and [`SpecError::Mount`]).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("field Target must not be empty")]
    EmptyTarget,
    #[error("field Source must not be empty")]
    EmptySource,
    #[error("field Source must be empty")]
    SourceNotAllowed,
    #[error("invalid mount path: '{0}' mount path must be absolute")]
    RelativePath(String),
    #[error("invalid specification: destination can't be '/'")]
    RootDestination,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Volume,
    Bind,
    Tmpfs,
}

impl MountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Volume => "volume",
            MountKind::Bind => "bind",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

/// One mount of a container, kept in its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    pub kind: MountKind,
    /// Volume name; empty for binds, tmpfs and volumes still to be created anonymously.
    pub name: String,
    /// Host path: the bind source or the volume's `_data` (empty for tmpfs).
    pub source: PathBuf,
    pub destination: String,
    /// `local` for volumes.
    pub driver: String,
    /// The mode as given (`ro`, `z`, `nocopy`...), as inspect shows it.
    pub mode: String,
    pub rw: bool,
    pub propagation: String,
    /// Created for this container (`-v /path`, image VOLUME, `--mount` without source):
    /// `rm -v` and `--rm` remove it.
    #[serde(default)]
    pub anonymous: bool,
    /// Copy the image's content at `destination` into the volume when the volume is empty.
    #[serde(default)]
    pub copy_data: bool,
    /// tmpfs mount options (`size=...`, `mode=...`).
    #[serde(default)]
    pub tmpfs_options: Vec<String>,
    /// Labels for a volume `--mount` creates.
    #[serde(default)]
    pub volume_labels: BTreeMap<String, String>,
    /// `--tmpfs` mounts are not listed in `Mounts` (as dockerd).
    #[serde(default)]
    pub hidden: bool,
    /// `-v` binds create a missing host directory; `--mount type=bind` refuses it.
    #[serde(default)]
    pub create_source: bool,
}

impl MountPoint {
    fn new(kind: MountKind, destination: String) -> Self {
        MountPoint {
            kind,
            name: String::new(),
            source: PathBuf::new(),
            destination,
            driver: if kind == MountKind::Volume { "local".into() } else { String::new() },
            mode: String::new(),
            rw: true,
            propagation: if kind == MountKind::Bind { "rprivate".into() } else { String::new() },
            anonymous: false,
            copy_data: kind == MountKind::Volume,
            tmpfs_options: vec![],
            volume_labels: BTreeMap::new(),
            hidden: false,
            create_source: false,
        }
    }

    /// A volume mount (anonymous when `name` is empty), as an image `VOLUME` gives.
    pub fn anonymous_volume(destination: &str) -> Self {
        let mut m = MountPoint::new(MountKind::Volume, clean_path(destination));
        m.anonymous = true;
        m
    }

    /// The `Mounts` entry of inspect and ps.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "Type": self.kind.as_str(),
            "Source": self.source,
            "Destination": self.destination,
            "Mode": self.mode,
            "RW": self.rw,
            "Propagation": self.propagation,
        });
        if self.kind == MountKind::Volume {
            v["Name"] = self.name.clone().into();
            v["Driver"] = self.driver.clone().into();
        }
        v
    }
}

const PROPAGATIONS: &[&str] = &["shared", "rshared", "slave", "rslave", "private", "rprivate"];

/// A bind's propagation this engine applies: private and slave ones. A shared one needs the
/// container's whole mount tree shared with the host (dockerd switches the rootfs propagation for
/// it), which this engine does not do: refused rather than applied half-way.
fn check_propagation(p: &str) -> Result<(), SpecError> {
    if matches!(p, "shared" | "rshared") {
        return Err(SpecError::Unsupported(format!("bind propagation {p} (private and slave ones are)")));
    }
    Ok(())
}

fn valid_mode(mode: &str) -> bool {
    let mut rw = 0;
    let mut label = 0;
    let mut prop = 0;
    let mut copy = 0;
    for m in mode.split(',') {
        match m {
            "ro" | "rw" => rw += 1,
            "z" | "Z" => label += 1,
            "nocopy" => copy += 1,
            "consistent" | "cached" | "delegated" => {}
            p if PROPAGATIONS.contains(&p) => prop += 1,
            _ => return false,
        }
    }
    rw <= 1 && label <= 1 && prop <= 1 && copy <= 1
}

/// Go's `path.Clean` for absolute container paths.
pub fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = vec![];
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

fn check_destination(raw: &str, typ: &str, dst: &str) -> Result<String, SpecError> {
    let refuse = |reason| SpecError::Bind { raw: raw.to_string(), typ: typ.to_string(), reason };
    if !dst.starts_with('/') {
        return Err(refuse(ConfigError::RelativePath(dst.to_string())));
    }
    let d = clean_path(dst);
    if d == "/" {
        return Err(refuse(ConfigError::RootDestination));
    }
    Ok(d)
}

/// One `-v` / `HostConfig.Binds` entry: `dst`, `dst:mode`, `src:dst` or `src:dst:mode`.
/// An absolute `src` is a bind mount, any other a named volume.
pub fn parse_bind(raw: &str) -> Result<MountPoint, SpecError> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [a, b] if valid_mode(b) && !b.starts_with('/') => ("", *a, *b),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(SpecError::Malformed(raw.to_string())),
    };
    if dst.is_empty() {
        return Err(SpecError::Malformed(raw.to_string()));
    }
    if !mode.is_empty() && !valid_mode(mode) {
        return Err(SpecError::Mode(mode.to_string()));
    }
    let kind = if src.starts_with('/') { MountKind::Bind } else { MountKind::Volume };
    let dst = check_destination(raw, kind.as_str(), dst)?;
    let mut m = MountPoint::new(kind, dst);
    let opts: Vec<&str> = mode.split(',').filter(|s| !s.is_empty()).collect();
    m.rw = !opts.contains(&"ro");
    m.mode = mode.to_string();
    if let Some(p) = opts.iter().find(|o| PROPAGATIONS.contains(o)) {
        if kind == MountKind::Bind {
            check_propagation(p)?;
            m.propagation = p.to_string();
        }
    }
    match kind {
        MountKind::Bind => {
            m.source = PathBuf::from(clean_path(src));
            m.create_source = true;
        }
        _ => {
            m.copy_data = !opts.contains(&"nocopy");
            if src.is_empty() {
                m.anonymous = true;
            } else {
                super::check_name(src)?;
                m.name = src.to_string();
                if mode.is_empty() {
                    m.mode = "z".into();
                }
            }
        }
    }
    Ok(m)
}

/// One `--mount` / `HostConfig.Mounts` entry.
pub fn parse_mount(spec: &Mount) -> Result<MountPoint, SpecError> {
    let typ = spec.typ.unwrap_or(MountType::VOLUME);
    let refuse = |reason| SpecError::Mount { typ: typ.to_string(), reason };
    let target = spec.target.clone().unwrap_or_default();
    if target.is_empty() {
        return Err(refuse(ConfigError::EmptyTarget));
    }
    if !target.starts_with('/') {
        return Err(refuse(ConfigError::RelativePath(target)));
    }
    let dst = clean_path(&target);
    if dst == "/" {
        return Err(refuse(ConfigError::RootDestination));
    }
    let source = spec.source.clone().unwrap_or_default();
    let ro = spec.read_only.unwrap_or(false);
    let mut m = match typ {
        MountType::VOLUME => {
            let mut m = MountPoint::new(MountKind::Volume, dst);
            if source.is_empty() {
                m.anonymous = true;
            } else {
                super::check_name(&source)?;
                m.name = source;
            }
            m.mode = "z".into();
            if let Some(o) = &spec.volume_options {
                m.copy_data = !o.no_copy.unwrap_or(false);
                m.volume_labels = o.labels.clone().unwrap_or_default().into_iter().collect();
                if let Some(d) = o.driver_config.as_ref().and_then(|d| d.name.clone()).filter(|d| !d.is_empty() && d != "local") {
                    return Err(SpecError::NoPlugin(d));
                }
                if let Some((k, _)) = o.driver_config.as_ref().and_then(|d| d.options.as_ref()).and_then(|o| o.iter().next()) {
                    return Err(SpecError::Unsupported(format!(
                        "volume-opt {k:?} (create the volume with `docker volume create --opt` first, then mount it by name)"
                    )));
                }
            }
            m
        }
        MountType::BIND => {
            if source.is_empty() {
                return Err(refuse(ConfigError::EmptySource));
            }
            if !source.starts_with('/') {
                return Err(refuse(ConfigError::RelativePath(source)));
            }
            if spec.bind_options.as_ref().and_then(|b| b.non_recursive) == Some(true) {
                return Err(SpecError::Unsupported("bind-nonrecursive".into()));
            }
            let mut m = MountPoint::new(MountKind::Bind, dst);
            m.source = PathBuf::from(clean_path(&source));
            if let Some(p) = spec.bind_options.as_ref().and_then(|b| b.propagation).map(|p| p.to_string()).filter(|p| !p.is_empty()) {
                check_propagation(&p)?;
                m.propagation = p;
            }
            m
        }
        MountType::TMPFS => {
            if !source.is_empty() {
                return Err(refuse(ConfigError::SourceNotAllowed));
            }
            let mut m = MountPoint::new(MountKind::Tmpfs, dst);
            if let Some(o) = &spec.tmpfs_options {
                if let Some(size) = o.size_bytes.filter(|s| *s > 0) {
                    m.tmpfs_options.push(format!("size={size}"));
                }
                if let Some(mode) = o.mode.filter(|m| *m != 0) {
                    m.tmpfs_options.push(format!("mode={mode:o}"));
                }
            }
            m
        }
        other => return Err(SpecError::UnsupportedType(other.to_string())),
    };
    m.rw = !ro;
    Ok(m)
}

/// One `--tmpfs dst[:opts]` entry (`HostConfig.Tmpfs`).
pub fn parse_tmpfs(dst: &str, opts: &str) -> Result<MountPoint, SpecError> {
    let raw = if opts.is_empty() { dst.to_string() } else { format!("{dst}:{opts}") };
    let dst = check_destination(&raw, "tmpfs", dst)?;
    let mut m = MountPoint::new(MountKind::Tmpfs, dst);
    m.hidden = true;
    for o in opts.split(',').filter(|s| !s.is_empty()) {
        match o {
            "ro" => m.rw = false,
            "rw" => m.rw = true,
            o => m.tmpfs_options.push(o.to_string()),
        }
    }
    Ok(m)
}

/// `--volumes-from name[:ro|:rw]`: the container and the access override.
pub fn parse_volumes_from(raw: &str) -> Result<(String, Option<bool>), SpecError> {
    match raw.split_once(':') {
        None => Ok((raw.to_string(), None)),
        Some((c, "rw")) => Ok((c.to_string(), Some(true))),
        Some((c, "ro")) => Ok((c.to_string(), Some(false))),
        Some((_, m)) => Err(SpecError::Mode(m.to_string())),
    }
}

/// The mount options the runtime uses for a tmpfs (dockerd's defaults first).
pub fn tmpfs_mount_options(m: &MountPoint) -> Vec<String> {
    let mut o: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
    if !m.rw {
        o.push("ro".into());
    }
    for x in &m.tmpfs_options {
        match x.as_str() {
            "exec" => o.retain(|y| y != "noexec"),
            "suid" => o.retain(|y| y != "nosuid"),
            "dev" => o.retain(|y| y != "nodev"),
            _ => o.push(x.clone()),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn binds() {
        let m = parse_bind("data:/var/lib/x").unwrap();
        assert_eq!(
            (m.kind, m.name.as_str(), m.destination.as_str(), m.mode.as_str(), m.rw),
            (MountKind::Volume, "data", "/var/lib/x", "z", true)
        );
        assert!(m.copy_data && !m.anonymous);
        let m = parse_bind("/host/dir/:/h:ro").unwrap();
        assert_eq!(
            (m.kind, m.source.to_str().unwrap(), m.destination.as_str(), m.rw, m.propagation.as_str()),
            (MountKind::Bind, "/host/dir", "/h", false, "rprivate")
        );
        let m = parse_bind("/anon").unwrap();
        assert!(m.anonymous && m.kind == MountKind::Volume && m.mode.is_empty());
        let m = parse_bind("/anon:ro").unwrap();
        assert!(m.anonymous && !m.rw);
        let m = parse_bind("v2:/y:nocopy").unwrap();
        assert!(!m.copy_data && m.mode == "nocopy");
        let m = parse_bind("/h:/c:ro,rslave").unwrap();
        assert_eq!(m.propagation, "rslave");
        assert!(parse_bind("/h:/c:rshared").unwrap_err().to_string().contains("bind propagation rshared"));
        assert_eq!(parse_bind("vv:/x:bogus").unwrap_err().to_string(), "invalid mode: bogus");
        assert!(parse_bind("rel:rel").unwrap_err().to_string().contains("mount path must be absolute"));
        assert!(parse_bind("vv:/").unwrap_err().to_string().contains("destination can't be '/'"));
        assert!(parse_bind("../x:/d").unwrap_err().to_string().contains("includes invalid characters"));
        assert!(parse_bind("a:b:c:d").is_err());
        assert_eq!(parse_bind("v1:/a/../b/").unwrap().destination, "/b");
    }
    #[test]
    fn mounts() {
        let vol = Mount { typ: Some(MountType::VOLUME), target: Some("/mv".into()), ..Default::default() };
        let m = parse_mount(&vol).unwrap();
        assert!(m.anonymous && m.mode == "z");
        let bind = Mount {
            typ: Some(MountType::BIND),
            source: Some("/h".into()),
            target: Some("/mb".into()),
            read_only: Some(true),
            ..Default::default()
        };
        let m = parse_mount(&bind).unwrap();
        assert_eq!((m.kind, m.rw, m.propagation.as_str(), m.create_source), (MountKind::Bind, false, "rprivate", false));
        let tmp = Mount {
            typ: Some(MountType::TMPFS),
            target: Some("/t".into()),
            tmpfs_options: Some(bollard_stubs::models::MountTmpfsOptions { size_bytes: Some(1048576), mode: Some(0o1777), options: None }),
            ..Default::default()
        };
        let m = parse_mount(&tmp).unwrap();
        assert_eq!(m.tmpfs_options, ["size=1048576", "mode=1777"]);
        assert!(!m.hidden);
        assert_eq!(
            parse_mount(&Mount { typ: Some(MountType::BIND), target: Some("/x".into()), ..Default::default() }).unwrap_err().to_string(),
            "invalid mount config for type \"bind\": field Source must not be empty"
        );
        assert!(parse_mount(&Mount { typ: Some(MountType::VOLUME), ..Default::default() })
            .unwrap_err()
            .to_string()
            .contains("Target must not be empty"));
    }
    #[test]
    fn tmpfs_and_volumes_from() {
        let m = parse_tmpfs("/run", "size=1m,exec").unwrap();
        assert!(m.hidden);
        assert_eq!(tmpfs_mount_options(&m), ["nosuid", "nodev", "size=1m"]);
        assert_eq!(
            parse_tmpfs("rel", "ro").unwrap_err().to_string(),
            "invalid volume specification: 'rel:ro': invalid mount config for type \"tmpfs\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert_eq!(parse_volumes_from("c1").unwrap(), ("c1".to_string(), None));
        assert_eq!(parse_volumes_from("c1:ro").unwrap(), ("c1".to_string(), Some(false)));
        assert!(parse_volumes_from("c1:zz").is_err());
        assert_eq!(clean_path("/a//b/./c/.."), "/a/b");
    }
    #[test]
    fn json_shape() {
        let mut m = parse_bind("data:/d").unwrap();
        m.source = "/v/data/_data".into();
        let j = m.to_json();
        assert_eq!(j["Type"], "volume");
        assert_eq!(j["Name"], "data");
        assert_eq!(j["Driver"], "local");
        let j = parse_bind("/h:/h").unwrap().to_json();
        assert!(j.get("Name").is_none());
        assert_eq!(j["Propagation"], "rprivate");
    }
}
