//! Starts that fail: what is released, what is recorded, and the error's kind.
use super::super::record::Status;
use super::super::ContainerError;
use super::{until, Harness};
use crate::network::NetworkError;
use crate::runtime::RuntimeError;
use crate::{Classify, ErrorKind};
use bollard_stubs::models::HostConfig;

#[tokio::test]
async fn a_failed_runtime_create_releases_the_network_and_the_rootfs() {
    let h = Harness::new().await;
    let id = h.create("fl-create", HostConfig::default()).await;
    h.rt.fail_next("create", RuntimeError::shim(&id, "libcontainer said no"));
    let err = h.svc.start(&id).await.unwrap_err();
    assert!(matches!(err, ContainerError::Runtime(RuntimeError::Shim { .. })), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Internal);
    let rec = h.svc.get(&id).unwrap().record();
    assert_eq!((rec.state.status, rec.state.exit_code), (Status::Created, 128));
    assert_eq!(rec.state.error, "libcontainer said no");
    assert!(!h.net.has_sandbox(&id), "the network is left set up");
    assert!(!h.fs.mounted(&id), "the rootfs is left mounted");
    assert!(h.rt.calls().contains(&format!("delete {id}")));
    assert_eq!(h.rt.count(&format!("start {id}")), 0);
    // The next start works.
    h.svc.start(&id).await.expect("start after a failed one");
    assert_eq!(h.status(&id), Status::Running);
}

#[tokio::test]
async fn a_missing_executable_is_a_bad_request_with_127() {
    let h = Harness::new().await;
    let id = h.create("fl-127", HostConfig::default()).await;
    let message = "exec: \"/bin/app\": stat /bin/app: no such file or directory".to_string();
    h.rt.fail_next("start", RuntimeError::Exec { message: message.clone(), code: 127 });
    let err = h.svc.start(&id).await.unwrap_err();
    assert!(matches!(&err, ContainerError::InvalidParam(m) if *m == message), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    let rec = h.svc.get(&id).unwrap().record();
    assert_eq!((rec.state.status, rec.state.exit_code), (Status::Created, 127));
    assert!(!h.net.has_sandbox(&id) && !h.fs.mounted(&id));
    let w = h.svc.wait(&id, super::super::WaitCondition::NotRunning).await.unwrap().await;
    assert_eq!(w.exit_code, 127);
}

#[tokio::test]
async fn a_failed_network_setup_cleans_up_the_runtime_and_the_rootfs() {
    let h = Harness::new().await;
    let id = h.create("fl-net", HostConfig::default()).await;
    h.net.fail_next("setup", NetworkError::Setup("no veth today".into()));
    let err = h.svc.start(&id).await.unwrap_err();
    assert!(matches!(err, ContainerError::Network(NetworkError::Setup(_))), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Internal);
    // The runtime's create went on meanwhile, and stopped at the gate that the failure shut.
    assert!(h.rt.spec(&id).is_none(), "the runtime made the container past a shut gate");
    assert!(h.rt.calls().contains(&format!("delete {id}")), "the runtime's leftovers are not cleaned");
    assert!(!h.fs.mounted(&id));
    assert_eq!(h.status(&id), Status::Created);
}

#[tokio::test]
async fn a_failed_mount_releases_the_network() {
    let h = Harness::new().await;
    let id = h.create("fl-mount", HostConfig::default()).await;
    h.fs.fail_next_mount();
    let err = h.svc.start(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err:?}");
    assert!(!h.net.has_sandbox(&id), "the network is left set up");
    assert!(h.rt.spec(&id).is_none(), "the runtime made the container past a shut gate");
    assert_eq!(h.status(&id), Status::Created);
}

#[tokio::test]
async fn a_start_of_an_unknown_container_is_not_found() {
    let h = Harness::new().await;
    let err = h.svc.start("nope").await.unwrap_err();
    assert!(matches!(err, ContainerError::NotFound(_)));
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(h.rt.calls().is_empty() && h.net.calls().is_empty());
}

#[tokio::test]
async fn an_unusable_data_root_is_named_in_the_error() {
    let h = Harness::new().await;
    h.svc.shutdown().await;
    let containers = h.cfg.data_root.join("containers");
    std::fs::remove_dir_all(&containers).unwrap();
    std::fs::write(&containers, b"not a directory").unwrap();
    let err = h.try_reopen().await.err().expect("opened over a file");
    match &err {
        ContainerError::Io { op, path, .. } => assert_eq!((*op, path), ("creating", &containers)),
        other => panic!("not an io error with its path: {other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains(&containers.display().to_string()), "{err}");
}

#[tokio::test]
async fn a_start_whose_record_cannot_be_saved_still_runs_and_is_watched() {
    let mut h = Harness::new().await;
    let id = h.create("fl-unsaved", HostConfig::default()).await;
    // The record's file becomes a directory: every later save of it fails.
    let file = super::super::record::Record::file(&h.cfg.data_root, &id);
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    h.svc.start(&id).await.expect("the process started: the start is not a failure");
    assert_eq!(h.status(&id), Status::Running);
    h.rt.exit(&id, 3);
    until("the exit seen", || h.svc.get(&id).unwrap().record().state.exit_code == 3).await;
    assert_eq!(h.status(&id), Status::Exited);
    assert!(!h.net.has_sandbox(&id) && !h.fs.mounted(&id));
    assert_eq!(h.actions(&id), ["create", "start", "die 3"]);
    std::fs::remove_dir(&file).unwrap();
}
