//! The container service driven through its seams ([`FakeRuntime`], [`FakeNetwork`],
//! [`FakeRootfs`]): no root, no shim, no netns, no mount. The data root is a temp dir with an
//! image written by the test (no layer: unpacking one would chown to root).
use super::net::FakeNetwork;
use super::record::{Record, Status};
use super::rootfs::FakeRootfs;
use super::{ContainerService, CreateRequest};
use crate::events::{Event, EventBus};
use crate::image::child::NewImage;
use crate::image::ImageService;
use crate::runtime::fake::FakeRuntime;
use crate::EngineConfig;
use bollard_stubs::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

mod ahead;
mod failures;
mod lifecycle;
mod remove;
mod restart;

type Svc = Arc<ContainerService<FakeRuntime>>;

pub(super) struct Harness {
    // Dropped last: removes the data root even when a test fails.
    _dir: tempfile::TempDir,
    cfg: Arc<EngineConfig>,
    images: Arc<ImageService>,
    events: EventBus,
    rt: Arc<FakeRuntime>,
    net: Arc<FakeNetwork>,
    fs: Arc<FakeRootfs>,
    svc: Svc,
    image: String,
    seen: broadcast::Receiver<Event>,
}

impl Harness {
    pub(super) async fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = EngineConfig::with_defaults();
        cfg.data_root = dir.path().join("data");
        cfg.exec_root = dir.path().join("exec");
        cfg.cgroup_parent = format!("/flotilla-unit-{}", std::process::id());
        let cfg = Arc::new(cfg);
        let events = EventBus::default();
        let images = Arc::new(ImageService::open(&cfg.data_root, &[], events.clone()).expect("image store"));
        let mut config = serde_json::Map::new();
        config.insert("Cmd".into(), serde_json::json!(["/bin/app", "--flag"]));
        let image = images
            .create_child(NewImage {
                parent: None,
                layer: None,
                config,
                container_config: Default::default(),
                container: None,
                author: String::new(),
                comment: String::new(),
                created_by: "test".into(),
            })
            .expect("image");
        let seen = events.subscribe();
        let rt = Arc::new(FakeRuntime::new());
        let net = Arc::new(FakeNetwork::new(dir.path().join("netns")));
        let fs = Arc::new(FakeRootfs::default());
        let svc = ContainerService::with_runtime(cfg.clone(), images.clone(), net.clone(), fs.clone(), events.clone(), rt.clone())
            .await
            .expect("container service");
        Harness { _dir: dir, cfg, images, events, rt, net, fs, svc, image, seen }
    }

    /// A second service over the same data root and fakes (an engine restart).
    pub(super) async fn reopen(&self) -> Svc {
        self.try_reopen().await.expect("container service again")
    }

    pub(super) async fn try_reopen(&self) -> Result<Svc, super::ContainerError> {
        let (net, fs) = (self.net.clone(), self.fs.clone());
        ContainerService::with_runtime(self.cfg.clone(), self.images.clone(), net, fs, self.events.clone(), self.rt.clone()).await
    }

    /// Creates a container named `name` running the image's command.
    pub(super) async fn create(&self, name: &str, hc: HostConfig) -> String {
        let body = ContainerCreateBody { image: Some(self.image.clone()), host_config: Some(hc), ..Default::default() };
        self.svc.create(CreateRequest { name: Some(name.into()), body, mac_address: None }).await.expect("create").0
    }

    pub(super) fn status(&self, id: &str) -> Status {
        self.svc.get(id).expect("container").record().state.status
    }

    pub(super) fn dir(&self, id: &str) -> std::path::PathBuf {
        Record::dir(&self.cfg.data_root, id)
    }

    /// The container events of `id` so far (actions; `exitCode` appended to `die`).
    pub(super) fn actions(&mut self, id: &str) -> Vec<String> {
        let mut out = vec![];
        while let Ok(ev) = self.seen.try_recv() {
            if ev.typ == "container" && ev.actor.id == id {
                match ev.actor.attributes.get("exitCode") {
                    Some(code) if ev.action == "die" => out.push(format!("die {code}")),
                    _ => out.push(ev.action.clone()),
                }
            }
        }
        out
    }
}

/// A HostConfig with a restart policy (`max` retries for on-failure).
pub(super) fn policy(name: RestartPolicyNameEnum, max: i64) -> HostConfig {
    HostConfig { restart_policy: Some(RestartPolicy { name: Some(name), maximum_retry_count: Some(max) }), ..Default::default() }
}

/// Waits up to 5 s for `f` to hold.
pub(super) async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The position of `line` in `calls` (panics when missing).
pub(super) fn at(calls: &[String], line: &str) -> usize {
    calls.iter().position(|c| c == line).unwrap_or_else(|| panic!("{line:?} not in {calls:?}"))
}
