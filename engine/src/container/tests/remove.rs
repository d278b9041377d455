//! Removal answers before the runtime's cleanup, which still happens (in a task of the
//! service, awaited at shutdown, or swept at the next start if the engine died first).
use super::super::record::Status;
use super::super::{ContainerError, WaitCondition};
use super::{until, Harness};
use bollard_stubs::models::HostConfig;
use std::time::Duration;

#[tokio::test]
async fn removal_answers_before_the_runtime_delete_which_still_happens() {
    let mut h = Harness::new().await;
    let id = h.create("rm-early", HostConfig::default()).await;
    let gate = h.rt.hold_deletes();

    tokio::time::timeout(Duration::from_secs(2), h.svc.remove(&id, false)).await.expect("rm waited for the runtime").expect("rm");
    assert!(matches!(h.svc.get(&id), Err(ContainerError::NotFound(_))));
    assert!(!h.dir(&id).exists(), "the container's directory is left");
    assert_eq!(h.actions(&id), ["create", "destroy"]);
    // The name is free at once.
    let again = h.create("rm-early", HostConfig::default()).await;
    assert_ne!(again, id);
    // The delete has begun and not ended.
    until("the delete begun", || h.rt.count(&format!("delete {id}")) == 1).await;
    assert!(h.rt.deleted().is_empty());

    // Shutdown waits for it.
    let svc = h.svc.clone();
    let shutdown = tokio::spawn(async move { svc.shutdown().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!shutdown.is_finished(), "shutdown did not wait for the runtime cleanup");
    gate.send_replace(true);
    tokio::time::timeout(Duration::from_secs(2), shutdown).await.expect("shutdown").unwrap();
    assert_eq!(h.rt.deleted(), [id]);
}

#[tokio::test]
async fn run_rm_is_answered_removed_before_the_runtime_delete() {
    let mut h = Harness::new().await;
    let id = h.create("rm-auto-early", HostConfig { auto_remove: Some(true), ..Default::default() }).await;
    let removed = h.svc.wait(&id, WaitCondition::Removed).await.expect("wait");
    let gate = h.rt.hold_deletes();
    h.rt.script_exits(&[0]);
    h.svc.start(&id).await.expect("start");
    let g = tokio::time::timeout(Duration::from_secs(2), removed).await.expect("removal waited for the runtime");
    assert!(g.removed);
    assert!(!h.net.has_sandbox(&id) && !h.fs.mounted(&id), "the network or the rootfs is still held");
    assert_eq!(h.actions(&id), ["create", "start", "die 0", "destroy"]);
    until("the delete begun", || h.rt.count(&format!("delete {id}")) == 1).await;
    assert!(h.rt.deleted().is_empty());
    gate.send_replace(true);
    until("the delete done", || h.rt.deleted() == [id.clone()]).await;
    // Once only: the exit left it to the removal.
    assert_eq!(h.rt.count(&format!("delete {id}")), 1);
    tokio::time::timeout(Duration::from_secs(2), h.svc.shutdown()).await.expect("shutdown");
}

#[tokio::test]
async fn a_run_rm_container_whose_removal_fails_keeps_its_exit_on_disk() {
    let mut h = Harness::new().await;
    let id = h.create("rm-auto-fails", HostConfig { auto_remove: Some(true), ..Default::default() }).await;
    // The exit's unmount and the removal's: the rootfs stays mounted, so the removal fails.
    h.fs.fail_unmounts(2);
    h.rt.script_exits(&[3]);
    h.svc.start(&id).await.expect("start");
    let file = super::super::record::Record::file(&h.cfg.data_root, &id);
    let on_disk = || -> Option<super::super::record::Record> { serde_json::from_slice(&std::fs::read(&file).ok()?).ok() };
    until("the exit on disk", || on_disk().is_some_and(|r| r.state.status == Status::Exited)).await;
    assert_eq!(on_disk().map(|r| r.state.exit_code), Some(3));
    assert_eq!(h.status(&id), Status::Exited);
    assert_eq!(h.actions(&id), ["create", "start", "die 3"]);
    h.svc.shutdown().await;
}

#[tokio::test]
async fn a_run_rm_container_that_ended_while_the_engine_was_away_is_removed_at_start() {
    let h = Harness::new().await;
    let id = h.create("rm-auto-away", HostConfig { auto_remove: Some(true), ..Default::default() }).await;
    h.svc.start(&id).await.expect("start");
    // The engine goes away with the container running; it exits meanwhile.
    h.svc.shutdown().await;
    h.rt.exit(&id, 0);
    let again = h.reopen().await;
    until("the removal", || matches!(again.get(&id), Err(ContainerError::NotFound(_)))).await;
    assert!(!h.dir(&id).exists(), "the container's directory is left");
    again.shutdown().await;
}

#[tokio::test]
async fn a_second_removal_that_waited_finds_the_container_gone() {
    let mut h = Harness::new().await;
    let id = h.create("rm-twice", HostConfig::default()).await;
    let (a, b) = tokio::join!(h.svc.remove(&id, false), h.svc.remove(&id, false));
    assert!(a.is_ok() != b.is_ok(), "one removal, not two: {a:?} {b:?}");
    assert!(matches!(a.err().or(b.err()), Some(ContainerError::NotFound(_))));
    assert_eq!(h.actions(&id), ["create", "destroy"]);
    h.svc.shutdown().await;
}

#[tokio::test]
async fn a_reopened_service_sweeps_the_runtime_leftovers_of_removed_containers() {
    let h = Harness::new().await;
    let kept = h.create("rm-kept", HostConfig::default()).await;
    h.svc.shutdown().await;
    // As if the engine died after a removal's answer: the state dir of a container with no record.
    let orphan = "0123456789abcdef";
    std::fs::create_dir_all(h.cfg.exec_root.join(orphan)).unwrap();
    std::fs::create_dir_all(h.cfg.exec_root.join("runtime")).unwrap();
    // A container whose record cannot be read is still someone's: its state dir stays.
    let unreadable = "fedcba9876543210".repeat(4);
    let file = super::super::record::Record::file(&h.cfg.data_root, &unreadable);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"{").unwrap();
    std::fs::create_dir_all(h.cfg.exec_root.join(&unreadable[..16])).unwrap();
    let before = h.rt.calls().len();

    let again = h.reopen().await;
    let calls = h.rt.calls()[before..].to_vec();
    assert!(calls.contains(&format!("delete {orphan}")), "not swept: {calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("delete ") && !c.ends_with(orphan)), "swept too much: {calls:?}");
    assert!(again.get(&kept).is_ok());
    again.shutdown().await;
}
