//! A created container's rootfs is mounted ahead of its start (`container::ahead`): the start
//! takes the mount, a removal releases it, an engine restart reclaims it, and no more than
//! `MAX_AHEAD` containers hold one.
use super::super::ahead::MAX_AHEAD;
use super::{until, Harness};
use bollard_stubs::models::HostConfig;

async fn harness() -> Harness {
    let h = Harness::new().await;
    h.fs.mount_ahead();
    h
}

#[tokio::test]
async fn the_start_takes_the_rootfs_mounted_ahead() {
    let mut h = harness().await;
    let id = h.create("ahead-start", HostConfig::default()).await;
    until("the start made ahead", || h.svc.made_ahead(&id)).await;
    assert!(h.fs.mounted(&id));
    assert_eq!(h.svc.ahead.len(), 1);
    // With it: the /etc files, written.
    for f in ["hosts", "hostname", "resolv.conf"] {
        let m = std::fs::metadata(h.dir(&id).join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(m.len() > 0, "{f} not written ahead");
    }
    h.svc.start(&id).await.expect("start");
    assert!(!h.svc.made_ahead(&id));
    assert!(h.fs.mounted(&id));
    assert_eq!(h.svc.ahead.len(), 0, "the start did not take the mount over");
    assert_eq!(h.actions(&id), ["create", "start"]);
}

#[tokio::test]
async fn removing_a_created_container_unmounts_what_was_mounted_ahead() {
    let h = harness().await;
    let id = h.create("ahead-rm", HostConfig::default()).await;
    until("the rootfs mounted ahead", || h.fs.mounted(&id)).await;
    h.svc.remove(&id, false).await.expect("rm");
    assert!(!h.fs.mounted(&id));
    assert_eq!(h.svc.ahead.len(), 0);
    assert!(!h.dir(&id).exists());
}

#[tokio::test]
async fn a_mount_ahead_that_fails_leaves_the_start_to_mount() {
    let mut h = Harness::new().await;
    h.fs.fail_next_mount();
    h.fs.mount_ahead();
    let id = h.create("ahead-fails", HostConfig::default()).await;
    until("the mount ahead tried", || h.fs.calls().iter().any(|c| *c == format!("mount {id}"))).await;
    until("its place given back", || h.svc.ahead.len() == 0).await;
    assert!(!h.fs.mounted(&id));
    h.svc.start(&id).await.expect("start");
    assert!(h.fs.mounted(&id));
    assert_eq!(h.actions(&id), ["create", "start"]);
}

#[tokio::test]
async fn no_more_than_max_ahead_created_containers_hold_a_mount() {
    let h = harness().await;
    let mut ids = vec![];
    // With a tmpfs mount: only the rootfs is mounted ahead (no start made ahead, undone 2 s later).
    let tmpfs = || HostConfig { tmpfs: Some([("/data".to_string(), String::new())].into()), ..Default::default() };
    for i in 0..MAX_AHEAD + 4 {
        ids.push(h.create(&format!("ahead-many-{i}"), tmpfs()).await);
    }
    until("the first ones mounted ahead", || h.fs.mounted_count() == MAX_AHEAD).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(h.fs.mounted_count(), MAX_AHEAD, "more mounts held than MAX_AHEAD");
    assert!(ids[..MAX_AHEAD].iter().all(|id| h.fs.mounted(id)));
    // A removal gives its place back; the next create can take it.
    h.svc.remove(&ids[0], false).await.expect("rm");
    let next = h.create("ahead-many-next", tmpfs()).await;
    until("the next one mounted ahead", || h.fs.mounted(&next)).await;
    assert_eq!(h.fs.mounted_count(), MAX_AHEAD);
    // Starting the others works whether or not theirs was mounted ahead.
    for id in &ids[MAX_AHEAD - 2..] {
        h.svc.start(id).await.expect("start");
        assert!(h.fs.mounted(id));
    }
}

#[tokio::test]
async fn an_engine_shutdown_unmounts_what_was_mounted_ahead() {
    let h = harness().await;
    let id = h.create("ahead-restart", HostConfig::default()).await;
    until("the rootfs mounted ahead", || h.fs.mounted(&id)).await;
    h.svc.shutdown().await;
    assert!(!h.fs.mounted(&id), "a clean shutdown left the mount made ahead");
    let svc = h.reopen().await;
    assert!(!h.fs.mounted(&id), "the restart left the mount made ahead");
    assert_eq!(svc.ahead.len(), 0);
    // The reopened service mounts ahead for new containers, and the old one starts.
    svc.start(&id).await.expect("start after the restart");
    assert!(h.fs.mounted(&id));
}

#[tokio::test]
async fn a_change_between_the_start_made_ahead_and_the_start_is_in_force() {
    let h = harness().await;
    let id = h.create("ahead-renamed", HostConfig::default()).await;
    until("the start made ahead", || h.svc.made_ahead(&id)).await;
    h.svc.rename(&id, "ahead-renamed-2").await.expect("rename");
    h.svc.start(&id).await.expect("start");
    // The runtime's container made ahead was deleted and the start created its own.
    let calls: Vec<String> =
        h.rt.calls().into_iter().filter(|c| ["create ", "delete ", "start "].iter().any(|op| *c == format!("{op}{id}"))).collect();
    assert_eq!(calls, [format!("create {id}"), format!("delete {id}"), format!("create {id}"), format!("start {id}")]);
    assert!(!h.svc.made_ahead(&id));
}

#[tokio::test]
async fn a_start_made_ahead_that_fails_leaves_nothing_and_the_start_makes_its_own() {
    let h = harness().await;
    let id = h.create("ahead-fails-create", HostConfig::default()).await;
    h.rt.fail_next("create", crate::runtime::RuntimeError::shim(&id, "libcontainer said no"));
    until("the start made ahead tried", || h.rt.count(&format!("create {id}")) == 1).await;
    until("its place given back", || h.svc.ahead.len() == 0).await;
    assert!(!h.svc.made_ahead(&id));
    assert!(!h.net.has_sandbox(&id), "the network is left set up");
    assert!(!h.fs.mounted(&id), "the rootfs is left mounted");
    assert!(h.rt.calls().contains(&format!("delete {id}")));
    // Nothing is recorded of it: the container is as created, and its start works.
    let rec = h.svc.get(&id).unwrap().record();
    assert_eq!((rec.state.status, rec.state.error.as_str()), (super::super::record::Status::Created, ""));
    h.svc.start(&id).await.expect("start");
    assert_eq!(h.rt.count(&format!("create {id}")), 2);
    assert_eq!(h.rt.count(&format!("start {id}")), 1);
}

/// A create whose record cannot be written abandons the start made ahead of it (begun while the
/// record is written): the process, the network and the rootfs mount are released, and a start
/// made ahead that had not begun does nothing.
#[tokio::test]
async fn an_abandoned_create_releases_what_its_start_made_ahead() {
    let h = harness().await;
    let id = h.create("ahead-abandoned", HostConfig::default()).await;
    until("the start made ahead", || h.svc.made_ahead(&id)).await;
    let ctr = h.svc.get(&id).unwrap();
    h.svc.abandon_ahead(&ctr).await;
    assert!(!h.svc.made_ahead(&id));
    assert!(!h.net.has_sandbox(&id), "the network is left set up");
    assert!(!h.fs.mounted(&id), "the rootfs is left mounted");
    assert!(h.rt.calls().contains(&format!("delete {id}")), "the runtime's container is left");
    assert_eq!(h.svc.ahead.len(), 0);

    // Abandoned before its start made ahead began: that one finds it removed and makes nothing.
    let id = h.create("ahead-abandoned-early", HostConfig::default()).await;
    let ctr = h.svc.get(&id).unwrap();
    let op = ctr.op.lock().await;
    let abandon = {
        let (svc, ctr) = (h.svc.clone(), ctr.clone());
        tokio::spawn(async move { svc.abandon_ahead(&ctr).await })
    };
    until("marked removed", || ctr.subscribe().borrow().removed).await;
    drop(op);
    abandon.await.expect("abandon");
    until("its place given back", || h.svc.ahead.len() == 0).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!h.svc.made_ahead(&id));
    assert_eq!(h.rt.count(&format!("create {id}")), 0, "the runtime's container was made");
    assert!(!h.net.has_sandbox(&id), "the network was set up");
    assert!(!h.fs.mounted(&id), "the rootfs is mounted");
}
