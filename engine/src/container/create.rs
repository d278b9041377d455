//! `POST /containers/create`: validate, merge with the image config, persist.
use super::record::{NetMode, Record, State};
use super::{ContainerError, ContainerService, Ctr};
use crate::runtime::Runtime;
use bollard_stubs::models::{ContainerConfig, ContainerCreateBody};
use std::collections::HashMap;
use std::sync::Arc;

pub struct CreateRequest {
    pub name: Option<String>,
    pub body: ContainerCreateBody,
    /// `Config.MacAddress` (API < 1.44; not in the body type).
    pub mac_address: Option<String>,
}

/// Entrypoint and command as dockerd merges them with the image's: a user entrypoint drops
/// the image's command unless one is given; `--entrypoint ""` (`[""]`) clears the entrypoint
/// and runs the given command.
fn command(
    user_entry: Option<&[String]>,
    user_cmd: Option<&[String]>,
    img_entry: &[String],
    img_cmd: &[String],
) -> (Vec<String>, Vec<String>) {
    let user_cmd = user_cmd.filter(|c| !c.is_empty()).map(<[String]>::to_vec);
    match user_entry.filter(|e| !e.is_empty()) {
        Some([only]) if only.is_empty() => (vec![], user_cmd.unwrap_or_default()),
        Some(e) => (e.to_vec(), user_cmd.unwrap_or_default()),
        None => (img_entry.to_vec(), user_cmd.unwrap_or_else(|| img_cmd.to_vec())),
    }
}

/// `KEY=VALUE` lists merged by key: later entries win, order of first appearance kept.
fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for e in over {
        let key = e.split('=').next().unwrap_or(e);
        if let Some(slot) = out.iter_mut().find(|x| x.split('=').next().unwrap_or(x) == key) {
            *slot = e.clone();
        } else {
            out.push(e.clone());
        }
    }
    out
}

impl<R: Runtime> ContainerService<R> {
    #[tracing::instrument(skip_all, fields(name = ?req.name))]
    pub async fn create(self: &Arc<Self>, req: CreateRequest) -> Result<(String, Vec<String>), ContainerError> {
        let body = req.body;
        let image_name = body
            .image
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ContainerError::InvalidParam("config cannot be empty in order to create a container".into()))?;
        let mut hc = body.host_config.clone().unwrap_or_default();
        if body.network_disabled == Some(true) {
            // dockerd gives such a container no network at all.
            hc.network_mode = Some("none".into());
        }
        super::runopts::apply_defaults(&mut hc, &self.cfg.run_defaults);
        super::runopts::validate(&hc)?;
        if hc.uts_mode.as_deref() == Some("host") {
            // The host's own names: dockerd refuses to set them from a container.
            if body.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
                return Err(ContainerError::InvalidParam("conflicting options: hostname and the UTS mode".into()));
            }
            if body.domainname.as_deref().is_some_and(|d| !d.is_empty()) {
                return Err(ContainerError::InvalidParam("conflicting options: domainname and the UTS mode".into()));
            }
        }
        super::secopts::parse(hc.security_opt.as_deref().unwrap_or_default())?;
        super::health::validate(body.healthcheck.as_ref())?;
        super::resources::validate(&hc)?;
        // dockerd shows the runtime it runs the container with.
        hc.runtime = Some("runc".into());
        let mut warnings = vec![];
        if hc.oom_kill_disable == Some(true) && hc.memory.unwrap_or(0) == 0 {
            warnings.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".to_string());
        }
        if hc.memory_swap.is_some_and(|s| s != 0) && !crate::cgroups::swap_accounting() {
            // dockerd's words; the limit is left out of the container's cgroup (see runtime::spec).
            warnings.push(
                "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap."
                    .to_string(),
            );
        }
        super::resources::adapt(&mut hc);
        super::restart::validate(&hc)?;
        let (net, networks) = self.plan_network(&body, &hc, req.mac_address.as_deref())?;
        if net == NetMode::Host && hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) {
            warnings.push("Published ports are discarded when using host network mode".to_string());
        }
        if let Some(name) = &req.name {
            if !crate::ids::valid_name(name) {
                return Err(ContainerError::InvalidParam(format!(
                    "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
        }
        let image = self.images.resolve(&image_name)?;
        let ic = &image.run_config;
        // Anonymous volumes: the image's VOLUMEs and `-v /path` (which the CLI sends in Config.Volumes).
        let mut volumes: Vec<String> =
            self.images.inspect(&image.id)?["Config"]["Volumes"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        for v in body.volumes.iter().flatten() {
            if !volumes.contains(v) {
                volumes.push(v.clone());
            }
        }

        let (entrypoint, cmd) = command(body.entrypoint.as_deref(), body.cmd.as_deref(), &ic.entrypoint, &ic.cmd);
        let mut argv: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
        if argv.is_empty() {
            return Err(ContainerError::InvalidParam("No command specified".into()));
        }
        let path = argv.remove(0);

        let id = crate::ids::new_id();
        let mut env = merge_env(&ic.env, body.env.as_deref().unwrap_or(&[]));
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        let mut labels: HashMap<String, String> = ic.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.extend(body.labels.clone().unwrap_or_default());
        let mut exposed: Vec<String> = ic.exposed_ports.clone();
        for p in body.exposed_ports.clone().unwrap_or_default() {
            if !exposed.contains(&p) {
                exposed.push(p);
            }
        }
        let hostname = match body.hostname.clone().filter(|h| !h.is_empty()) {
            Some(h) => h,
            None if net == NetMode::Host => crate::sysinfo::host_info().hostname,
            None => id[..12].to_string(),
        };
        let config = ContainerConfig {
            hostname: Some(hostname),
            domainname: Some(body.domainname.clone().unwrap_or_default()),
            user: Some(body.user.clone().filter(|u| !u.is_empty()).unwrap_or_else(|| ic.user.clone())),
            attach_stdin: Some(body.attach_stdin.unwrap_or(false)),
            attach_stdout: Some(body.attach_stdout.unwrap_or(false)),
            attach_stderr: Some(body.attach_stderr.unwrap_or(false)),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            tty: Some(body.tty.unwrap_or(false)),
            open_stdin: Some(body.open_stdin.unwrap_or(false)),
            stdin_once: Some(body.stdin_once.unwrap_or(false)),
            env: Some(env),
            cmd: (!cmd.is_empty()).then_some(cmd),
            image: Some(image_name.clone()),
            working_dir: Some(body.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| ic.working_dir.clone())),
            entrypoint: (!entrypoint.is_empty()).then_some(entrypoint),
            labels: Some(labels),
            stop_signal: body.stop_signal.clone().or_else(|| ic.stop_signal.clone()),
            stop_timeout: body.stop_timeout,
            volumes: (!volumes.is_empty()).then(|| volumes.clone()),
            healthcheck: super::health::merge(body.healthcheck.clone(), ic.healthcheck.clone()),
            ..Default::default()
        };
        let mounts = self.resolve_mounts(&hc, &volumes)?;
        let rec = Record {
            id: id.clone(),
            name: String::new(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            image: image_name,
            image_id: image.id.clone(),
            layer_dirs: image.layer_dirs.clone(),
            config,
            host_config: hc,
            net_mode: net,
            path,
            args: argv,
            state: State::default(),
            restart_count: 0,
            mounts,
            networks,
            endpoints: vec![],
            ports: vec![],
            manually_stopped: false,
        };
        // Reserve the name and insert atomically with respect to other creates.
        let ctr = {
            let mut t = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let name = match &req.name {
                Some(n) => n.trim_start_matches('/').to_string(),
                None => loop {
                    let n = crate::ids::random_name();
                    if !t.names.contains_key(&n) {
                        break n;
                    }
                },
            };
            if let Some(other) = t.names.get(&name).cloned() {
                drop(t);
                self.drop_anonymous(&rec.mounts);
                return Err(ContainerError::Conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            let mut rec = rec;
            rec.name = name.clone();
            let ctr = Ctr::new(rec);
            t.names.insert(name, id.clone());
            t.by_id.insert(id.clone(), ctr.clone());
            ctr
        };
        let rec = ctr.record();
        // The start made ahead begins while the record is written and synced (two fsyncs, on
        // the path of every `docker run`): it needs nothing of the record on disk. An engine
        // killed before the record is durable reclaims what it made at its next start (a
        // container directory without a record, `ContainerService::load`).
        self.mount_ahead(&ctr);
        if let Err(e) = self.save(&rec) {
            self.abandon_ahead(&ctr).await;
            let mut t = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            t.names.remove(&rec.name);
            t.by_id.remove(&id);
            let _ = std::fs::remove_dir_all(Record::dir(&self.cfg.data_root, &id));
            drop(t);
            self.drop_anonymous(&rec.mounts);
            return Err(e);
        }
        self.publish("create", &rec, &[]);
        tracing::info!(container = %id, name = %rec.name, "created");
        Ok((id, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn env_merge() {
        let m = merge_env(&["PATH=/bin".into(), "A=1".into()], &["A=2".into(), "B=3".into()]);
        assert_eq!(m, vec!["PATH=/bin", "A=2", "B=3"]);
    }
    #[test]
    fn entrypoint_and_cmd_merge_like_dockerd() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (ie, ic) = (v(&["/entry"]), v(&["sh"]));
        assert_eq!(command(None, None, &ie, &ic), (v(&["/entry"]), v(&["sh"])));
        assert_eq!(command(None, Some(&v(&["date"])), &ie, &ic), (v(&["/entry"]), v(&["date"])));
        assert_eq!(command(Some(&v(&["top"])), None, &ie, &ic), (v(&["top"]), vec![]));
        assert_eq!(command(Some(&v(&[""])), Some(&v(&["date"])), &ie, &ic), (vec![], v(&["date"])));
        assert_eq!(command(Some(&v(&[""])), None, &ie, &ic), (vec![], vec![]));
    }
}
