//! The container service: the API's entry point for containers. It knows no HTTP.
//!
//! Each container is a [`Ctr`]: its record (persisted on every change), a watch channel
//! that tells waiters about starts, exits and removal, and the attaches that arrived
//! before `start` (the CLI's `docker run` attaches first, then starts).
mod ahead;
pub mod archive;
mod commit;
mod create;
mod etcfiles;
mod exec;
mod exit;
mod health;
mod joins;
mod launch;
mod lifecycle;
pub mod logopts;
mod logs;
mod mounts;
pub mod net;
mod netconf;
pub mod ports;
mod prune;
pub mod record;
mod remove;
mod rename;
mod resources;
pub(crate) mod restart;
pub mod rootfs;
pub mod runopts;
pub mod secopts;
mod stats;
pub mod stats_collector;
#[cfg(test)]
mod tests;
mod view;

pub use archive::PathStat;
pub use commit::CommitOptions;
pub use create::CreateRequest;
pub use exec::ExecIo;
pub use lifecycle::{parse_signal, WaitCondition};
pub use logs::{frame as frame_output, parse_ts as parse_log_ts, LogOptions};
pub use mounts::copy_image_content;
pub use prune::parse_until;
pub use resources::UpdateRequest;
pub use stats::StatsOptions;
pub use view::ListOptions;

use crate::events::EventBus;
use crate::image::ImageService;
use crate::network::NetworkService;
use crate::runtime::{AttachOpts, AttachStream, Runtime, ShimRuntime};
use crate::tasks::Tasks;
use crate::volume::VolumeService;
use crate::{Classify, EngineConfig, ErrorKind};
use net::ContainerNetwork;
use record::Record;
use rootfs::Rootfs;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, watch};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("network {0} not found")]
    NetworkNotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidParam(String),
    #[error("{0}")]
    NotModified(String),
    #[error("{0}")]
    Image(#[from] crate::image::ImageError),
    #[error("{0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("{0}")]
    Network(#[from] crate::network::NetworkError),
    #[error("{0}")]
    Volume(#[from] crate::volume::VolumeError),
    /// A path inside a container that does not exist (`docker cp`).
    #[error("{0}")]
    PathNotFound(String),
    /// A file operation of the engine failed: what it did (`op`) and on which `path`.
    #[error("{op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    /// A background or blocking task of an operation died (panicked or was cancelled).
    #[error("{op}: {source}")]
    Task { op: &'static str, source: tokio::task::JoinError },
    /// A task of an operation ended without an answer.
    #[error("{0} task failed")]
    TaskFailed(&'static str),
    /// Setting a pty's size failed.
    #[error("resizing the exec's tty: {0}")]
    Resize(std::io::Error),
    #[error("No such exec instance: {0}")]
    ExecNotFound(String),
    #[error("{0}")]
    Cgroup(#[from] crate::cgroups::CgroupError),
    /// `docker logs` of a container whose log driver keeps nothing (`none`).
    #[error("configured logging driver does not support reading")]
    LogsNotReadable,
}

impl ContainerError {
    /// An io error of `op` on `path` (for `map_err`).
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ContainerError {
        let path = path.into();
        move |source| ContainerError::Io { op, path, source }
    }
    /// A blocking or spawned task of `op` that died (for `map_err` on its `JoinHandle`).
    pub fn task(op: &'static str) -> impl FnOnce(tokio::task::JoinError) -> ContainerError {
        move |source| ContainerError::Task { op, source }
    }
}

impl Classify for ContainerError {
    fn kind(&self) -> ErrorKind {
        match self {
            ContainerError::NotFound(_)
            | ContainerError::NetworkNotFound(_)
            | ContainerError::PathNotFound(_)
            | ContainerError::ExecNotFound(_) => ErrorKind::NotFound,
            ContainerError::Volume(e) => e.kind(),
            ContainerError::Cgroup(e) => e.kind(),
            ContainerError::Conflict(_) => ErrorKind::Conflict,
            ContainerError::InvalidParam(_) => ErrorKind::InvalidParameter,
            ContainerError::LogsNotReadable => ErrorKind::NotImplemented,
            ContainerError::NotModified(_) => ErrorKind::NotModified,
            ContainerError::Image(e) => e.kind(),
            ContainerError::Runtime(e) => e.kind(),
            ContainerError::Network(e) => e.kind(),
            ContainerError::Io { .. } | ContainerError::Task { .. } | ContainerError::TaskFailed(_) | ContainerError::Resize(_) => {
                ErrorKind::Internal
            }
        }
    }
}

/// How long [`ContainerService::shutdown`] waits for work already begun (a removal, a start by
/// a restart policy).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub total: usize,
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
}

/// What waiters watch: counters move forward, never back.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gen {
    pub starts: u64,
    pub exits: u64,
    pub running: bool,
    pub removed: bool,
    pub exit_code: i32,
}

struct PendingAttach {
    opts: AttachOpts,
    tx: oneshot::Sender<AttachStream>,
}

/// The attaches that arrived before `start`. A start takes them (`draining` from then until its
/// record says running, or it failed): an attach that finds `draining` set waits for the start.
#[derive(Default)]
struct Pending {
    attaches: Vec<PendingAttach>,
    draining: bool,
}

/// One container in memory.
pub struct Ctr {
    rec: Mutex<Record>,
    gen: watch::Sender<Gen>,
    pending: Mutex<Pending>,
    /// A start made ahead of the `start` request (see `ahead`), while the container is created.
    prepared: Mutex<Option<ahead::Prepared>>,
    /// A start is being made ahead, is held, or is being undone: its endpoint is not shown.
    unseen: std::sync::atomic::AtomicBool,
    /// Serialises start/stop/kill/remove of this container.
    op: tokio::sync::Mutex<()>,
}

impl Ctr {
    fn new(rec: Record) -> Arc<Self> {
        let g = Gen { running: rec.running(), exit_code: rec.state.exit_code, ..Default::default() };
        Arc::new(Ctr {
            rec: Mutex::new(rec),
            gen: watch::channel(g).0,
            pending: Default::default(),
            prepared: Default::default(),
            unseen: Default::default(),
            op: Default::default(),
        })
    }
    /// A copy of the record.
    pub fn record(&self) -> Record {
        self.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
    fn id(&self) -> String {
        self.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner).id.clone()
    }
    pub fn subscribe(&self) -> watch::Receiver<Gen> {
        self.gen.subscribe()
    }
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn prepared(&self) -> std::sync::MutexGuard<'_, Option<ahead::Prepared>> {
        self.prepared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Default)]
struct Table {
    by_id: HashMap<String, Arc<Ctr>>,
    names: HashMap<String, String>,
}

pub struct ContainerService<R: Runtime = ShimRuntime> {
    cfg: Arc<EngineConfig>,
    images: Arc<ImageService>,
    network: Arc<dyn ContainerNetwork>,
    /// The overlay mounts (a seam: mounting needs root).
    rootfs: Arc<dyn Rootfs>,
    events: EventBus,
    runtime: Arc<R>,
    /// The service's background tasks: exit watchers, restart backoffs, health probes, samplers.
    tasks: Tasks,
    /// Volumes (opened here so the volume store can ask which containers use a volume).
    volumes: Arc<VolumeService>,
    daemon_id: String,
    table: Mutex<Table>,
    execs: exec::ExecTable,
    restarts: restart::Restarts,
    /// Recent CPU samples for `stats` (its task starts after [`Self::load`]).
    stats: stats_collector::StatsCollector,
    /// Created containers whose rootfs is mounted, or whose start is made, ahead of their start.
    ahead: Arc<ahead::Ahead>,
}

impl ContainerService<ShimRuntime> {
    pub async fn open(
        cfg: Arc<EngineConfig>,
        images: Arc<ImageService>,
        network: Arc<NetworkService>,
        events: EventBus,
    ) -> Result<Arc<Self>, ContainerError> {
        let runtime = Arc::new(ShimRuntime::new(cfg.shim_binary.clone(), cfg.exec_root.join("runtime")));
        Self::with_runtime(cfg, images, network, Arc::new(rootfs::OverlayRootfs), events, runtime).await
    }
}

impl<R: Runtime> ContainerService<R> {
    /// The service over its seams: the runtime, the network and the rootfs mounts.
    pub async fn with_runtime(
        cfg: Arc<EngineConfig>,
        images: Arc<ImageService>,
        network: Arc<dyn ContainerNetwork>,
        rootfs: Arc<dyn Rootfs>,
        events: EventBus,
        runtime: Arc<R>,
    ) -> Result<Arc<Self>, ContainerError> {
        let id_path = cfg.data_root.join("engine-id");
        let daemon_id = match std::fs::read_to_string(&id_path) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                let id = crate::ids::new_id();
                crate::fsutil::write_atomic(&id_path, id.as_bytes()).map_err(ContainerError::io("writing", &id_path))?;
                id
            }
        };
        let volumes = Arc::new(VolumeService::open(&cfg.data_root, events.clone())?);
        let stats = stats_collector::StatsCollector::new(&cfg.cgroup_parent);
        let svc = Arc::new(ContainerService {
            cfg,
            images,
            network,
            rootfs,
            events,
            runtime,
            tasks: Tasks::new("containers"),
            volumes,
            daemon_id,
            table: Mutex::new(Table::default()),
            execs: Default::default(),
            restarts: Default::default(),
            stats,
            ahead: Default::default(),
        });
        let weak = Arc::downgrade(&svc);
        svc.volumes.set_users(Arc::new(move |name: &str| weak.upgrade().map(|s| s.volume_users(name)).unwrap_or_default()));
        let events = svc.events.subscribe();
        svc.load().await?;
        let running = svc.all().iter().map(|c| c.record()).filter(|r| r.running()).map(|r| r.id).collect();
        svc.stats.start(&svc.tasks, events, running);
        Ok(svc)
    }

    /// Stops the service's own background work and waits for it, up to [`SHUTDOWN_GRACE`]
    /// (containers keep running; the next engine watches them again).
    pub async fn shutdown(&self) {
        self.stats.shutdown().await;
        self.tasks.shutdown(SHUTDOWN_GRACE).await;
        self.release_ahead().await;
        self.runtime.shutdown().await;
    }

    /// Loads every record; containers that were running are watched again (their shim
    /// answers `wait`, or its exit file tells how they ended).
    async fn load(self: &Arc<Self>) -> Result<(), ContainerError> {
        let dir = self.cfg.data_root.join("containers");
        std::fs::create_dir_all(&dir).map_err(ContainerError::io("creating", &dir))?;
        let mut running = vec![];
        let mut stopped = vec![];
        for e in std::fs::read_dir(&dir).map_err(ContainerError::io("reading", &dir))?.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if record::is_trash(&id) {
                let _ = std::fs::remove_dir_all(e.path());
                continue;
            }
            crate::fsutil::remove_stale_tmp(&e.path()).map_err(ContainerError::io("removing temp files in", e.path()))?;
            let rec: Record = match crate::fsutil::read_json(&Record::file(&self.cfg.data_root, &id)) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    tracing::warn!(container = %id, "container directory without a record; removing it");
                    self.reclaim_unrecorded(&id).await;
                    let _ = std::fs::remove_dir_all(e.path());
                    continue;
                }
                Err(err) => {
                    tracing::error!(container = %id, error = %err, "unreadable container record; skipping");
                    continue;
                }
            };
            let was_running = rec.running();
            let ctr = Ctr::new(rec.clone());
            {
                let mut t = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                t.names.insert(rec.name.clone(), rec.id.clone());
                t.by_id.insert(rec.id.clone(), ctr.clone());
            }
            if was_running {
                running.push(ctr);
            } else {
                stopped.push(ctr);
            }
        }
        // A start the engine did not finish (killed half-way) leaves a sandbox behind: netns,
        // veths, ports and their rules, a rootfs mount, a shim with its cgroups. Reclaimed here,
        // for every container that is not running.
        let reclaims = stopped.into_iter().map(|ctr| async move {
            let rec = ctr.record();
            let dir = Record::dir(&self.cfg.data_root, &rec.id);
            let leftovers = self.state_dir(&rec.id).exists() || self.network.netns_path(&rec.id).exists() || self.rootfs.is_mounted(&dir);
            if leftovers {
                tracing::info!(container = %rec.id, "reclaiming what an unfinished start left");
                self.release_resources(&rec).await;
            }
        });
        futures_util::future::join_all(reclaims).await;
        // Removed containers whose runtime cleanup the engine did not finish (killed after the
        // removal's answer).
        let swept = self.sweep_runtime_leftovers().await;
        if swept > 0 {
            tracing::info!(swept, "cleaned the runtime leftovers of removed containers");
        }
        // Containers that ended while the engine was away are recorded before anyone asks.
        let checks = running.into_iter().map(|ctr| self.reattach(ctr));
        futures_util::future::join_all(checks).await;
        self.restore_policies();
        Ok(())
    }

    /// What a create the engine did not finish (killed before its record was written) may have
    /// made: its start is made ahead while the record is written (`create`), so a rootfs mount,
    /// a sandbox (netns, veth, address) and a shim with its cgroups. Released before its
    /// directory is removed (which must not reach into a mounted rootfs).
    async fn reclaim_unrecorded(&self, id: &str) {
        let dir = Record::dir(&self.cfg.data_root, id);
        if self.rootfs.is_mounted(&dir) {
            if let Err(e) = self.rootfs.unmount(&dir) {
                tracing::warn!(container = %id, error = %e, "unmounting the rootfs of an unfinished create failed");
            }
        }
        if self.network.netns_path(id).exists() {
            if let Err(e) = self.network.release(id).await {
                tracing::warn!(container = %id, error = %e, "network cleanup of an unfinished create failed");
            }
        }
        let state_dir = self.state_dir(id);
        if state_dir.exists() {
            if let Err(e) = self.runtime.delete(id, &state_dir).await {
                tracing::warn!(container = %id, error = %e, "runtime cleanup of an unfinished create failed");
            }
        }
    }

    /// The volume service (the API's `/volumes` routes use it too).
    pub fn volumes(&self) -> Arc<VolumeService> {
        self.volumes.clone()
    }

    pub fn daemon_id(&self) -> String {
        self.daemon_id.clone()
    }

    pub fn counts(&self) -> Counts {
        let t = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut c = Counts { total: t.by_id.len(), ..Default::default() };
        for ctr in t.by_id.values() {
            if ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner).running() {
                c.running += 1;
            } else {
                c.stopped += 1;
            }
        }
        c
    }

    /// The containers using `image_id` (for `rmi`'s conflict checks).
    pub fn image_users(&self, image_id: &str) -> Vec<crate::image::ImageUser> {
        let t = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        t.by_id
            .values()
            .filter_map(|c| {
                let r = c.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                (r.image_id == image_id).then(|| crate::image::ImageUser { container_id: r.id.clone(), running: r.running() })
            })
            .collect()
    }

    /// Finds a container by full id, name (with or without `/`) or unique id prefix.
    pub fn get(&self, key: &str) -> Result<Arc<Ctr>, ContainerError> {
        let t = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = t.by_id.get(key) {
            return Ok(c.clone());
        }
        let name = key.strip_prefix('/').unwrap_or(key);
        if let Some(id) = t.names.get(name) {
            if let Some(c) = t.by_id.get(id) {
                return Ok(c.clone());
            }
        }
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = t.by_id.iter().filter(|(id, _)| id.starts_with(key));
            if let Some((_, c)) = found.next() {
                if found.next().is_some() {
                    return Err(ContainerError::NotFound(format!("{key} (multiple IDs found with provided prefix)")));
                }
                return Ok(c.clone());
            }
        }
        Err(ContainerError::NotFound(key.to_string()))
    }

    fn all(&self) -> Vec<Arc<Ctr>> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner).by_id.values().cloned().collect()
    }

    fn state_dir(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join(&id[..16.min(id.len())])
    }

    fn save(&self, rec: &Record) -> Result<(), ContainerError> {
        rec.save(&self.cfg.data_root).map_err(ContainerError::io("saving", Record::file(&self.cfg.data_root, &rec.id)))?;
        Ok(())
    }

    /// Records a start or an exit: atomically, but without fsync (two on the path of every
    /// `docker run`). Whether a container runs does not survive a power loss anyway (the engine
    /// then finds it stopped and records that); an engine crash keeps the page cache. What must
    /// survive one (create, a user's start after a stop, renames, networks) goes through [`Self::save`].
    fn save_state(&self, rec: &Record) -> Result<(), ContainerError> {
        rec.save_state(&self.cfg.data_root).map_err(ContainerError::io("saving", Record::file(&self.cfg.data_root, &rec.id)))?;
        Ok(())
    }

    fn publish(&self, action: &str, rec: &Record, extra: &[(&str, &str)]) {
        let labels = rec.config.labels.clone().unwrap_or_default();
        // Container labels are event attributes too (for `--filter label=...`), as dockerd sends them.
        let mut attrs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        attrs.extend_from_slice(&[("name", rec.name.as_str()), ("image", rec.image.as_str())]);
        attrs.extend_from_slice(extra);
        self.events.publish("container", action, &rec.id, &attrs);
    }
}
