//! create → start → stop → remove, exits, force removal, engine restarts and shutdown.
use super::super::record::Status;
use super::super::{ContainerError, WaitCondition};
use super::{at, until, Harness};
use bollard_stubs::models::HostConfig;
use std::time::Duration;

#[tokio::test]
async fn create_start_stop_remove_in_order() {
    let mut h = Harness::new().await;
    let id = h.create("lc-order", HostConfig::default()).await;
    assert_eq!(h.status(&id), Status::Created);
    assert!(h.rt.calls().is_empty(), "create must not reach the runtime");

    h.svc.start(&id).await.expect("start");
    let rec = h.svc.get("lc-order").unwrap().record();
    assert_eq!(rec.state.status, Status::Running);
    assert_eq!(rec.state.pid, 4242);
    assert_eq!(h.rt.spec(&id).unwrap().args, ["/bin/app", "--flag"]);
    assert!(h.net.has_sandbox(&id) && h.fs.mounted(&id));
    assert_eq!(h.net.calls(), [format!("setup {id}"), format!("ready {id}")].map(String::from));
    let calls = h.rt.calls();
    assert!(at(&calls, &format!("create {id}")) < at(&calls, &format!("start {id}")));

    h.svc.stop(&id, Some(5)).await.expect("stop");
    let rec = h.svc.get(&id).unwrap().record();
    assert_eq!((rec.state.status, rec.state.exit_code), (Status::Exited, 128 + libc::SIGTERM));
    // The network and the rootfs are released once the process has exited.
    assert!(!h.net.has_sandbox(&id) && !h.fs.mounted(&id));
    let calls = h.rt.calls();
    assert!(at(&calls, &format!("signal {id} {}", libc::SIGTERM)) < at(&calls, &format!("delete {id}")));
    assert!(matches!(h.svc.stop(&id, None).await, Err(ContainerError::NotModified(_))));

    h.svc.remove(&id, false).await.expect("remove");
    assert!(matches!(h.svc.get(&id), Err(ContainerError::NotFound(_))));
    assert!(!h.dir(&id).exists(), "the container's directory is left");
    assert_eq!(h.fs.calls().last().unwrap(), &format!("unmount {id}"));
    assert_eq!(h.actions(&id), ["create", "start", "die 143", "stop", "destroy"]);
}

#[tokio::test]
async fn an_exit_is_recorded_with_its_code() {
    let mut h = Harness::new().await;
    let id = h.create("lc-exit", HostConfig::default()).await;
    let done = h.svc.wait(&id, WaitCondition::NextExit).await.unwrap();
    h.rt.script_exits(&[3]);
    h.svc.start(&id).await.expect("start");
    let g = tokio::time::timeout(Duration::from_secs(5), done).await.expect("no exit");
    assert_eq!((g.exit_code, g.running), (3, false));
    let rec = h.svc.get(&id).unwrap().record();
    assert_eq!((rec.state.status, rec.state.exit_code, rec.state.pid), (Status::Exited, 3, 0));
    assert!(!h.net.has_sandbox(&id) && !h.fs.mounted(&id));
    assert_eq!(h.actions(&id), ["create", "start", "die 3"]);
    // Started again: a second run with its own exit.
    h.rt.exit_on_start.lock().unwrap().replace(5);
    h.svc.start(&id).await.expect("start again");
    until("the second exit", || {
        let r = h.svc.get(&id).unwrap().record();
        !r.running() && r.state.exit_code == 5
    })
    .await;
    assert_eq!(h.actions(&id), ["start", "die 5"]);
    assert_eq!(h.rt.count("start "), 2);
}

#[tokio::test]
async fn remove_of_a_running_container_needs_force() {
    let mut h = Harness::new().await;
    let id = h.create("lc-rm", HostConfig::default()).await;
    h.svc.start(&id).await.unwrap();
    let err = h.svc.remove(&id, false).await.unwrap_err();
    assert!(matches!(err, ContainerError::Conflict(_)), "{err}");
    assert_eq!(h.status(&id), Status::Running);
    assert_eq!(h.rt.count(&format!("signal {id}")), 0);

    // rm -f: SIGKILL, the exit recorded, then the removal.
    h.svc.remove(&id, true).await.expect("rm -f");
    let calls = h.rt.calls();
    assert!(at(&calls, &format!("signal {id} {}", libc::SIGKILL)) < calls.iter().rposition(|c| c == &format!("delete {id}")).unwrap());
    assert!(matches!(h.svc.get(&id), Err(ContainerError::NotFound(_))));
    assert!(!h.net.has_sandbox(&id) && !h.fs.mounted(&id));
    assert!(!h.dir(&id).exists());
    assert_eq!(h.actions(&id), ["create", "start", "die 137", "destroy"]);
}

#[tokio::test]
async fn names_are_unique_and_removal_frees_them() {
    let h = Harness::new().await;
    let id = h.create("lc-name", HostConfig::default()).await;
    let body = bollard_stubs::models::ContainerCreateBody { image: Some(h.image.clone()), ..Default::default() };
    let req = super::super::CreateRequest { name: Some("lc-name".into()), body, mac_address: None };
    assert!(matches!(h.svc.create(req).await, Err(ContainerError::Conflict(_))));
    h.svc.remove("lc-name", false).await.unwrap();
    let again = h.create("lc-name", HostConfig::default()).await;
    assert_ne!(id, again);
}

#[tokio::test]
async fn a_reopened_service_keeps_the_records() {
    let h = Harness::new().await;
    let ran = h.create("lc-keep-ran", HostConfig::default()).await;
    let fresh = h.create("lc-keep-new", HostConfig::default()).await;
    h.rt.script_exits(&[7]);
    h.svc.start(&ran).await.unwrap();
    until("the exit", || h.status(&ran) == Status::Exited).await;
    h.svc.shutdown().await;

    let again = h.reopen().await;
    let r = again.get("lc-keep-ran").expect("kept").record();
    assert_eq!((r.id.as_str(), r.state.status, r.state.exit_code), (ran.as_str(), Status::Exited, 7));
    assert_eq!(again.get("lc-keep-new").unwrap().record().id, fresh);
    assert_eq!(again.get("lc-keep-new").unwrap().record().state.status, Status::Created);
    assert_eq!(again.counts().total, 2);
    assert_eq!(again.daemon_id(), h.svc.daemon_id());
    again.shutdown().await;
}

#[tokio::test]
async fn a_reopened_service_reclaims_an_unfinished_start() {
    let h = Harness::new().await;
    let id = h.create("lc-reclaim", HostConfig::default()).await;
    // As if the engine died half-way through a start: the overlay is still mounted.
    use super::super::rootfs::Rootfs;
    h.fs.mount(&h.dir(&id), &[], false).unwrap();
    h.svc.shutdown().await;

    let again = h.reopen().await;
    assert!(!h.fs.mounted(&id), "the rootfs of a stopped container is left mounted");
    assert!(h.net.calls().contains(&format!("release {id}")));
    assert!(h.rt.calls().contains(&format!("delete {id}")));
    assert_eq!(again.get(&id).unwrap().record().state.status, Status::Created);
    again.shutdown().await;
}

#[tokio::test]
async fn a_reopened_service_watches_running_containers_again() {
    let h = Harness::new().await;
    let id = h.create("lc-reattach", HostConfig::default()).await;
    h.svc.start(&id).await.unwrap();
    // The engine stops; the container keeps running.
    tokio::time::timeout(Duration::from_secs(2), h.svc.shutdown()).await.expect("shutdown waits for a running container");
    assert!(h.svc.tasks.is_empty());
    assert_eq!(h.rt.count(&format!("signal {id}")), 0, "shutdown signalled the container");
    assert_eq!(h.status(&id), Status::Running);

    let again = h.reopen().await;
    assert_eq!(again.get(&id).unwrap().record().state.status, Status::Running);
    h.rt.exit(&id, 9);
    until("the exit seen by the new service", || again.get(&id).unwrap().record().state.exit_code == 9).await;
    assert_eq!(again.get(&id).unwrap().record().state.status, Status::Exited);
    assert!(!h.net.has_sandbox(&id) && !h.fs.mounted(&id));
    again.shutdown().await;
}

#[tokio::test]
async fn an_exit_while_the_engine_is_away_is_recorded_at_its_return() {
    let mut h = Harness::new().await;
    let id = h.create("lc-away", HostConfig::default()).await;
    h.svc.start(&id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), h.svc.shutdown()).await.expect("shutdown");
    assert_eq!(h.actions(&id), ["create", "start"]);
    // The process ends while no engine watches it.
    h.rt.exit(&id, 9);

    let again = h.reopen().await;
    until("the exit recorded", || again.get(&id).unwrap().record().state.status == Status::Exited).await;
    let rec = again.get(&id).unwrap().record();
    assert_eq!((rec.state.exit_code, rec.state.pid), (9, 0));
    assert!(!h.net.has_sandbox(&id) && !h.fs.mounted(&id), "the network or the rootfs is still held");
    assert_eq!(h.actions(&id), ["die 9"]);
    again.shutdown().await;
}

#[tokio::test]
async fn an_auto_remove_container_is_gone_after_its_exit() {
    let mut h = Harness::new().await;
    let id = h.create("lc-rm-auto", HostConfig { auto_remove: Some(true), ..Default::default() }).await;
    h.rt.script_exits(&[0]);
    h.svc.start(&id).await.expect("start");
    until("the removal", || h.svc.get(&id).is_err()).await;
    assert!(!h.dir(&id).exists());
    assert!(!h.net.has_sandbox(&id) && !h.fs.mounted(&id));
    // dockerd's order for `docker run --rm`.
    assert_eq!(h.actions(&id), ["create", "start", "die 0", "destroy"]);
    // Its removal was the service's own work: nothing is left running at shutdown.
    tokio::time::timeout(Duration::from_secs(2), h.svc.shutdown()).await.expect("shutdown");
    assert!(h.svc.tasks.is_empty());
}
