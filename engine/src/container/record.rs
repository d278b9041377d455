//! The on-disk container record: `<data-root>/containers/<id>/config.v2.json`, written atomically.
use bollard_stubs::models::{ContainerConfig, HostConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

const TRASH_PREFIX: &str = ".removing-";

/// A directory entry of `<data-root>/containers` that is a removed container's, still being deleted.
pub fn is_trash(name: &str) -> bool {
    name.starts_with(TRASH_PREFIX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
    Removing,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Removing => "removing",
            Status::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: u32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    pub oom_killed: bool,
    /// Frozen by `docker pause` (status stays running).
    #[serde(default)]
    pub paused: bool,
    /// Waiting to be restarted by its restart policy (status exited).
    #[serde(default)]
    pub restarting: bool,
    /// The healthcheck's state (`None` without a healthcheck).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::Health>,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            oom_killed: false,
            paused: false,
            restarting: false,
            health: None,
        }
    }
}

/// Network mode after parsing `HostConfig.NetworkMode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// A netns of its own with one interface per network of [`Record::networks`] (the default
    /// bridge, or `--network NAME`, plus `docker network connect`s).
    Bridge,
    Host,
    None,
    /// `--network container:<id>`: the netns of that container.
    Container(String),
}

impl NetMode {
    pub fn name(&self) -> &'static str {
        match self {
            NetMode::Bridge => "bridge",
            NetMode::Host => "host",
            NetMode::None => "none",
            NetMode::Container(_) => "container",
        }
    }
}

/// A network the container is (to be) attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetConf {
    /// The network's name (the key of `NetworkSettings.Networks`).
    pub name: String,
    pub id: String,
    #[serde(default)]
    pub attach: crate::network::Attach,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    /// `sha256:<hex>`.
    pub image_id: String,
    /// Lower layer dirs of the image, bottom first (kept so the rootfs mounts without the image store).
    pub layer_dirs: Vec<PathBuf>,
    /// The merged config (image defaults + user's).
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub net_mode: NetMode,
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub restart_count: u32,
    /// Volumes, binds and tmpfs mounts, resolved at create.
    #[serde(default)]
    pub mounts: Vec<crate::volume::MountPoint>,
    /// With [`NetMode::Bridge`]: the networks, primary (default route, published ports) first.
    #[serde(default)]
    pub networks: Vec<NetConf>,
    /// Live endpoints while running, in the order of `networks`.
    #[serde(default)]
    pub endpoints: Vec<crate::network::Endpoint>,
    /// Live published ports while running.
    #[serde(default)]
    pub ports: Vec<crate::network::PortMapping>,
    /// Stopped by the user (`docker stop`/`kill`): `unless-stopped` and `always` stay down
    /// until the next explicit start (dockerd's HasBeenManuallyStopped).
    #[serde(default)]
    pub manually_stopped: bool,
}

impl Record {
    pub fn dir(root: &Path, id: &str) -> PathBuf {
        root.join("containers").join(id)
    }
    pub fn file(root: &Path, id: &str) -> PathBuf {
        Self::dir(root, id).join("config.v2.json")
    }
    /// Removes a container's directory: renamed to `.removing-<id>` at once (one metadata
    /// operation instead of one per file on the path of `docker rm`), deleted in the background.
    /// What a crash leaves is deleted at the next start ([`is_trash`]).
    pub fn remove_dir(root: &Path, id: &str) {
        let dir = Self::dir(root, id);
        let trash = root.join("containers").join(format!("{TRASH_PREFIX}{id}"));
        match std::fs::rename(&dir, &trash) {
            Ok(()) => {
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = std::fs::remove_dir_all(&trash) {
                        tracing::warn!(dir = %trash.display(), error = %e, "removing a container directory failed");
                    }
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    /// Writes the record, readable by root only (it holds the environment).
    pub fn save(&self, root: &Path) -> std::io::Result<()> {
        crate::fsutil::write_private_json(&Self::file(root, &self.id), self, true)
    }
    /// As [`Record::save`], without fsync (state changes only; see `ContainerService::save_state`).
    pub fn save_state(&self, root: &Path) -> std::io::Result<()> {
        crate::fsutil::write_private_json(&Self::file(root, &self.id), self, false)
    }
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }
    pub fn auto_remove(&self) -> bool {
        self.host_config.auto_remove.unwrap_or(false)
    }
    pub fn running(&self) -> bool {
        self.state.status == Status::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn removed_dirs_go_out_of_the_way_at_once() {
        let root = tempfile::tempdir().unwrap();
        let dir = Record::dir(root.path(), "abc");
        std::fs::create_dir_all(dir.join("upper/etc")).unwrap();
        std::fs::write(dir.join("upper/etc/hosts"), "x").unwrap();
        Record::remove_dir(root.path(), "abc");
        assert!(!dir.exists());
        let left: Vec<String> = std::fs::read_dir(root.path().join("containers"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.iter().all(|n| is_trash(n)), "{left:?}");
        // Removing what is not there is fine.
        Record::remove_dir(root.path(), "missing");
        assert!(!is_trash("abc") && is_trash(".removing-abc"));
    }
}
