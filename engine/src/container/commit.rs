//! `POST /commit`: a new image from a container's changes (its overlay upper dir) and config,
//! with Dockerfile-style `changes` applied. A running container is frozen meanwhile (`pause`).
use super::archive::layer::write_layer;
use super::record::Record;
use super::{rootfs, ContainerError, ContainerService};
use crate::image::child::NewImage;
use crate::image::config::apply_changes;
use crate::image::reference::Reference;
use crate::runtime::Runtime;
use serde_json::{Map, Value};

/// What `POST /commit` asks for.
#[derive(Debug, Default, Clone)]
pub struct CommitOptions {
    pub reference: Option<Reference>,
    pub author: String,
    pub comment: String,
    /// Dockerfile instructions (`CMD ["sh"]`, `ENV A=b`, ...).
    pub changes: Vec<String>,
    pub pause: bool,
    /// A config from the request body: its non-null fields replace the container's.
    pub config: Option<Map<String, Value>>,
}

/// The container config fields an image keeps (dockerd drops the rest at commit).
const IMAGE_FIELDS: &[&str] = &[
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
];

/// The image `config` object of a container: its config, the body's fields over it, then `changes`.
pub fn image_config(rec: &Record, body: Option<&Map<String, Value>>, changes: &[String]) -> Result<Map<String, Value>, ContainerError> {
    let mut cfg = match serde_json::to_value(&rec.config) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    cfg.retain(|k, _| IMAGE_FIELDS.contains(&k.as_str()));
    for (k, v) in body.into_iter().flatten() {
        if !v.is_null() {
            cfg.insert(k.clone(), v.clone());
        }
    }
    apply_changes(&mut cfg, changes)?;
    Ok(cfg)
}

impl<R: Runtime> ContainerService<R> {
    /// Commits the container `key`; returns the new image id.
    #[tracing::instrument(skip_all, fields(container = %key))]
    pub async fn commit(&self, key: &str, opts: CommitOptions) -> Result<String, ContainerError> {
        let ctr = self.get(key)?;
        let rec = ctr.record();
        let config = image_config(&rec, opts.config.as_ref(), &opts.changes)?;
        let freeze = opts.pause && rec.running() && !rec.state.paused;
        let cgroup = if freeze { Some(self.cgroup(&rec.id)?) } else { None };
        if let Some(cg) = cgroup.clone() {
            tokio::task::spawn_blocking(move || cg.freeze(true)).await.map_err(ContainerError::task("pausing for the commit"))??;
        }
        let upper = rootfs::paths(&Record::dir(&self.cfg.data_root, &rec.id)).upper;
        let images = self.images.clone();
        let created_by = rec.config.cmd.clone().unwrap_or_default().join(" ");
        let container_config = config.clone();
        let new = NewImage {
            parent: Some(rec.image_id.clone()),
            layer: None,
            config,
            container_config,
            container: Some(rec.id.clone()),
            author: opts.author.clone(),
            comment: opts.comment.clone(),
            created_by,
        };
        let upper_dir = upper.clone();
        let lowers = rec.layer_dirs.clone();
        let layer = tokio::task::spawn_blocking(move || {
            let w = images.layer_writer()?;
            write_layer(w, &upper, &lowers)?.finish()
        })
        .await
        .map_err(ContainerError::task("writing the commit's layer"));
        if let Some(cg) = cgroup {
            let _ = tokio::task::spawn_blocking(move || cg.freeze(false)).await;
        }
        let layer = layer?.map_err(ContainerError::io("writing a layer of", upper_dir))?;
        let images = self.images.clone();
        let reference = opts.reference.clone();
        let id = tokio::task::spawn_blocking(move || -> Result<String, ContainerError> {
            let id = images.create_child(NewImage { layer: Some(layer), ..new })?;
            if let Some(r) = &reference {
                images.set_ref(r, &id)?;
            }
            Ok(id)
        })
        .await
        .map_err(ContainerError::task("storing the committed image"))??;
        self.publish("commit", &rec, &[("comment", opts.comment.as_str()), ("imageID", id.as_str())]);
        if let Some(r) = &opts.reference {
            let name = r.familiar();
            self.events.publish("image", "tag", &id, &[("name", name.as_str())]);
        }
        Ok(id)
    }
}
