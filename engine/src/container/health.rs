//! Healthchecks (`HEALTHCHECK` of the image, `--health-*`): the probe runs as an exec in the
//! running container (the shim's exec path) every interval; its results make `State.Health`
//! (status, failing streak, the last five results), `health_status: …` events, the `ps` status
//! suffix and the `health=` filter. dockerd's rules: failures in the start period do not count
//! while the container is `starting`; `retries` consecutive failures make it `unhealthy`; a
//! probe that outlives its timeout is killed and fails.
use super::record::Record;
use super::{ContainerError, ContainerService, Ctr};
use crate::runtime::{ExecSpec, Runtime};
use bollard_stubs::models::HealthConfig;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: i64 = 3;
/// dockerd keeps this many results and this much of each probe's output.
const MAX_LOG: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// One probe's result (`State.Health.Log[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<Probe>,
}

fn invalid(msg: &str) -> ContainerError {
    ContainerError::InvalidParam(msg.into())
}

/// dockerd's checks of a create's healthcheck.
pub fn validate(h: Option<&HealthConfig>) -> Result<(), ContainerError> {
    let Some(h) = h else { return Ok(()) };
    for (v, what) in
        [(h.interval, "Interval"), (h.timeout, "Timeout"), (h.start_period, "StartPeriod"), (h.start_interval, "StartInterval")]
    {
        if v.is_some_and(|v| v != 0 && v < 1_000_000) {
            return Err(invalid(&format!("{what} in Healthcheck cannot be less than 1ms")));
        }
    }
    if h.retries.is_some_and(|r| r < 0) {
        return Err(invalid("Retries in Healthcheck cannot be negative"));
    }
    if let Some(t) = h.test.as_ref().filter(|t| !t.is_empty()) {
        match t[0].as_str() {
            "NONE" | "CMD" | "CMD-SHELL" => {}
            other => return Err(invalid(&format!("unknown healthcheck type {other:?} (use CMD, CMD-SHELL or NONE)"))),
        }
    }
    Ok(())
}

/// The container's healthcheck: the create's over the image's, field by field (dockerd's merge:
/// an empty test and zero durations are inherited).
pub fn merge(user: Option<HealthConfig>, image: Option<HealthConfig>) -> Option<HealthConfig> {
    let Some(mut u) = user else { return image };
    let Some(i) = image else { return Some(u) };
    if u.test.as_ref().is_none_or(|t| t.is_empty()) {
        u.test = i.test;
    }
    let zero = |v: Option<i64>| v.is_none_or(|v| v == 0);
    if zero(u.interval) {
        u.interval = i.interval;
    }
    if zero(u.timeout) {
        u.timeout = i.timeout;
    }
    if zero(u.start_period) {
        u.start_period = i.start_period;
    }
    if zero(u.start_interval) {
        u.start_interval = i.start_interval;
    }
    if zero(u.retries) {
        u.retries = i.retries;
    }
    Some(u)
}

/// The probe's command line, or `None` when there is no check (`NONE`, nothing configured).
pub fn probe_args(h: &HealthConfig) -> Option<Vec<String>> {
    let t = h.test.as_ref()?;
    match t.first().map(String::as_str) {
        Some("CMD") if t.len() > 1 => Some(t[1..].to_vec()),
        Some("CMD-SHELL") if t.len() > 1 => Some(vec!["/bin/sh".into(), "-c".into(), t[1..].join(" ")]),
        _ => None,
    }
}

fn nanos(v: Option<i64>, default: Duration) -> Duration {
    v.filter(|v| *v > 0).map(|v| Duration::from_nanos(v as u64)).unwrap_or(default)
}

/// The health a container starts with, when it has a check.
pub fn initial(rec: &Record) -> Option<Health> {
    rec.config.healthcheck.as_ref().and_then(probe_args).map(|_| Health { status: "starting".into(), ..Default::default() })
}

/// `docker ps`'s suffix for a running container.
pub fn status_suffix(rec: &Record) -> String {
    match rec.state.health.as_ref().map(|h| h.status.as_str()) {
        Some("starting") => " (health: starting)".into(),
        Some(s) if !s.is_empty() => format!(" ({s})"),
        _ => String::new(),
    }
}

/// The `health=` filter's value of a container (`none` without a check).
pub fn filter_value(rec: &Record) -> &str {
    match rec.state.health.as_ref() {
        Some(h) if rec.config.healthcheck.as_ref().and_then(probe_args).is_some() => h.status.as_str(),
        _ => "none",
    }
}

/// Applies one probe's result (dockerd's `handleProbeResult`); returns the new status when it changed.
fn record_probe(h: &mut Health, p: Probe, in_start_period: bool, retries: i64) -> Option<String> {
    let old = h.status.clone();
    if p.exit_code == 0 {
        h.failing_streak = 0;
        h.status = "healthy".into();
    } else if !(h.status == "starting" && in_start_period) {
        h.failing_streak += 1;
        if h.failing_streak >= retries {
            h.status = "unhealthy".into();
        }
    }
    h.log.push(p);
    let excess = h.log.len().saturating_sub(MAX_LOG);
    h.log.drain(..excess);
    (h.status != old).then(|| h.status.clone())
}

impl<R: Runtime> ContainerService<R> {
    /// Runs the container's healthcheck (if it has one) until this run of it ends.
    pub(super) fn watch_health(self: &Arc<Self>, ctr: Arc<Ctr>) {
        let rec = ctr.record();
        let Some(cfg) = rec.config.healthcheck.clone() else { return };
        let Some(args) = probe_args(&cfg) else { return };
        let svc = self.clone();
        let mut gen = ctr.subscribe();
        let run = gen.borrow().starts;
        self.tasks.spawn_until_shutdown(async move {
            let interval = nanos(cfg.interval, DEFAULT_INTERVAL);
            let timeout = nanos(cfg.timeout, DEFAULT_TIMEOUT);
            let start_period = nanos(cfg.start_period, Duration::ZERO);
            let retries = cfg.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES);
            let started = std::time::Instant::now();
            loop {
                let ended = async {
                    let _ = gen.wait_for(|g| g.starts != run || !g.running).await;
                };
                tokio::select! {
                    _ = ended => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                let rec = ctr.record();
                if rec.state.paused {
                    continue;
                }
                let probe = svc.probe(&rec, &args, timeout).await;
                let in_start_period = started.elapsed() < start_period;
                let (changed, snapshot) = {
                    let g = gen.borrow();
                    if g.starts != run || !g.running {
                        return;
                    }
                    drop(g);
                    let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let h = r.state.health.get_or_insert_with(|| Health { status: "starting".into(), ..Default::default() });
                    let changed = record_probe(h, probe, in_start_period, retries);
                    (changed, r.clone())
                };
                if let Err(e) = svc.save_state(&snapshot) {
                    tracing::warn!(container = %snapshot.id, error = %e, "saving the health state failed");
                }
                if let Some(status) = changed {
                    svc.publish(&format!("health_status: {status}"), &snapshot, &[]);
                }
            }
        });
    }

    /// One run of the probe as an exec in the container, killed after `timeout`.
    async fn probe(&self, rec: &Record, args: &[String], timeout: Duration) -> Probe {
        let start = super::lifecycle::now();
        let spec = ExecSpec {
            exec_id: crate::ids::new_id(),
            args: args.to_vec(),
            env: rec.config.env.clone().unwrap_or_default(),
            cwd: rec.config.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into()),
            user: rec.config.user.clone().unwrap_or_default(),
            ..Default::default()
        };
        let done = |code: i64, output: String| Probe { start: start.clone(), end: super::lifecycle::now(), exit_code: code, output };
        let mut p = match self.runtime.exec(&rec.id, &self.state_dir(&rec.id), &spec).await {
            Ok(p) => p,
            Err(e) => return done(-1, e.to_string()),
        };
        let read_all = |s: Option<crate::runtime::FdStream>| async move {
            let mut buf = Vec::new();
            if let Some(mut s) = s {
                let _ = s.read_to_end(&mut buf).await;
            }
            buf
        };
        let (stdout, stderr, exit) = (p.stdout.take(), p.stderr.take(), p.exit);
        let read = async {
            let (mut out, err) = tokio::join!(read_all(stdout), read_all(stderr));
            out.extend_from_slice(&err);
            (out, exit.await.unwrap_or(-1))
        };
        match tokio::time::timeout(timeout, read).await {
            Ok((mut out, code)) => {
                out.truncate(MAX_OUTPUT);
                done(code as i64, String::from_utf8_lossy(&out).into_owned())
            }
            Err(_) => {
                // SAFETY: SIGKILL to the probe's pid (still ours: its exit was not collected).
                unsafe { libc::kill(p.pid as libc::pid_t, libc::SIGKILL) };
                done(-1, format!("Health check exceeded timeout ({}s)", timeout.as_secs_f64()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(code: i64) -> Probe {
        Probe { exit_code: code, ..Default::default() }
    }

    #[test]
    fn status_follows_dockerds_rules() {
        let mut h = Health { status: "starting".into(), ..Default::default() };
        assert_eq!(record_probe(&mut h, probe(1), true, 2), None);
        assert_eq!(h.failing_streak, 0);
        assert_eq!(record_probe(&mut h, probe(1), false, 2), None);
        assert_eq!(record_probe(&mut h, probe(1), false, 2).as_deref(), Some("unhealthy"));
        assert_eq!(record_probe(&mut h, probe(0), false, 2).as_deref(), Some("healthy"));
        assert_eq!(h.failing_streak, 0);
        for _ in 0..10 {
            record_probe(&mut h, probe(0), false, 2);
        }
        assert_eq!(h.log.len(), MAX_LOG);
    }

    #[test]
    fn merge_validate_and_args() {
        let img = HealthConfig {
            test: Some(vec!["CMD".into(), "true".into()]),
            interval: Some(5_000_000_000),
            retries: Some(2),
            ..Default::default()
        };
        let user = HealthConfig { interval: Some(1_000_000_000), ..Default::default() };
        let m = merge(Some(user), Some(img.clone())).unwrap();
        assert_eq!(
            (m.test.clone().unwrap(), m.interval, m.retries),
            (vec!["CMD".to_string(), "true".into()], Some(1_000_000_000), Some(2))
        );
        assert_eq!(probe_args(&m).unwrap(), ["true"]);
        let sh = HealthConfig { test: Some(vec!["CMD-SHELL".into(), "test -f /x".into()]), ..Default::default() };
        assert_eq!(probe_args(&sh).unwrap(), ["/bin/sh", "-c", "test -f /x"]);
        assert!(probe_args(&HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() }).is_none());
        assert!(validate(Some(&HealthConfig { interval: Some(10), ..Default::default() })).is_err());
        assert!(validate(Some(&HealthConfig { retries: Some(-1), ..Default::default() })).is_err());
        assert!(validate(Some(&img)).is_ok());
    }
}
