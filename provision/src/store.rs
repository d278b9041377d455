//! The machine store: `<root>/certs/` (CA and client cert) and `<root>/machines/NAME/`
//! (`config.json` plus the machine's certs and keys). Root from `--storage-path` /
//! `MACHINE_STORAGE_PATH`, default `~/.flotilla/machine`. A machine exists iff its directory does.
use crate::fsutil::{write_atomic, FileLock};
use crate::host::{Host, CONFIG_VERSION};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Docker machine \"{0}\" does not exist. Use \"machine ls\" to list machines. Use \"machine create\" to add a new one.")]
    NotExist(String),
    #[error("Docker machine \"{0}\" already exists")]
    AlreadyExists(String),
    #[error("Invalid hostname specified. Allowed hostname chars are: 0-9a-zA-Z . -")]
    InvalidName(String),
    #[error("config version is from the future, please upgrade machine: {0}")]
    FutureVersion(u32),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: invalid config.json: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Default store root: `$MACHINE_STORAGE_PATH`, else `~/.flotilla/machine`.
pub fn default_root() -> PathBuf {
    if let Some(p) = std::env::var_os("MACHINE_STORAGE_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".flotilla").join("machine")
}

/// Docker Machine's name rule: `^[a-zA-Z0-9][a-zA-Z0-9\-\.]*$`.
pub fn valid_name(name: &str) -> bool {
    let mut cs = name.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphanumeric()) && cs.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        let root: PathBuf = root.into();
        // Absolute paths are baked into config.json, as Docker Machine does.
        let root = if root.is_absolute() { root } else { std::env::current_dir().map(|d| d.join(&root)).unwrap_or(root) };
        Store { root }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn certs_dir(&self) -> PathBuf {
        self.root.join("certs")
    }
    pub fn machines_dir(&self) -> PathBuf {
        self.root.join("machines")
    }
    pub fn machine_dir(&self, name: &str) -> PathBuf {
        self.machines_dir().join(name)
    }
    fn config_path(&self, name: &str) -> PathBuf {
        self.machine_dir(name).join("config.json")
    }
    /// A store-wide lock (for allocations that span machines, e.g. local IPs).
    pub fn lock(&self, what: &str) -> Result<FileLock, StoreError> {
        let p = self.root.join(format!(".{what}.lock"));
        FileLock::acquire(&p).map_err(io_err(&p))
    }

    pub fn exists(&self, name: &str) -> bool {
        valid_name(name) && self.machine_dir(name).is_dir()
    }

    /// Names of all machines (non-hidden directories under `machines/`), naturally sorted by
    /// lower-cased name.
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.machines_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(StoreError::Io { path: dir, source: e }),
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort_by(|a, b| natural_cmp(&a.to_lowercase(), &b.to_lowercase()));
        Ok(names)
    }

    /// Reserves `machines/NAME/` for a new machine; fails with `already exists` if it is
    /// there (mkdir is atomic, so two creates of one name cannot both win).
    pub fn reserve(&self, name: &str) -> Result<PathBuf, StoreError> {
        if !valid_name(name) {
            return Err(StoreError::InvalidName(name.into()));
        }
        let parent = self.machines_dir();
        fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        let dir = self.machine_dir(name);
        match fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(StoreError::AlreadyExists(name.into())),
            Err(e) => Err(StoreError::Io { path: dir, source: e }),
        }
    }

    pub fn load(&self, name: &str) -> Result<Host, StoreError> {
        if !self.exists(name) {
            return Err(StoreError::NotExist(name.into()));
        }
        let p = self.config_path(name);
        let data = fs::read(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotExist(name.into()),
            _ => StoreError::Io { path: p.clone(), source: e },
        })?;
        let h: Host = serde_json::from_slice(&data).map_err(|source| StoreError::Parse { path: p.clone(), source })?;
        if h.config_version > CONFIG_VERSION {
            return Err(StoreError::FutureVersion(h.config_version));
        }
        Ok(h)
    }

    /// Saves `config.json` atomically (0600).
    pub fn save(&self, host: &Host) -> Result<(), StoreError> {
        let p = self.config_path(&host.name);
        let data = serde_json::to_vec_pretty(host).map_err(|source| StoreError::Parse { path: p.clone(), source })?;
        write_atomic(&p, &data, 0o600).map_err(io_err(&p))
    }

    /// Deletes the machine's directory.
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        if !valid_name(name) {
            return Err(StoreError::NotExist(name.into()));
        }
        let d = self.machine_dir(name);
        match fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotExist(name.into())),
            Err(e) => Err(StoreError::Io { path: d, source: e }),
        }
    }
}

/// Natural order: digit runs compare by value ("m2" < "m10").
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (trim_zeros(&x[..nx]), trim_zeros(&y[..ny]));
                let o = dx.len().cmp(&dy.len()).then(dx.cmp(dy));
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| **c == b'0').count();
    &s[n.min(s.len().saturating_sub(1))..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostOptions;

    fn host(name: &str) -> Host {
        Host {
            config_version: 3,
            driver: serde_json::json!({"IPAddress": "1.2.3.4"}),
            driver_name: "none".into(),
            host_options: HostOptions::default(),
            name: name.into(),
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "m1", "a.b-c", "9x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a_b", "a/b", "a b", ".."] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn reserve_save_load_list_remove() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        s.reserve("m10").unwrap();
        s.reserve("m2").unwrap();
        s.reserve("A1").unwrap();
        assert!(matches!(s.reserve("m2"), Err(StoreError::AlreadyExists(_))));
        assert_eq!(s.reserve("m2").unwrap_err().to_string(), "Docker machine \"m2\" already exists");
        assert!(matches!(s.reserve("bad_name"), Err(StoreError::InvalidName(_))));
        s.save(&host("m2")).unwrap();
        assert_eq!(s.load("m2").unwrap(), host("m2"));
        assert!(matches!(s.load("m10"), Err(StoreError::NotExist(_))));
        assert!(s.load("nope").unwrap_err().to_string().starts_with("Docker machine \"nope\" does not exist."));
        fs::create_dir_all(s.machines_dir().join(".hidden")).unwrap();
        assert_eq!(s.list().unwrap(), vec!["A1", "m2", "m10"]);
        s.remove("m2").unwrap();
        assert!(!s.exists("m2"));
        assert!(matches!(s.remove("m2"), Err(StoreError::NotExist(_))));
    }

    #[test]
    fn future_version_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        s.reserve("f").unwrap();
        let mut h = host("f");
        h.config_version = 9;
        s.save(&h).unwrap();
        assert!(matches!(s.load("f"), Err(StoreError::FutureVersion(9))));
    }

    #[test]
    fn natural_sort() {
        let mut v = vec!["m10", "m9", "m1", "a", "m01x"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["a", "m1", "m01x", "m9", "m10"]);
    }
}
