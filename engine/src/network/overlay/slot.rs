//! The overlay side of a network service as the rest of the engine sees it: ready once the
//! cluster store answered. An engine whose store does not answer at start still starts (local
//! networks work), says so in its log and in `docker info`, refuses overlay operations with a
//! clear error, and keeps trying until the store answers; then overlay networks work without
//! a restart.
use super::{ClusterStore, Overlay};
use crate::network::{NetworkError, Shared};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How often an engine that could not reach its store at start tries again.
const RETRY: Duration = Duration::from_secs(2);

pub(crate) struct Slot {
    ready: OnceLock<Arc<Overlay>>,
    /// Why the store is not usable yet (`None` once ready).
    down: Mutex<Option<String>>,
    /// `--cluster-store` and `--cluster-advertise` as given.
    pub url: String,
    pub advertise: String,
}

/// What `docker info` shows of the cluster store.
#[derive(Debug, Clone)]
pub struct StoreStatus {
    pub url: String,
    pub advertise: String,
    /// Set while the store has never answered since the engine started.
    pub unreachable: Option<String>,
}

impl Slot {
    /// Starts the overlay side; when the store does not answer, returns a slot that is not ready
    /// and keeps trying in the background. Other errors (a bad `--cluster-advertise`) are fatal.
    pub(crate) async fn start(cfg: &ClusterStore, shared: Arc<Shared>, data_dir: PathBuf) -> Result<Arc<Slot>, NetworkError> {
        let slot = Arc::new(Slot {
            ready: OnceLock::new(),
            down: Mutex::new(None),
            url: format!("etcd://{}/{}", cfg.endpoints.join(","), cfg.prefix),
            advertise: format!("{}:{}", cfg.advertise, cfg.advertise_port),
        });
        match Overlay::start(cfg, shared.clone(), data_dir.clone()).await {
            Ok(ov) => {
                let _ = slot.ready.set(ov);
            }
            Err(NetworkError::Store(e)) => {
                tracing::error!(
                    store = %slot.url,
                    error = %e,
                    "cluster store unreachable: the engine starts without it; local networks work, overlay networks fail \
                     until it answers (trying again every {}s)",
                    RETRY.as_secs()
                );
                *slot.down.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
                shared.tasks.spawn_until_shutdown(retry(slot.clone(), cfg.clone(), shared.clone(), data_dir));
            }
            Err(e) => return Err(e),
        }
        Ok(slot)
    }

    pub(crate) fn get(&self) -> Option<&Arc<Overlay>> {
        self.ready.get()
    }

    /// The overlay, or the error overlay operations give while the store never answered.
    pub(crate) fn overlay(&self) -> Result<&Arc<Overlay>, NetworkError> {
        self.ready.get().ok_or_else(|| {
            let why = self.down.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone().unwrap_or_default();
            NetworkError::StoreDown(format!(
                "cluster store {} is unreachable ({why}): overlay networks are unavailable until it answers",
                self.url
            ))
        })
    }

    pub(crate) fn status(&self) -> StoreStatus {
        StoreStatus {
            url: self.url.clone(),
            advertise: self.advertise.clone(),
            unreachable: if self.ready.get().is_some() {
                None
            } else {
                self.down.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
            },
        }
    }
}

async fn retry(slot: Arc<Slot>, cfg: ClusterStore, shared: Arc<Shared>, data_dir: PathBuf) {
    loop {
        tokio::time::sleep(RETRY).await;
        match Overlay::start(&cfg, shared.clone(), data_dir.clone()).await {
            Ok(ov) => {
                let _ = slot.ready.set(ov);
                *slot.down.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                tracing::info!(store = %slot.url, "cluster store reachable: overlay networks available");
                return;
            }
            Err(e) => {
                tracing::debug!(store = %slot.url, error = %e, "cluster store still unreachable");
                *slot.down.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
            }
        }
    }
}
