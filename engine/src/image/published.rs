//! The image operations as a client asks for them (`docker pull`, `import`, `load`, `save`,
//! `tag`, `rmi`, `image prune`, `push`), each publishing its `docker events` (type `image`).
//! Internal callers (the builder, the cache prune) use the plain operations, which publish
//! nothing, as before.
//!
//! Pulls and pushes run in the service's [`Tasks`](crate::tasks::Tasks): they outlive the
//! request that started them if its client goes away, and end when the engine shuts down.
use super::progress::Progress;
use super::pull::PreparedPull;
use super::reference::Reference;
use super::registry::Credentials;
use super::{ImageError, ImageService};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

impl ImageService {
    /// The service's background tasks (pulls, pushes, builds and their helpers).
    pub fn tasks(&self) -> &crate::tasks::Tasks {
        &self.tasks
    }

    fn publish(&self, action: &str, id: &str, name: &str) {
        self.events.publish("image", action, id, &[("name", name)]);
    }

    /// Runs a prepared pull in the background, reporting on `progress`; `pull` when it succeeds.
    pub fn start_pull(self: &Arc<Self>, prepared: PreparedPull, progress: Progress) {
        let svc = self.clone();
        let name = prepared.reference().familiar();
        self.tasks.spawn_until_shutdown(async move {
            match prepared.run(&progress).await {
                Ok(_) => svc.publish("pull", &name, &name),
                Err(e) => tracing::info!(error = %e, "pull failed"),
            }
        });
    }

    /// Pushes `name` (with `tag`, if any) in the background, reporting on `progress`.
    pub fn start_push(self: &Arc<Self>, name: String, tag: String, creds: Option<Credentials>, progress: Progress) {
        let svc = self.clone();
        self.tasks.spawn_until_shutdown(async move {
            if let Err(e) = svc.push(&name, &tag, creds, &progress).await {
                tracing::info!(error = %e, "push failed");
            }
        });
    }

    /// [`ImageService::import_file`], then `import` (blocking).
    pub fn import_published(
        &self,
        tmp: &Path,
        digest: &str,
        name: Option<&Reference>,
        changes: &[String],
        message: &str,
    ) -> Result<String, ImageError> {
        let id = self.import_file(tmp, digest, name, changes, message)?;
        self.publish("import", &id, &id);
        Ok(id)
    }

    /// [`ImageService::load_archive`], then `load` for every image it names (blocking).
    pub fn load_published(&self, archive: &Path) -> Result<Vec<String>, ImageError> {
        let lines = self.load_archive(archive)?;
        for l in &lines {
            let name = l.trim().strip_prefix("Loaded image ID: ").or_else(|| l.trim().strip_prefix("Loaded image: "));
            if let Some(name) = name {
                let id = self.resolve_id(name).unwrap_or_else(|_| name.to_string());
                self.publish("load", &id, name);
            }
        }
        Ok(lines)
    }

    /// `save` for every name that resolves (before the archive is planned, as dockerd), then
    /// [`ImageService::save_plan`].
    pub fn save_published(&self, names: &[String]) -> Result<Vec<(String, Vec<Reference>)>, ImageError> {
        for n in names {
            if let Ok(id) = self.resolve_id(n) {
                self.publish("save", &id, n);
            }
        }
        if names.is_empty() {
            return Err(ImageError::Invalid("no images specified".into()));
        }
        self.save_plan(names)
    }

    /// [`ImageService::tag`], then `tag` with the new name.
    pub fn tag_published(&self, name: &str, repo: &str, tag: &str) -> Result<(), ImageError> {
        self.tag(name, repo, tag)?;
        if let Ok(id) = self.resolve_id(name) {
            let full = format!("{repo}:{}", if tag.is_empty() { "latest" } else { tag });
            let new = Reference::parse(&full).map(|r| r.familiar()).unwrap_or(full);
            self.publish("tag", &id, &new);
        }
        Ok(())
    }

    /// [`ImageService::delete`] (`docker rmi`), then `untag` and `delete` (blocking).
    pub fn delete_published(&self, name: &str, force: bool, prune: bool) -> Result<Vec<Value>, ImageError> {
        let id = self.resolve_id(name).unwrap_or_default();
        let records = self.delete(name, force, prune)?;
        self.removal_events(&id, &records);
        Ok(records)
    }

    /// [`ImageService::prune`], then `delete` for every image removed (blocking).
    pub fn prune_published(&self, all: bool) -> Result<(Vec<Value>, u64), ImageError> {
        let (deleted, reclaimed) = self.prune(all)?;
        self.removal_events("", &deleted);
        Ok((deleted, reclaimed))
    }

    /// `untag` and `delete` events for the records of an image removal (`id`: the image named).
    fn removal_events(&self, id: &str, records: &[Value]) {
        for r in records {
            if r.get("Untagged").is_some() && !id.is_empty() {
                self.publish("untag", id, id);
            }
            if let Some(d) = r.get("Deleted").and_then(|d| d.as_str()) {
                self.publish("delete", d, d);
            }
        }
    }

    /// Ends the pulls and pushes in progress (they stop at their next await).
    pub async fn shutdown(&self) {
        self.tasks.shutdown(std::time::Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventBus;

    fn setup() -> (tempfile::TempDir, EventBus, Arc<ImageService>, String) {
        let bus = EventBus::default();
        let (d, svc, id) = crate::image::store::tests::one_layer_image(bus.clone());
        (d, bus, svc, id)
    }

    /// (action, actor id, name attribute) of every image event so far.
    fn seen(bus: &EventBus) -> Vec<(String, String, String)> {
        let (past, _) = bus.subscribe_since(Some(0));
        past.into_iter()
            .filter(|e| e.typ == "image")
            .map(|e| (e.action, e.actor.id, e.actor.attributes.get("name").cloned().unwrap_or_default()))
            .collect()
    }

    fn ev(action: &str, id: &str, name: &str) -> (String, String, String) {
        (action.into(), id.into(), name.into())
    }

    #[test]
    fn client_operations_publish_and_plain_ones_do_not() {
        let (_d, bus, svc, id) = setup();
        svc.tag("busybox", "plain", "").unwrap();
        assert!(seen(&bus).is_empty(), "the plain tag published");
        svc.tag_published("busybox", "mine", "v1").unwrap();
        assert_eq!(seen(&bus), [ev("tag", &id, "mine:v1")]);
        svc.save_published(&["busybox".into(), "nope".into()]).unwrap_err();
        assert_eq!(seen(&bus).last(), Some(&ev("save", &id, "busybox")));
        let e = svc.save_published(&[]).unwrap_err();
        assert_eq!(e.to_string(), "no images specified");
        svc.delete_published(&id, true, true).unwrap();
        let all = seen(&bus);
        assert!(all.contains(&ev("untag", &id, &id)), "{all:?}");
        assert!(all.contains(&ev("delete", &id, &id)), "{all:?}");
    }

    #[tokio::test]
    async fn shutdown_ends_background_tasks() {
        let (_d, _bus, svc, _) = setup();
        svc.tasks().spawn_until_shutdown(std::future::pending::<()>());
        assert_eq!(svc.tasks().len(), 1);
        svc.shutdown().await;
        assert!(svc.tasks().is_empty());
    }
}
