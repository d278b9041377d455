//! Restart policies (`--restart no|on-failure[:N]|always|unless-stopped`) as dockerd's restart
//! manager applies them: after an exit the container is started again after a back-off that
//! starts at 100 ms and doubles up to a minute (reset when the run lasted 10 s or more); a
//! user's stop or kill ends it; at engine start, containers whose policy wants them up come back
//! (and running ones are reattached, or recorded as exited if they ended meanwhile).
use super::lifecycle::StartBy;
use super::record::{Record, ZERO_TIME};
use super::{ContainerError, ContainerService, Ctr};
use crate::runtime::Runtime;
use bollard_stubs::models::HostConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
const RESET_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    No,
    Always,
    UnlessStopped,
    /// With the maximum retry count (0 = unlimited).
    OnFailure(i64),
}

pub fn policy(hc: &HostConfig) -> Policy {
    let Some(rp) = &hc.restart_policy else { return Policy::No };
    match rp.name.map(|n| n.to_string()).as_deref() {
        Some("always") => Policy::Always,
        Some("unless-stopped") => Policy::UnlessStopped,
        Some("on-failure") => Policy::OnFailure(rp.maximum_retry_count.unwrap_or(0)),
        _ => Policy::No,
    }
}

/// dockerd's checks of a restart policy.
pub fn validate(hc: &HostConfig) -> Result<(), ContainerError> {
    let Some(rp) = &hc.restart_policy else { return Ok(()) };
    let name = rp.name.map(|n| n.to_string()).unwrap_or_default();
    let max = rp.maximum_retry_count.unwrap_or(0);
    let invalid = |m: String| Err(ContainerError::InvalidParam(m));
    match name.as_str() {
        "" => {}
        "no" | "always" | "unless-stopped" => {
            if max != 0 {
                return invalid(format!("maximum retry count cannot be used with restart policy '{name}'"));
            }
        }
        "on-failure" => {
            if max < 0 {
                return invalid("maximum retry count cannot be negative".into());
            }
        }
        other => return invalid(format!("invalid restart policy '{other}'")),
    }
    if hc.auto_remove == Some(true) && !matches!(name.as_str(), "" | "no") {
        return invalid("can't create 'AutoRemove' container with restart policy".into());
    }
    Ok(())
}

/// The policy name of a create body before it is parsed into the API types (which know only
/// the valid names): an unknown one gets dockerd's answer, not a JSON error.
pub fn check_policy_name(body: &serde_json::Value) -> Result<(), ContainerError> {
    let name = body.pointer("/HostConfig/RestartPolicy/Name").and_then(|n| n.as_str()).unwrap_or("");
    match name {
        "" | "no" | "always" | "unless-stopped" | "on-failure" => Ok(()),
        other => Err(ContainerError::InvalidParam(format!("invalid restart policy '{other}'"))),
    }
}

/// Whether a user's stop (`manually_stopped`) changes what happens to the container: it does
/// under a restart policy; without one nothing ever restarts it.
pub fn stop_matters(hc: &HostConfig) -> bool {
    policy(hc) != Policy::No
}

/// Whether a container that just exited with `code` is started again.
pub fn should_restart(p: Policy, code: i32, manually_stopped: bool, restart_count: u32) -> bool {
    if manually_stopped {
        return false;
    }
    match p {
        Policy::No => false,
        Policy::Always | Policy::UnlessStopped => true,
        Policy::OnFailure(max) => code != 0 && (max == 0 || (restart_count as i64) < max),
    }
}

/// Whether the record's policy restarts it after the exit it now holds.
pub(super) fn restart_wanted(rec: &Record) -> bool {
    should_restart(policy(&rec.host_config), rec.state.exit_code, rec.manually_stopped, rec.restart_count)
}

/// The next back-off after `prev`, given how long the last run lasted.
pub fn next_delay(prev: Option<Duration>, ran_for: Duration) -> Duration {
    match prev {
        Some(p) if ran_for < RESET_AFTER => (p * 2).min(MAX_DELAY),
        _ => FIRST_DELAY,
    }
}

struct Pending {
    delay: Duration,
    cancel: Option<CancellationToken>,
}

/// Back-off state per container (in memory: an engine restart starts over at 100 ms).
#[derive(Default)]
pub struct Restarts {
    by_id: Mutex<HashMap<String, Pending>>,
}

fn ran_for(rec: &Record, finished_at: &str) -> Duration {
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    match (t(&rec.state.started_at), t(finished_at)) {
        (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

impl<R: Runtime> ContainerService<R> {
    /// Saves the record unless the container has been removed meanwhile (a late save would
    /// bring its directory back).
    fn save_if_present(&self, rec: &Record) {
        if self.get(&rec.id).is_ok() {
            if let Err(e) = self.save(rec) {
                tracing::warn!(container = %rec.id, error = %e, "saving the restart state failed");
            }
        }
    }

    /// After an exit: schedules a start if the policy wants one. Returns true if it did.
    pub(super) fn schedule_restart(self: &Arc<Self>, ctr: &Arc<Ctr>, rec: &Record) -> bool {
        if !restart_wanted(rec) {
            self.restarts.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&rec.id);
            return false;
        }
        // A child of the service's token: shutdown ends the backoff too.
        let token = self.tasks.token();
        let delay = {
            let mut m = self.restarts.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let prev = m.get(&rec.id).map(|p| p.delay);
            let delay = next_delay(prev, ran_for(rec, &rec.state.finished_at));
            m.insert(rec.id.clone(), Pending { delay, cancel: Some(token.clone()) });
            delay
        };
        let snapshot = {
            let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            r.state.restarting = true;
            r.clone()
        };
        self.save_if_present(&snapshot);
        tracing::info!(container = %rec.id, ms = delay.as_millis() as u64, "restarting by policy");
        let svc = self.clone();
        let ctr = ctr.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            svc.auto_start(&ctr).await;
        });
        true
    }

    async fn auto_start(self: &Arc<Self>, ctr: &Arc<Ctr>) {
        let id = ctr.id();
        {
            let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !r.state.restarting || r.running() {
                return;
            }
            r.restart_count += 1;
        }
        if let Some(p) = self.restarts.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(&id) {
            p.cancel = None;
        }
        if let Err(e) = self.start_with(&id, StartBy::Backoff).await {
            if matches!(e, ContainerError::NotModified(_)) {
                return; // started meanwhile
            }
            tracing::warn!(container = %id, error = %e, "restart by policy failed");
            let rec = {
                let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                r.state.restarting = false;
                r.clone()
            };
            self.save_if_present(&rec);
            if self.get(&id).is_ok() {
                self.schedule_restart(ctr, &rec);
            }
        }
    }

    /// Ends a pending restart (the user stopped, killed or removed the container). With
    /// `manual`, the container also stays down for `unless-stopped`/`always` (until started).
    pub(super) fn cancel_restart(&self, ctr: &Ctr, manual: bool) -> bool {
        let id = ctr.id();
        let was = self.restarts.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
        if let Some(t) = was.and_then(|p| p.cancel) {
            t.cancel();
        }
        let (restarting, durable_change, snapshot) = {
            let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let restarting = r.state.restarting;
            r.state.restarting = false;
            let newly_stopped = manual && !r.manually_stopped;
            if manual {
                r.manually_stopped = true;
            }
            (restarting, restarting || (newly_stopped && stop_matters(&r.host_config)), r.clone())
        };
        // Only a change that must survive a power loss costs an fsync: nothing changed on the
        // path of every `docker start` and `docker rm` of a container without a restart policy.
        // (The in-memory flag reaches the disk with the next save of the record.)
        if durable_change {
            self.save_if_present(&snapshot);
        }
        restarting
    }

    /// After an engine restart: records the exit of a container that ended meanwhile (or
    /// whose shim vanished), else watches it again.
    pub(super) async fn reattach(self: &Arc<Self>, ctr: Arc<Ctr>) {
        let id = ctr.id();
        let state = tokio::time::timeout(Duration::from_secs(2), self.runtime.state(&id, &self.state_dir(&id))).await;
        match state {
            Ok(Ok(Some(crate::runtime::ShimState { exit: Some(exit), .. }))) => {
                tracing::info!(container = %id, code = exit.code, "exited while the engine was away");
                self.on_exit(&ctr, exit).await;
            }
            Ok(Ok(None)) => {
                tracing::warn!(container = %id, "container shim is gone and left no exit status");
                self.on_exit(&ctr, crate::runtime::Exit { code: 255, oom_killed: false, finished_at: super::lifecycle::now() }).await;
            }
            _ => {
                tracing::info!(container = %id, "reattaching to running container");
                self.watch_exit(ctr.clone());
                self.watch_health(ctr);
            }
        }
    }

    /// `docker restart`: stop (if running), start, and a `restart` event.
    pub async fn restart(self: &Arc<Self>, key: &str, timeout: Option<i64>) -> Result<(), ContainerError> {
        match self.stop(key, timeout).await {
            Ok(()) | Err(ContainerError::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        self.start(key).await?;
        let rec = self.get(key)?.record();
        self.publish("restart", &rec, &[]);
        Ok(())
    }

    /// At engine start: containers that were waiting to restart, or whose policy keeps them
    /// up (always; unless-stopped unless the user stopped them), are started again.
    pub(super) fn restore_policies(self: &Arc<Self>) {
        for ctr in self.all() {
            let rec = ctr.record();
            if rec.running() || rec.state.started_at == ZERO_TIME {
                continue;
            }
            if self.restarts.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(&rec.id) {
                continue; // already scheduled (it exited while the engine was away)
            }
            let wanted = rec.state.restarting
                || match policy(&rec.host_config) {
                    Policy::Always => true,
                    Policy::UnlessStopped => !rec.manually_stopped,
                    _ => false,
                };
            if !wanted {
                continue;
            }
            let svc = self.clone();
            self.tasks.spawn(async move {
                tracing::info!(container = %rec.id, "starting again by its restart policy");
                if let Err(e) = svc.start_with(&rec.id, StartBy::EngineStart).await {
                    tracing::warn!(container = %rec.id, error = %e, "restart by policy failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::{RestartPolicy, RestartPolicyNameEnum};

    fn hc(name: RestartPolicyNameEnum, max: i64) -> HostConfig {
        HostConfig { restart_policy: Some(RestartPolicy { name: Some(name), maximum_retry_count: Some(max) }), ..Default::default() }
    }

    #[test]
    fn policies_decide_like_dockerd() {
        assert_eq!(policy(&HostConfig::default()), Policy::No);
        let on3 = policy(&hc(RestartPolicyNameEnum::ON_FAILURE, 3));
        assert_eq!(on3, Policy::OnFailure(3));
        assert!(should_restart(on3, 1, false, 2));
        assert!(!should_restart(on3, 1, false, 3));
        assert!(!should_restart(on3, 0, false, 0));
        assert!(should_restart(Policy::OnFailure(0), 2, false, 100));
        assert!(should_restart(Policy::Always, 0, false, 0));
        assert!(!should_restart(Policy::Always, 0, true, 0));
        assert!(!should_restart(Policy::No, 1, false, 0));
    }

    #[test]
    fn a_stop_matters_only_under_a_restart_policy() {
        assert!(!stop_matters(&HostConfig::default()));
        assert!(!stop_matters(&hc(RestartPolicyNameEnum::NO, 0)));
        assert!(stop_matters(&hc(RestartPolicyNameEnum::UNLESS_STOPPED, 0)));
        assert!(stop_matters(&hc(RestartPolicyNameEnum::ALWAYS, 0)));
        assert!(stop_matters(&hc(RestartPolicyNameEnum::ON_FAILURE, 2)));
    }

    #[test]
    fn back_off_doubles_and_resets() {
        let d1 = next_delay(None, Duration::ZERO);
        assert_eq!(d1, Duration::from_millis(100));
        assert_eq!(next_delay(Some(d1), Duration::from_secs(1)), Duration::from_millis(200));
        assert_eq!(next_delay(Some(Duration::from_secs(50)), Duration::ZERO), MAX_DELAY);
        assert_eq!(next_delay(Some(Duration::from_secs(50)), Duration::from_secs(11)), FIRST_DELAY);
    }

    #[test]
    fn validation() {
        assert!(validate(&hc(RestartPolicyNameEnum::ALWAYS, 2)).is_err());
        assert!(validate(&hc(RestartPolicyNameEnum::ON_FAILURE, -1)).is_err());
        assert!(validate(&hc(RestartPolicyNameEnum::ON_FAILURE, 2)).is_ok());
        let bogus = serde_json::json!({"HostConfig": {"RestartPolicy": {"Name": "bogus"}}});
        assert_eq!(check_policy_name(&bogus).unwrap_err().to_string(), "invalid restart policy 'bogus'");
        assert!(check_policy_name(&serde_json::json!({"HostConfig": {"RestartPolicy": {"Name": "always"}}})).is_ok());
        assert!(check_policy_name(&serde_json::json!({})).is_ok());
        let mut h = hc(RestartPolicyNameEnum::ALWAYS, 0);
        h.auto_remove = Some(true);
        assert!(validate(&h).is_err());
    }
}
