//! `RUN`: the command runs in a real container of this engine (default bridge unless the
//! build's `networkmode` says otherwise, with the build's resource limits), its output is
//! streamed into the build output, and its upper dir becomes the step's layer.
use super::output::Output;
use super::steps::{container_layer, Stage};
use super::{BuildError, BuildOptions, BuildService};
use crate::container::{CreateRequest, LogOptions, WaitCondition};
use crate::image::child::LayerTar;
use crate::runtime::Runtime;
use bollard_stubs::models::{ContainerCreateBody, HostConfig};
use std::sync::Arc;

fn host_config(o: &BuildOptions) -> HostConfig {
    let r = &o.run;
    HostConfig {
        network_mode: Some(if r.network_mode.is_empty() || r.network_mode == "default" { "bridge".into() } else { r.network_mode.clone() }),
        extra_hosts: (!r.extra_hosts.is_empty()).then(|| r.extra_hosts.clone()),
        shm_size: r.shm_size,
        memory: r.memory,
        memory_swap: r.memory_swap,
        cpu_shares: r.cpu_shares,
        cpu_quota: r.cpu_quota,
        cpu_period: r.cpu_period,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        ..Default::default()
    }
}

/// Splits stdcopy frames (`[stream, 0, 0, 0, len u32 BE] payload`) out of `buf`.
fn frames(buf: &mut Vec<u8>) -> Vec<u8> {
    let mut out = vec![];
    while buf.len() >= 8 {
        let n = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + n {
            break;
        }
        out.extend_from_slice(&buf[8..8 + n]);
        buf.drain(..8 + n);
    }
    out
}

/// Runs `argv` on the stage's image; returns the container (still there) and its layer.
pub async fn run_step<R: Runtime>(
    svc: &Arc<BuildService<R>>,
    stage: &Stage,
    argv: &[String],
    args: &[String],
    opts: &BuildOptions,
    out: &Output,
) -> Result<(String, LayerTar), BuildError> {
    let image =
        stage.image.clone().ok_or_else(|| BuildError::Invalid("RUN needs a base image: FROM scratch has no shell to run it".into()))?;
    let s = |k: &str| stage.config.get(k).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(String::from);
    let body = ContainerCreateBody {
        image: Some(image),
        entrypoint: Some(argv.to_vec()),
        env: (!args.is_empty()).then(|| args.to_vec()),
        user: s("User"),
        working_dir: s("WorkingDir"),
        host_config: Some(host_config(opts)),
        ..Default::default()
    };
    let cs = svc.containers.clone();
    let (cid, _) = cs.create(CreateRequest { name: None, body, mac_address: None }).await?;
    out.stream(format!(" ---> Running in {}\n", &cid[..12]));
    let res = run_in(&cs, svc.images.tasks(), &cid, out).await;
    let code = match res {
        Ok(c) => c,
        Err(e) => {
            let _ = cs.remove_with(&cid, true, true).await;
            return Err(e);
        }
    };
    if code != 0 {
        if opts.rm || opts.forcerm {
            let _ = cs.remove_with(&cid, true, true).await;
        }
        return Err(BuildError::RunFailed { cmd: argv.join(" "), code });
    }
    let (images, root, id2) = (svc.images.clone(), svc.data_root.clone(), cid.clone());
    let lowers = cs.get(&cid)?.record().layer_dirs;
    let layer =
        tokio::task::spawn_blocking(move || container_layer(&images, &root, &id2, &lowers)).await.map_err(BuildError::join("RUN layer"))?;
    match layer {
        Ok(l) => Ok((cid, l)),
        Err(e) => {
            let _ = cs.remove_with(&cid, true, true).await;
            Err(e)
        }
    }
}

/// Starts the container, streams its output, returns its exit code.
async fn run_in<R: Runtime>(
    cs: &Arc<crate::container::ContainerService<R>>,
    tasks: &crate::tasks::Tasks,
    cid: &str,
    out: &Output,
) -> Result<i64, BuildError> {
    let wait = cs.wait(cid, WaitCondition::NextExit).await?;
    cs.start(cid).await?;
    let mut logs = cs.logs(cid, LogOptions { stdout: true, stderr: true, follow: true, ..Default::default() })?;
    let out2 = out.clone();
    // Owned by the image service, like the build; it ends with the container's logs.
    let fwd = tasks.spawn(async move {
        let mut buf = Vec::new();
        while let Some(chunk) = logs.recv().await {
            buf.extend_from_slice(&chunk);
            let data = frames(&mut buf);
            if !data.is_empty() {
                out2.stream(String::from_utf8_lossy(&data).into_owned());
            }
        }
    });
    let gen = wait.await;
    let _ = fwd.await;
    Ok(gen.exit_code as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_frames() {
        let mut b = vec![1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i', 2, 0, 0, 0, 0, 0, 0, 3, b'x'];
        assert_eq!(super::frames(&mut b), b"hi");
        assert_eq!(b.len(), 9);
        b.extend_from_slice(b"yz");
        assert_eq!(super::frames(&mut b), b"xyz");
        assert!(b.is_empty());
    }
}
