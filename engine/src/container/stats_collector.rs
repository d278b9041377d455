//! Recent CPU samples of containers, so that `GET /containers/{id}/stats?stream=0` answers at
//! once: its `precpu_stats` come from a sample taken earlier, its `cpu_stats` from now.
//!
//! dockerd's collector samples the containers that have a subscriber once a second, and a
//! `stream=0` request waits for two of those samples (1 to 2 s). Here the engine keeps a few
//! samples per container instead:
//! - one when it starts (the collector's task watches the `start` events), so the first request
//!   shows the CPU used since the start;
//! - one at every request, so the next request compares with it;
//! - one a second for the containers asked about in the last [`LINGER`], so a request then
//!   compares with about a second ago, as dockerd does.
//!
//! A `die` or `destroy` event drops a container's samples (its counters restart with its cgroup).
//! The task is owned here: [`StatsCollector::start`] spawns it on the service's [`Tasks`] (whose
//! shutdown ends it), [`StatsCollector::shutdown`] (or dropping the collector) cancels it. It holds no file open and leaves nothing on the host.
use crate::cgroups::{Cgroup, CpuUsage};
use crate::events::Event;
use crate::tasks::Tasks;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Period of the samples taken while someone asks for stats (dockerd's collection period).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How long after a request the containers asked about are still sampled.
pub const LINGER: Duration = Duration::from_secs(30);
/// The previous sample of a request is the newest one at least this old (`/proc/stat` counts in
/// 10 ms ticks: shorter windows make the CPU percentage coarse), else the oldest one kept.
pub const MIN_WINDOW: Duration = Duration::from_millis(500);
/// Samples kept per container.
const KEPT: usize = 4;

/// The CPU side of one stats frame, taken at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSample {
    pub at: Instant,
    /// RFC 3339 with nanoseconds: the frame's `read` (or `preread`, for the next one).
    pub read: String,
    pub cpu: CpuUsage,
    /// The host's CPU time (`system_cpu_usage`).
    pub system_ns: u64,
}

impl CpuSample {
    /// Samples `cg` now (a few small reads of cgroupfs and `/proc/stat`).
    pub fn take(cg: Option<&Cgroup>) -> Self {
        CpuSample {
            at: Instant::now(),
            read: now_rfc3339(),
            cpu: cg.map(Cgroup::cpu_usage).unwrap_or_default(),
            system_ns: crate::cgroups::system_cpu_ns(&std::fs::read_to_string("/proc/stat").unwrap_or_default()),
        }
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[derive(Default)]
struct Entry {
    /// Oldest first.
    samples: VecDeque<Arc<CpuSample>>,
    /// The last request for this container's stats.
    asked: Option<Instant>,
}

#[derive(Default)]
struct Shared {
    entries: Mutex<HashMap<String, Entry>>,
    /// A request arrived: the task starts sampling if it was idle.
    wake: Notify,
}

impl Shared {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, id: &str, s: Arc<CpuSample>) {
        let mut m = self.entries();
        let e = m.entry(id.to_string()).or_default();
        e.samples.push_back(s);
        while e.samples.len() > KEPT {
            e.samples.pop_front();
        }
    }

    /// Containers asked about within [`LINGER`] of `now`.
    fn asked_since(&self, now: Instant) -> Vec<String> {
        let m = self.entries();
        m.iter().filter(|(_, e)| e.asked.is_some_and(|a| now.duration_since(a) < LINGER)).map(|(id, _)| id.clone()).collect()
    }
}

/// Keeps a few recent CPU samples per container (see the module docs).
pub struct StatsCollector {
    cgroup_parent: String,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<Option<()>>>>,
}

impl StatsCollector {
    /// A collector for containers whose cgroups live at `<cgroup_parent>/<id>`.
    pub fn new(cgroup_parent: &str) -> Self {
        StatsCollector {
            cgroup_parent: cgroup_parent.trim_end_matches('/').to_string(),
            shared: Default::default(),
            cancel: CancellationToken::new(),
            task: Mutex::new(None),
        }
    }

    /// Spawns the task: a baseline sample at every start in `events`, and one a second while
    /// containers are asked about. `running` are the containers already running (after an engine
    /// restart); they get a baseline now.
    pub fn start(&self, tasks: &Tasks, events: broadcast::Receiver<Event>, running: Vec<String>) {
        let task = Task { cgroup_parent: self.cgroup_parent.clone(), shared: self.shared.clone(), cancel: self.cancel.clone() };
        let handle = tasks.spawn_until_shutdown(async move {
            if !running.is_empty() {
                let t = task.clone();
                let _ = tokio::task::spawn_blocking(move || t.sample_all(&running)).await;
            }
            task.run(events).await
        });
        *self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handle);
    }

    /// Stops the task and waits for it.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let handle = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }

    /// The sample a frame taken now compares with, for container `id`: the newest one at least
    /// [`MIN_WINDOW`] old, else the oldest one, never one from before a counter reset. `None`
    /// when nothing is kept. Marks the container as asked about.
    pub fn previous(&self, id: &str, now: &CpuSample) -> Option<Arc<CpuSample>> {
        let found = {
            let mut m = self.shared.entries();
            let e = m.entry(id.to_string()).or_default();
            e.asked = Some(now.at);
            pick(&e.samples, now)
        };
        self.shared.wake.notify_one();
        found
    }

    /// Keeps `s` as a sample of `id` (each request's own sample serves the next one).
    pub fn record(&self, id: &str, s: Arc<CpuSample>) {
        self.shared.push(id, s);
    }

    /// How many samples are kept for `id` (tests).
    pub fn kept(&self, id: &str) -> usize {
        self.shared.entries().get(id).map_or(0, |e| e.samples.len())
    }
}

impl Drop for StatsCollector {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// See [`StatsCollector::previous`].
fn pick(samples: &VecDeque<Arc<CpuSample>>, now: &CpuSample) -> Option<Arc<CpuSample>> {
    let usable = |s: &&Arc<CpuSample>| s.at <= now.at && s.cpu.total_ns <= now.cpu.total_ns && s.system_ns <= now.system_ns;
    samples.iter().rev().filter(usable).find(|s| now.at.duration_since(s.at) >= MIN_WINDOW).or_else(|| samples.iter().find(usable)).cloned()
}

#[derive(Clone)]
struct Task {
    cgroup_parent: String,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl Task {
    fn cgroup(&self, id: &str) -> Option<Cgroup> {
        Cgroup::host(&format!("{}/{id}", self.cgroup_parent)).ok().filter(Cgroup::exists)
    }

    /// One sample of each of `ids` (blocking reads; run it off the runtime's workers).
    fn sample_all(&self, ids: &[String]) {
        for id in ids {
            if let Some(cg) = self.cgroup(id) {
                self.shared.push(id, Arc::new(CpuSample::take(Some(&cg))));
            }
        }
    }

    async fn run(self, mut events: broadcast::Receiver<Event>) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let asked = self.shared.asked_since(Instant::now());
            let active = !asked.is_empty();
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                ev = events.recv() => match ev {
                    Ok(ev) => self.on_event(&ev),
                    Err(broadcast::error::RecvError::Lagged(n)) => tracing::debug!(missed = n, "stats collector lagged behind events"),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick(), if active => {
                    let t0 = Instant::now();
                    let t = self.clone();
                    let n = asked.len();
                    let _ = tokio::task::spawn_blocking(move || t.sample_all(&asked)).await;
                    tracing::trace!(containers = n, us = crate::micros_since(t0), "stats sampled");
                }
                _ = self.shared.wake.notified(), if !active => tick.reset(),
            }
        }
    }

    fn on_event(&self, ev: &Event) {
        if ev.typ != "container" {
            return;
        }
        let id = &ev.actor.id;
        match ev.action.as_str() {
            // A baseline: four small reads of cgroupfs and one of /proc/stat.
            "start" => {
                self.shared.entries().remove(id);
                self.sample_all(std::slice::from_ref(id));
            }
            "die" | "destroy" => {
                self.shared.entries().remove(id);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: Instant, total: u64, system: u64) -> Arc<CpuSample> {
        Arc::new(CpuSample { at, read: String::new(), cpu: CpuUsage { total_ns: total, ..Default::default() }, system_ns: system })
    }

    #[test]
    fn picks_the_newest_sample_old_enough_else_the_oldest() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let kept: VecDeque<_> = [s(at(0), 10, 100), s(at(1000), 20, 200), s(at(1800), 30, 300)].into();
        // Now at 2 s: the one at 1.8 s is too recent; the one at 1 s is taken.
        assert_eq!(pick(&kept, &s(at(2000), 40, 400)).unwrap().at, at(1000));
        // Now at 2.5 s: the newest is old enough.
        assert_eq!(pick(&kept, &s(at(2500), 40, 400)).unwrap().at, at(1800));
        // Now at 0.2 s (only the first is old enough to be usable at all): the oldest.
        let young: VecDeque<_> = [s(at(0), 10, 100), s(at(100), 12, 110)].into();
        assert_eq!(pick(&young, &s(at(200), 13, 120)).unwrap().at, at(0));
        // Counters that went back (a restart) are never compared with.
        assert!(pick(&kept, &s(at(3000), 5, 500)).is_none());
        assert!(pick(&VecDeque::new(), &s(at(3000), 5, 500)).is_none());
    }

    #[tokio::test]
    async fn requests_keep_samples_and_events_drop_them() {
        let c = StatsCollector::new("/flotilla-test-none/");
        let bus = crate::events::EventBus::default();
        c.start(&Tasks::new("test"), bus.subscribe(), vec![]);
        let t0 = Instant::now();
        assert!(c.previous("abc", &s(t0, 1, 1)).is_none());
        for i in 0..6 {
            c.record("abc", s(t0 + Duration::from_millis(i * 600), i, i));
        }
        assert_eq!(c.kept("abc"), KEPT);
        let now = s(t0 + Duration::from_millis(3300), 10, 10);
        assert_eq!(c.previous("abc", &now).unwrap().at, t0 + Duration::from_millis(2400));
        // A die event drops them (the cgroup's counters restart with the next start).
        bus.publish("container", "die", "abc", &[]);
        for _ in 0..100 {
            if c.kept("abc") == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(c.kept("abc"), 0);
        c.shutdown().await;
        assert!(c.task.lock().unwrap().is_none());
    }
}
