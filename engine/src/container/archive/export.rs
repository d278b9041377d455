//! `GET /containers/{id}/export`: the container's root filesystem as a tar stream.
use super::super::record::Record;
use super::super::{rootfs, ContainerError, ContainerService};
use super::{fsview, tar_out, ChannelWriter};
use crate::runtime::Runtime;
use bytes::Bytes;
use std::io;
use tokio::sync::mpsc;

impl<R: Runtime> ContainerService<R> {
    /// `GET /containers/{id}/export`: the container's root filesystem (without volumes) as a tar.
    pub async fn export(&self, key: &str) -> Result<mpsc::Receiver<Bytes>, ContainerError> {
        let ctr = self.get(key)?;
        let rec = ctr.record();
        let dir = Record::dir(&self.cfg.data_root, &rec.id);
        let (tx, rx) = mpsc::channel::<Bytes>(8);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), ContainerError>>();
        self.publish("export", &rec, &[]);
        // Serves one request: it ends with its stream.
        tokio::spawn(async move {
            let _op = ctr.op.lock().await;
            let layers = rec.layer_dirs.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let merged = rootfs::paths(&dir).merged;
                let was_mounted = rootfs::is_mounted(&merged);
                let root = rootfs::mount_rootfs(&dir, &layers).and_then(|m| fsview::open_root(&m));
                let root = match root {
                    Ok(r) => {
                        let _ = ready_tx.send(Ok(()));
                        r
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(ContainerError::io("opening the rootfs of", &dir)(e)));
                        return;
                    }
                };
                let mut b = tar::Builder::new(ChannelWriter::new(tx));
                let res = tar_out::write_dir_contents(&mut b, &mut tar_out::TarState::default(), &root, "")
                    .and_then(|_| b.into_inner())
                    .and_then(|mut w| io::Write::flush(&mut w));
                if let Err(e) = res {
                    tracing::info!(error = %e, "export stream ended early");
                }
                drop(root);
                if !was_mounted {
                    let _ = rootfs::unmount_rootfs(&dir);
                }
            })
            .await;
        });
        ready_rx.await.map_err(|_| ContainerError::TaskFailed("export"))??;
        Ok(rx)
    }
}
