//! Restart policies driven by the fake runtime's exits.
use super::super::record::Status;
use super::{policy, until, Harness};
use bollard_stubs::models::RestartPolicyNameEnum;
use std::time::Duration;

#[tokio::test]
async fn on_failure_2_restarts_twice_then_stays_down() {
    let mut h = Harness::new().await;
    let id = h.create("rs-onfail", policy(RestartPolicyNameEnum::ON_FAILURE, 2)).await;
    h.rt.script_exits(&[1, 1, 1, 1]);
    h.svc.start(&id).await.unwrap();
    until("two restarts", || {
        let r = h.svc.get(&id).unwrap().record();
        r.restart_count == 2 && r.state.status == Status::Exited && !r.state.restarting
    })
    .await;
    // The backoff was 100 ms then 200 ms: a third restart would come within 400 ms.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = h.svc.get(&id).unwrap().record();
    assert_eq!((r.restart_count, r.state.status, r.state.exit_code), (2, Status::Exited, 1));
    assert_eq!(h.rt.count(&format!("start {id}")), 3);
    assert_eq!(h.actions(&id), ["create", "start", "die 1", "start", "die 1", "start", "die 1"]);
    assert!(!h.net.has_sandbox(&id) && !h.fs.mounted(&id));
}

#[tokio::test]
async fn on_failure_leaves_a_clean_exit_alone() {
    let h = Harness::new().await;
    let id = h.create("rs-clean", policy(RestartPolicyNameEnum::ON_FAILURE, 5)).await;
    h.rt.script_exits(&[0]);
    h.svc.start(&id).await.unwrap();
    until("the exit", || h.status(&id) == Status::Exited).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.rt.count(&format!("start {id}")), 1);
    assert_eq!(h.svc.get(&id).unwrap().record().restart_count, 0);
}

#[tokio::test]
async fn always_restarts_until_the_user_stops_it() {
    let mut h = Harness::new().await;
    let id = h.create("rs-always", policy(RestartPolicyNameEnum::ALWAYS, 0)).await;
    // Exits twice (even cleanly), then the third run keeps running.
    h.rt.script_exits(&[0, 2]);
    h.svc.start(&id).await.unwrap();
    until("the third run", || h.rt.count(&format!("start {id}")) == 3 && h.status(&id) == Status::Running).await;
    assert_eq!(h.svc.get(&id).unwrap().record().restart_count, 2);

    h.svc.stop(&id, Some(5)).await.expect("stop");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = h.svc.get(&id).unwrap().record();
    assert_eq!((r.state.status, r.state.restarting), (Status::Exited, false));
    assert!(r.manually_stopped);
    assert_eq!(h.rt.count(&format!("start {id}")), 3, "restarted after a user's stop");
    let acts = h.actions(&id);
    assert_eq!(acts.iter().filter(|a| *a == "start").count(), 3);
    assert_eq!(acts.last().unwrap(), "stop");

    // A user's start resets the count.
    h.svc.start(&id).await.unwrap();
    assert_eq!(h.svc.get(&id).unwrap().record().restart_count, 0);
}

#[tokio::test]
async fn a_stop_during_the_backoff_cancels_the_restart() {
    let h = Harness::new().await;
    let id = h.create("rs-backoff", policy(RestartPolicyNameEnum::ALWAYS, 0)).await;
    // Each run exits at once: with the backoff doubling, it is soon waiting between runs.
    h.rt.exit_on_start.lock().unwrap().replace(1);
    h.svc.start(&id).await.unwrap();
    until("a restart pending", || h.svc.get(&id).unwrap().record().state.restarting).await;
    h.svc.stop(&id, None).await.expect("stop while restarting");
    let starts = h.rt.count(&format!("start {id}"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = h.svc.get(&id).unwrap().record();
    assert!(!r.state.restarting && !r.running());
    assert_eq!(h.rt.count(&format!("start {id}")), starts, "restarts go on after stop");
    // Removable now without force.
    h.svc.remove(&id, false).await.expect("remove");
}

#[tokio::test]
async fn shutdown_ends_a_pending_restart() {
    let h = Harness::new().await;
    let id = h.create("rs-shutdown", policy(RestartPolicyNameEnum::ALWAYS, 0)).await;
    h.rt.exit_on_start.lock().unwrap().replace(1);
    h.svc.start(&id).await.unwrap();
    until("a restart pending", || h.svc.get(&id).unwrap().record().state.restarting).await;
    tokio::time::timeout(Duration::from_secs(3), h.svc.shutdown()).await.expect("shutdown hangs");
    assert!(h.svc.tasks.is_empty());
    let starts = h.rt.count(&format!("start {id}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.rt.count(&format!("start {id}")), starts, "a restart ran after shutdown");
}
