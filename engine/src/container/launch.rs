//! Everything of a start before its process runs: the rootfs mounted, the network set up, the
//! runtime's container created (its init waits for the start).
//!
//! The three go on at once. The overlay is mounted on a blocking thread while the network is set
//! up, and the runtime's create does not wait for either: it writes the bundle (the container's
//! users read from the overlay's layers) and hands the container to its shim, whose init joins
//! its cgroups and then waits at the gate (`runtime::gate`) until the rootfs is mounted and the
//! network set up, before its namespaces and its rootfs. Only what must wait for one of them
//! does: the bundle of a container whose network decides what the runtime gets (legacy link
//! variables, another container's netns and hostname) waits for the network; one whose users
//! the layers do not tell plainly, or whose volumes and binds are prepared from the rootfs (a
//! new volume takes the image's contents), waits for the mount.
use super::netconf::{NetPlan, NetSetup};
use super::record::Record;
use super::{ContainerError, ContainerService};
use crate::runtime::gate::{self, Gate, Part};
use crate::runtime::{RunSpec, Runtime, RuntimeError};
use std::path::Path;

/// What a start made before its process runs (see [`ContainerService::create_runtime`]): the
/// endpoints and ports it set up, for the record once the container runs.
pub(super) struct Created {
    pub endpoints: Vec<crate::network::Endpoint>,
    pub ports: Vec<crate::network::PortMapping>,
}

impl<R: Runtime> ContainerService<R> {
    /// See the module's doc. With `announce`, the network's `connect` event is published once it
    /// is set up (a start made ahead publishes it at the start). On an error,
    /// `release_resources` undoes what was made.
    pub(super) async fn create_runtime(&self, rec: &Record, announce: bool) -> Result<Created, ContainerError> {
        let dir = Record::dir(&self.cfg.data_root, &rec.id);
        let paths = super::rootfs::paths(&dir);
        let plan = self.net_plan(rec, &dir);
        // The overlay's directories as it will show them, top first.
        let overlay = std::iter::once(paths.upper.clone()).chain(rec.layer_dirs.iter().rev().cloned()).collect();
        let (mut parts, gate) = gate::new(overlay, if plan.is_some() { 2 } else { 1 });
        let mounted_part = parts.pop();
        let network_part = parts.pop();
        let (fs, dir2, layers, id) = (self.rootfs.clone(), dir.clone(), rec.layer_dirs.clone(), rec.id.clone());
        // `--rm` containers get a volatile overlay (no syncfs at unmount).
        let volatile = rec.auto_remove();
        let mount = tokio::task::spawn_blocking(move || {
            let t0 = std::time::Instant::now();
            let merged = fs.mount(&dir2, &layers, volatile);
            if let Some(part) = mounted_part {
                part.done(merged.is_ok());
            }
            tracing::debug!(container = %id, us = crate::micros_since(t0), "rootfs mounted");
            merged
        });
        // All are awaited (none is dropped half-way); on an error `release_resources` undoes
        // what the others made.
        let t0 = std::time::Instant::now();
        let (mounted, created) =
            tokio::join!(mount, self.network_and_runtime(rec, &dir, &paths.merged, plan, network_part, gate, announce, t0));
        tracing::debug!(us = crate::micros_since(t0), "runtime created");
        // A failed mount is the cause of a runtime's failure at the gate: it is told first.
        mounted.map_err(ContainerError::task("mounting the rootfs"))?.map_err(ContainerError::io("mounting the rootfs of", &dir))?;
        let (net, runtime) = created;
        let net = net?;
        let oom_kill_disable = runtime?;
        if oom_kill_disable {
            self.cgroup(&rec.id)?.disable_oom_killer()?;
        }
        // the network's kernel side (veths, resolver, NAT rules) was done meanwhile.
        if net.pending {
            self.network.ready(&rec.id).await?;
        }
        Ok(Created { endpoints: net.endpoints, ports: net.ports })
    }

    /// The network's setup and the runtime's create, at once with a `plan` (the gate's
    /// `network_part` is done with the setup), else one after the other. With `announce`, the
    /// network's `connect` event is published once it is set up, before the gate opens (so before
    /// a volume's `mount`, as dockerd orders them). Returns the network, and the runtime's
    /// result: whether the OOM killer is to be disabled.
    #[allow(clippy::too_many_arguments)]
    async fn network_and_runtime(
        &self,
        rec: &Record,
        dir: &Path,
        merged: &Path,
        plan: Option<NetPlan>,
        network_part: Option<Part>,
        gate: Gate,
        announce: bool,
        t0: std::time::Instant,
    ) -> (Result<NetSetup, ContainerError>, Result<bool, ContainerError>) {
        let setup = async {
            let net = self.setup_network(rec, dir).await;
            tracing::debug!(us = crate::micros_since(t0), "network set up");
            if announce && net.is_ok() {
                self.network_event("connect", rec);
            }
            if let Some(part) = network_part {
                part.done(net.is_ok());
            }
            net
        };
        match plan {
            Some(plan) => {
                let (net, runtime) = tokio::join!(setup, self.create_in_runtime(rec, dir, merged, &plan, gate, t0));
                // The plan is what the setup does for such a container; were it not, the runtime
                // would have been given another netns or /etc files.
                let net = net.and_then(|n| match n.plan == plan {
                    true => Ok(n),
                    false => Err(RuntimeError::shim(&rec.id, "the network set up is not the one planned").into()),
                });
                (net, runtime)
            }
            None => match setup.await {
                Ok(net) => {
                    let runtime = self.create_in_runtime(rec, dir, merged, &net.plan, gate, t0).await;
                    (Ok(net), runtime)
                }
                Err(e) => (Err(e), Ok(false)),
            },
        }
    }

    /// The run spec of `rec` on the network `net`, and the runtime's create. Returns whether
    /// the OOM killer is to be disabled.
    async fn create_in_runtime(
        &self,
        rec: &Record,
        dir: &Path,
        merged: &Path,
        net: &NetPlan,
        mut gate: Gate,
        t0: std::time::Instant,
    ) -> Result<bool, ContainerError> {
        let security = super::secopts::parse(rec.host_config.security_opt.as_deref().unwrap_or_default())?;
        let mut env = rec.config.env.clone().unwrap_or_default();
        env.extend(net.env.iter().cloned());
        if rec.mounts.iter().any(|m| m.kind != crate::volume::MountKind::Tmpfs) && !gate.wait().await {
            return Err(RuntimeError::shim(&rec.id, crate::shim::protocol::GATE_SHUT).into());
        }
        let (mounts, tmpfs) = self.run_mounts(rec, merged, &net.mounts).await?;
        let options = self.run_options_for(rec)?;
        let log = super::logopts::log_config(&rec.host_config)?;
        if log.driver == crate::runtime::options::LogDriver::Local {
            use std::os::unix::fs::DirBuilderExt;
            let logs = dir.join("local-logs");
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&logs).map_err(ContainerError::io("creating", &logs))?;
        }
        let spec = RunSpec {
            id: rec.id.clone(),
            rootfs: merged.to_path_buf(),
            args: std::iter::once(rec.path.clone()).chain(rec.args.iter().cloned()).collect(),
            env,
            cwd: rec.config.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into()),
            user: rec.config.user.clone().unwrap_or_default(),
            hostname: net.hostname.clone().or_else(|| rec.config.hostname.clone()).unwrap_or_default(),
            domainname: rec.config.domainname.clone().unwrap_or_default(),
            tty: rec.tty(),
            open_stdin: rec.config.open_stdin.unwrap_or(false),
            stdin_once: rec.config.stdin_once.unwrap_or(false),
            netns: net.netns.clone(),
            mounts,
            tmpfs,
            cgroup_path: self.cgroup_path(&rec.id),
            log_path: super::logopts::log_file(dir, &rec.id, log.driver),
            state_dir: self.state_dir(&rec.id),
            readonly_rootfs: rec.host_config.readonly_rootfs.unwrap_or(false),
            resources: super::resources::from_host_config(&rec.host_config),
            console_size: super::exec::console_size(rec.host_config.console_size.as_deref()),
            seccomp: security.seccomp,
            options,
            log,
        };
        tracing::debug!(us = crate::micros_since(t0), "run spec ready");
        self.runtime.create(&spec, gate).await?;
        Ok(spec.options.oom_kill_disable)
    }
}
