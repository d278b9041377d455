//! Volumes: the `local` driver under `<data-root>/volumes/<name>/_data`, metadata in
//! `<name>/volume.json` (written atomically). The service knows no containers: it asks the
//! callback set with [`VolumeService::set_users`] which containers reference a volume.
pub mod local;
pub mod opts;
pub mod spec;

use crate::events::EventBus;
use crate::{Classify, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

pub use spec::{MountKind, MountPoint};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("remove {name}: volume is in use - [{}]", .ids.join(" "))]
    InUse { name: String, ids: Vec<String> },
    #[error("create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    InvalidName(String),
    #[error("create {0}: volume name is too short, names should be at least two alphanumeric characters")]
    NameTooShort(String),
    #[error("create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found")]
    NoDriver { name: String, driver: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl Classify for VolumeError {
    fn kind(&self) -> ErrorKind {
        match self {
            VolumeError::NotFound(_) | VolumeError::NoDriver { .. } => ErrorKind::NotFound,
            VolumeError::InUse { .. } => ErrorKind::Conflict,
            VolumeError::InvalidName(_) | VolumeError::NameTooShort(_) | VolumeError::Invalid(_) => ErrorKind::InvalidParameter,
            VolumeError::Io { .. } => ErrorKind::Internal,
        }
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io { path: path.display().to_string(), source }
}

/// One volume's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// RFC 3339, seconds.
    pub created_at: String,
}

/// Which containers reference a volume (full ids).
pub type VolumeUsers = Arc<dyn Fn(&str) -> Vec<String> + Send + Sync>;

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`: no `/`, no `..`, never a path.
pub fn check_name(name: &str) -> Result<(), VolumeError> {
    let b = name.as_bytes();
    let ok_first = b.first().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !ok_first || !ok_rest {
        return Err(VolumeError::InvalidName(name.to_string()));
    }
    if b.len() < 2 {
        return Err(VolumeError::NameTooShort(name.to_string()));
    }
    Ok(())
}

pub struct VolumeService {
    root: PathBuf,
    events: EventBus,
    vols: Mutex<BTreeMap<String, Volume>>,
    users: RwLock<Option<VolumeUsers>>,
}

impl VolumeService {
    /// Opens (creating if needed) `<data_root>/volumes` and loads every volume.
    pub fn open(data_root: &Path, events: EventBus) -> Result<Self, VolumeError> {
        let root = data_root.join("volumes");
        std::fs::create_dir_all(&root).map_err(io_err(&root))?;
        let mut vols = BTreeMap::new();
        for e in std::fs::read_dir(&root).map_err(io_err(&root))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if check_name(&name).is_err() || !e.path().is_dir() {
                continue;
            }
            let _ = crate::fsutil::remove_stale_tmp(&e.path());
            let v = match crate::fsutil::read_json::<Volume>(&e.path().join("volume.json")) {
                Ok(Some(v)) => v,
                Ok(None) if e.path().join("_data").is_dir() => Volume {
                    name: name.clone(),
                    driver: "local".into(),
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                    created_at: local::created_at(&e.path()),
                },
                Ok(None) => continue,
                Err(err) => {
                    tracing::error!(volume = %name, error = %err, "unreadable volume metadata; skipping");
                    continue;
                }
            };
            vols.insert(name, v);
        }
        Ok(VolumeService { root, events, vols: Mutex::new(vols), users: RwLock::new(None) })
    }

    pub fn set_users(&self, f: VolumeUsers) {
        *self.users.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(f);
    }

    fn users_of(&self, name: &str) -> Vec<String> {
        self.users.read().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map(|f| f(name)).unwrap_or_default()
    }

    /// `<root>/<name>/_data`: what containers mount.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// Creates a volume; an existing volume of that name is returned as is (as dockerd does).
    /// `name: None` makes an anonymous volume with a random 64-hex name.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<Volume, VolumeError> {
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => crate::ids::new_id(),
        };
        check_name(&name)?;
        let driver = driver.filter(|d| !d.is_empty()).unwrap_or("local");
        if driver != "local" {
            return Err(VolumeError::NoDriver { name, driver: driver.into() });
        }
        opts::validate(&name, &options)?;
        let mut vols = self.vols.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = vols.get(&name) {
            return Ok(v.clone());
        }
        let v = Volume {
            name: name.clone(),
            driver: driver.into(),
            labels,
            options,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        local::create(&self.root.join(&name), &v)?;
        vols.insert(name.clone(), v.clone());
        drop(vols);
        self.events.publish("volume", "create", &name, &[("driver", driver)]);
        tracing::info!(volume = %name, "volume created");
        Ok(v)
    }

    /// Before a container uses the volume: a volume made with `type`/`device` options is
    /// mounted on its `_data` (once; see [`opts`]).
    pub fn ensure_mounted(&self, name: &str) -> Result<(), VolumeError> {
        let vols = self.vols.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match vols.get(name) {
            Some(v) if !v.options.is_empty() => opts::mount_on(&self.data_dir(name), &v.options),
            _ => Ok(()),
        }
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        self.vols
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))
    }

    pub fn exists(&self, name: &str) -> bool {
        self.vols.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(name)
    }

    pub fn all(&self) -> Vec<Volume> {
        self.vols.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect()
    }

    /// `docker volume ls` with `dangling`, `name`, `label`, `driver` filters.
    pub fn list(&self, filters: &HashMap<String, Vec<String>>) -> Result<Vec<Volume>, VolumeError> {
        let f = ListFilter::new(filters)?;
        Ok(self.all().into_iter().filter(|v| f.matches(v, || !self.users_of(&v.name).is_empty())).collect())
    }

    /// Removes a volume no container references. `force` turns "no such volume" into success.
    pub fn remove(&self, name: &str, force: bool) -> Result<(), VolumeError> {
        let v = match self.get(name) {
            Ok(v) => v,
            Err(VolumeError::NotFound(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let users = self.users_of(name);
        if !users.is_empty() {
            return Err(VolumeError::InUse { name: name.to_string(), ids: users });
        }
        let dir = self.root.join(name);
        opts::unmount(&self.data_dir(name))?;
        local::remove(&dir)?;
        self.vols.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(name);
        self.events.publish("volume", "destroy", name, &[("driver", &v.driver)]);
        tracing::info!(volume = %name, "volume removed");
        Ok(())
    }

    /// Removes every unused volume matching `label`/`label!` filters; returns names and bytes freed.
    pub fn prune(&self, filters: &HashMap<String, Vec<String>>) -> Result<(Vec<String>, u64), VolumeError> {
        for k in filters.keys() {
            if !["label", "label!"].contains(&k.as_str()) {
                return Err(VolumeError::Invalid(format!("Invalid filter '{k}'")));
            }
        }
        let mut deleted = vec![];
        let mut reclaimed = 0;
        for v in self.all() {
            let with = |k: &str| filters.get(k).map(|vals| vals.iter().map(|s| label_matches(&v.labels, s)).collect::<Vec<_>>());
            if with("label").is_some_and(|m| !m.iter().all(|x| *x)) || with("label!").is_some_and(|m| m.iter().any(|x| *x)) {
                continue;
            }
            if !self.users_of(&v.name).is_empty() {
                continue;
            }
            let size = local::size(&self.data_dir(&v.name));
            match self.remove(&v.name, false) {
                Ok(()) => {
                    deleted.push(v.name.clone());
                    reclaimed += size;
                }
                Err(VolumeError::InUse { .. }) => {}
                Err(e) => tracing::warn!(volume = %v.name, error = %e, "prune: removing volume failed"),
            }
        }
        Ok((deleted, reclaimed))
    }

    /// `GET /volumes/{name}` and the rows of `GET /volumes`.
    pub fn to_json(&self, v: &Volume) -> Value {
        json!({
            "CreatedAt": v.created_at,
            "Driver": v.driver,
            "Labels": if v.labels.is_empty() { Value::Null } else { json!(v.labels) },
            "Mountpoint": self.data_dir(&v.name),
            "Name": v.name,
            "Options": if v.options.is_empty() { Value::Null } else { json!(v.options) },
            "Scope": "local",
        })
    }

    /// Volumes with `UsageData` (reference count and size), for `system df`.
    pub fn usage(&self) -> Vec<Value> {
        self.all()
            .iter()
            .map(|v| {
                let mut j = self.to_json(v);
                j["UsageData"] = json!({ "RefCount": self.users_of(&v.name).len(), "Size": local::size(&self.data_dir(&v.name)) });
                j
            })
            .collect()
    }
}

fn label_matches(labels: &BTreeMap<String, String>, f: &str) -> bool {
    match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(f),
    }
}

struct ListFilter<'a> {
    f: &'a HashMap<String, Vec<String>>,
    dangling: Option<bool>,
}

impl<'a> ListFilter<'a> {
    fn new(f: &'a HashMap<String, Vec<String>>) -> Result<Self, VolumeError> {
        let mut dangling = None;
        for (k, vals) in f {
            match k.as_str() {
                "name" | "label" | "driver" => {}
                "dangling" => {
                    for v in vals {
                        dangling = Some(match v.to_ascii_lowercase().as_str() {
                            "true" | "1" => true,
                            "false" | "0" => false,
                            _ => return Err(VolumeError::Invalid(format!("Invalid filter 'dangling={v}'"))),
                        });
                    }
                }
                other => return Err(VolumeError::Invalid(format!("Invalid filter '{other}'"))),
            }
        }
        Ok(ListFilter { f, dangling })
    }

    fn matches(&self, v: &Volume, in_use: impl Fn() -> bool) -> bool {
        let get = |k: &str| self.f.get(k).filter(|x| !x.is_empty());
        if get("name").is_some_and(|vals| !vals.iter().any(|n| v.name.contains(n.as_str()))) {
            return false;
        }
        if get("driver").is_some_and(|vals| !vals.contains(&v.driver)) {
            return false;
        }
        if get("label").is_some_and(|vals| !vals.iter().all(|l| label_matches(&v.labels, l))) {
            return false;
        }
        match self.dangling {
            Some(d) => in_use() != d,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn svc() -> (tempfile::TempDir, VolumeService) {
        let d = tempfile::tempdir().unwrap();
        let s = VolumeService::open(d.path(), EventBus::default()).unwrap();
        (d, s)
    }
    fn filters(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        m
    }
    #[test]
    fn names() {
        for ok in ["ab", "my-vol_1.x", "0a"] {
            check_name(ok).unwrap();
        }
        for bad in ["..", "../x", "a/b", "/abs", ".hidden", "-x", "a b", ""] {
            assert!(matches!(check_name(bad), Err(VolumeError::InvalidName(_))), "{bad}");
        }
        assert!(matches!(check_name("a"), Err(VolumeError::NameTooShort(_))));
        assert_eq!(VolumeError::InvalidName("../x".into()).kind(), ErrorKind::InvalidParameter);
    }
    #[test]
    fn create_list_remove_and_reload() {
        let (d, s) = svc();
        let labels: BTreeMap<_, _> = [("a".to_string(), "b".to_string())].into_iter().collect();
        let v = s.create(Some("v1"), None, labels, BTreeMap::new()).unwrap();
        assert_eq!(v.driver, "local");
        assert!(s.data_dir("v1").is_dir());
        // Existing: returned unchanged.
        assert_eq!(s.create(Some("v1"), Some("local"), BTreeMap::new(), BTreeMap::new()).unwrap().labels["a"], "b");
        let anon = s.create(None, None, BTreeMap::new(), BTreeMap::new()).unwrap();
        assert_eq!(anon.name.len(), 64);
        assert!(matches!(s.create(Some("v2"), Some("nfs"), BTreeMap::new(), BTreeMap::new()), Err(VolumeError::NoDriver { .. })));
        let names = |f: &[(&str, &str)]| s.list(&filters(f)).unwrap().into_iter().map(|v| v.name).collect::<Vec<_>>();
        assert_eq!(names(&[("label", "a=b")]), ["v1"]);
        assert_eq!(names(&[("name", "v")]), ["v1"]);
        assert_eq!(names(&[("dangling", "true")]).len(), 2);
        assert!(s.list(&filters(&[("bogus", "x")])).is_err());
        let j = s.to_json(&v);
        assert_eq!(j["Labels"]["a"], "b");
        assert_eq!(j["Options"], Value::Null);
        // Reload from disk.
        let s2 = VolumeService::open(d.path(), EventBus::default()).unwrap();
        assert_eq!(s2.get("v1").unwrap().labels["a"], "b");
        s.remove("v1", false).unwrap();
        assert!(!d.path().join("volumes/v1").exists());
        assert!(matches!(s.remove("v1", false), Err(VolumeError::NotFound(_))));
        s.remove("v1", true).unwrap();
    }
    #[test]
    fn in_use_volumes_stay() {
        let (_d, s) = svc();
        s.create(Some("busy"), None, BTreeMap::new(), BTreeMap::new()).unwrap();
        s.create(Some("idle"), None, BTreeMap::new(), BTreeMap::new()).unwrap();
        s.set_users(Arc::new(|n: &str| if n == "busy" { vec!["c1".into(), "c2".into()] } else { vec![] }));
        let e = s.remove("busy", false).unwrap_err();
        assert_eq!(e.to_string(), "remove busy: volume is in use - [c1 c2]");
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(s.list(&filters(&[("dangling", "false")])).unwrap()[0].name, "busy");
        let (deleted, _) = s.prune(&HashMap::new()).unwrap();
        assert_eq!(deleted, ["idle"]);
        assert!(s.exists("busy"));
    }
}
