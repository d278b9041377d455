//! `POST /containers/create`: validate, merge with the image config, persist.
use super::record::{NetMode, Record, State};
use super::{ContainerError, ContainerService, Ctr};
use crate::runtime::Runtime;
use bollard_stubs::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use std::collections::HashMap;

pub struct CreateRequest {
    pub name: Option<String>,
    pub body: ContainerCreateBody,
    /// `Config.MacAddress` (API < 1.44; not in the body type).
    pub mac_address: Option<String>,
}

/// HostConfig options this engine does not implement yet: refused with a clear error
/// instead of being silently ignored.
fn unsupported(hc: &HostConfig) -> Option<&'static str> {
    let set_v = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|x| !x.is_empty());
    if hc.privileged == Some(true) {
        return Some("--privileged is not supported by this engine yet");
    }
    if set_v(&hc.cap_add) || set_v(&hc.cap_drop) {
        return Some("--cap-add/--cap-drop are not supported by this engine yet");
    }
    for (mode, what) in [(&hc.pid_mode, "--pid"), (&hc.ipc_mode, "--ipc"), (&hc.uts_mode, "--uts"), (&hc.userns_mode, "--userns")] {
        if mode.as_ref().is_some_and(|m| !m.is_empty() && m != "private" && m != "shareable") {
            return Some(match what {
                "--pid" => "--pid is not supported by this engine yet",
                "--ipc" => "--ipc is not supported by this engine yet",
                "--uts" => "--uts is not supported by this engine yet",
                _ => "--userns is not supported by this engine yet",
            });
        }
    }
    if let Some(lc) = &hc.log_config {
        if lc.typ.as_ref().is_some_and(|t| !t.is_empty() && t != "json-file") {
            return Some("only the json-file logging driver is supported");
        }
    }
    if hc.runtime.as_ref().is_some_and(|r| !r.is_empty() && r != "flotilla-shim" && r != "runc") {
        return Some("unknown runtime: only the default runtime is available");
    }
    None
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
    pub async fn create(&self, req: CreateRequest) -> Result<(String, Vec<String>), ContainerError> {
        let body = req.body;
        let image_name = body.image.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
            ContainerError::InvalidParam("config cannot be empty in order to create a container".into())
        })?;
        let mut hc = body.host_config.clone().unwrap_or_default();
        if let Some(why) = unsupported(&hc) {
            return Err(ContainerError::InvalidParam(why.into()));
        }
        super::secopts::parse(hc.security_opt.as_deref().unwrap_or_default())?;
        super::resources::validate(&hc)?;
        super::resources::adapt(&mut hc);
        if hc.log_config.as_ref().and_then(|l| l.typ.as_ref()).is_none_or(|t| t.is_empty()) {
            // dockerd stores the daemon's default driver (docker-py reads it back).
            hc.log_config = Some(bollard_stubs::models::HostConfigLogConfig { typ: Some("json-file".into()), config: Some(HashMap::new()) });
        }
        super::restart::validate(&hc)?;
        let (net, networks) = self.plan_network(&body, &hc, req.mac_address.as_deref())?;
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
        let mut volumes: Vec<String> = self.images.inspect(&image.id)?["Config"]["Volumes"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        for v in body.volumes.iter().flatten() {
            if !volumes.contains(v) {
                volumes.push(v.clone());
            }
        }

        let user_entry = body.entrypoint.clone().filter(|e| !e.is_empty());
        let user_cmd = body.cmd.clone().filter(|c| !c.is_empty());
        let (entrypoint, cmd) = match (user_entry, user_cmd) {
            (Some(e), c) => (e, c.unwrap_or_default()),
            (None, Some(c)) => (ic.entrypoint.clone(), c),
            (None, None) => (ic.entrypoint.clone(), ic.cmd.clone()),
        };
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
        if let Err(e) = self.save(&rec) {
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
        Ok((id, vec![]))
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
    fn refuses_ports() {
        let mut hc = HostConfig::default();
        assert!(unsupported(&hc).is_none());
        hc.memory = Some(64 << 20);
        assert!(unsupported(&hc).is_none());
        let hc = HostConfig { port_bindings: Some([("80/tcp".to_string(), None)].into_iter().collect()), ..Default::default() };
        assert!(unsupported(&hc).is_none());
        let hc = HostConfig { memory_swap: Some(-1), ..Default::default() };
        assert!(unsupported(&hc).is_none());
    }
}
