//! `docker rmi`, following dockerd's ImageDelete: untag first, delete when nothing refers to
//! the image any more; containers using an image block it with Docker's conflict texts.
use super::reference::Reference;
use super::store::digest_of;
use super::{hex_of, ImageError, ImageService};
use crate::ids::short;
use serde_json::{json, Value};

const RUNNING: u8 = 1;
const ACTIVE_REFERENCE: u8 = 2;
const STOPPED: u8 = 4;
const HARD: u8 = RUNNING;
const SOFT: u8 = ACTIVE_REFERENCE | STOPPED;

struct Conflict {
    id: String,
    hard: bool,
    used: bool,
    message: String,
}

impl Conflict {
    fn into_error(self) -> ImageError {
        let force = if self.hard { "cannot be forced" } else { "must be forced" };
        ImageError::Conflict(format!("conflict: unable to delete {} ({force}) - {}", short(&self.id), self.message))
    }
}

/// All references from one repository with at most one tag (dockerd's isSingleReference).
fn is_single_reference(refs: &[Reference]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let mut single: Option<&Reference> = None;
    let mut canonical = std::collections::HashSet::new();
    for r in refs {
        if r.is_digest() {
            canonical.insert(r.name());
        } else if single.is_none() {
            single = Some(r);
        } else {
            return false;
        }
    }
    let single = single.unwrap_or(&refs[0]);
    canonical.len() == 1 && canonical.contains(&single.name())
}

fn is_id_prefix(id: &str, name: &str) -> bool {
    id.starts_with(name) || hex_of(id).starts_with(name) && !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ImageService {
    fn conflict(&self, id: &str, mask: u8) -> Option<Conflict> {
        let users = self.users_of(id);
        if mask & RUNNING != 0 {
            if let Some(u) = users.iter().find(|u| u.running) {
                return Some(Conflict {
                    id: id.into(),
                    hard: true,
                    used: true,
                    message: format!("image is being used by running container {}", short(&u.container_id)),
                });
            }
        }
        if mask & ACTIVE_REFERENCE != 0 && !self.refs_of(id).is_empty() {
            return Some(Conflict {
                id: id.into(),
                hard: false,
                used: false,
                message: "image is referenced in multiple repositories".into(),
            });
        }
        if mask & STOPPED != 0 {
            if let Some(u) = users.iter().find(|u| !u.running) {
                return Some(Conflict {
                    id: id.into(),
                    hard: false,
                    used: true,
                    message: format!("image is being used by stopped container {}", short(&u.container_id)),
                });
            }
        }
        None
    }

    fn untag(&self, r: &Reference, records: &mut Vec<Value>) -> Result<(), ImageError> {
        if self.remove_ref(r)? {
            records.push(json!({ "Untagged": r.familiar() }));
        }
        Ok(())
    }

    /// `DELETE /images/{name}?force=&noprune=`: the records dockerd returns.
    pub fn delete(&self, name: &str, force: bool, prune: bool) -> Result<Vec<Value>, ImageError> {
        let id = self.resolve_id(name)?;
        let mut refs = self.refs_of(&id);
        let mut records = Vec::new();
        let mut removed_repository_ref = false;
        if !is_id_prefix(&id, name) {
            if !force && is_single_reference(&refs) {
                if let Some(u) = self.users_of(&id).first() {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to remove repository reference {name:?} (must force) - container {} is using its referenced image {}",
                        short(&u.container_id),
                        short(&id)
                    )));
                }
            }
            let r = Reference::parse_tagged(name)?;
            self.untag(&r, &mut records)?;
            refs = self.refs_of(&id);
            if !r.is_digest() && !refs.iter().any(|x| !x.is_digest() && x.name() == r.name()) {
                for d in refs.iter().filter(|x| x.is_digest() && x.name() == r.name()) {
                    self.untag(d, &mut records)?;
                }
                refs = self.refs_of(&id);
            }
            if !refs.is_empty() {
                return Ok(records);
            }
            removed_repository_ref = true;
        } else if is_single_reference(&refs) {
            let mask = if force { HARD } else { HARD | (SOFT & !ACTIVE_REFERENCE) };
            if let Some(c) = self.conflict(&id, mask) {
                return Err(c.into_error());
            }
            for r in &refs {
                self.untag(r, &mut records)?;
            }
        }

        let mask = if force { HARD } else { HARD | SOFT };
        if let Some(c) = self.conflict(&id, mask) {
            let dangling = self.refs_of(&id).is_empty();
            if removed_repository_ref && (!dangling || c.used) {
                return Ok(records);
            }
            return Err(c.into_error());
        }
        for r in self.refs_of(&id) {
            self.untag(&r, &mut records)?;
        }
        let diff_ids = self.lock().images.get(&id).map(|i| i.record.diff_ids.clone()).unwrap_or_default();
        let keep = !self.users_of(&id).is_empty();
        let parent = self.lock().images.get(&id).and_then(|i| i.config.parent.clone());
        self.remove_image_record(&id, keep)?;
        records.push(json!({ "Deleted": id }));
        if prune && !keep {
            self.prune_parents(parent, &mut records)?;
        }
        let removed = self.collect_garbage()?;
        let mut chain = String::new();
        let mut layer_records = Vec::new();
        for d in &diff_ids {
            chain = if chain.is_empty() { d.clone() } else { digest_of(format!("{chain} {d}").as_bytes()) };
            if removed.contains(d) {
                layer_records.push(json!({ "Deleted": chain }));
            }
        }
        layer_records.reverse();
        records.extend(layer_records);
        Ok(records)
    }
}

impl ImageService {
    /// Deletes the untagged parents (the steps of a build) that nothing else holds, as dockerd
    /// does unless `noprune`: no tag, no container, no other child.
    fn prune_parents(&self, mut parent: Option<String>, records: &mut Vec<Value>) -> Result<(), ImageError> {
        while let Some(p) = parent.take() {
            let held = {
                let st = self.lock();
                let Some(img) = st.images.get(&p) else { break };
                parent = img.config.parent.clone();
                img.record.removed
                    || !super::store::refs_of(&st, &p).is_empty()
                    || st.images.values().any(|i| i.config.parent.as_deref() == Some(p.as_str()))
            };
            if held || !self.users_of(&p).is_empty() {
                break;
            }
            self.remove_image_record(&p, false)?;
            records.push(json!({ "Deleted": p }));
        }
        Ok(())
    }

    /// `POST /images/prune`: deletes unused dangling images (all unused ones with `all`).
    /// Returns the delete records and the bytes reclaimed.
    pub fn prune(&self, all: bool) -> Result<(Vec<Value>, u64), ImageError> {
        let layer_bytes = |s: &ImageService| s.lock().layers.values().map(|l| l.size).sum::<u64>();
        let before = layer_bytes(self);
        let candidates: Vec<String> = {
            let st = self.lock();
            st.images
                .values()
                .filter(|i| !i.record.removed)
                .map(|i| i.record.id.clone())
                .filter(|id| all || !super::store::refs_of(&st, id).iter().any(|r| !r.is_digest()))
                .collect()
        };
        let mut records = Vec::new();
        for id in candidates {
            if !self.users_of(&id).is_empty() {
                continue;
            }
            match self.delete(&id, true, true) {
                Ok(r) => records.extend(r),
                Err(e) => tracing::warn!(%id, error = %e, "prune: cannot delete image"),
            }
        }
        Ok((records, before.saturating_sub(layer_bytes(self))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageUser;
    use std::sync::{Arc, Mutex};

    fn setup() -> (tempfile::TempDir, Arc<ImageService>, String) {
        crate::image::store::tests::one_layer_image(Default::default())
    }

    #[test]
    fn untag_then_delete() {
        let (_d, svc, id) = setup();
        svc.set_ref(&Reference::parse_tagged("other:x").unwrap(), &id).unwrap();
        let r = svc.delete("other:x", false, true).unwrap();
        assert_eq!(r, vec![json!({"Untagged": "other:x"})]);
        let r = svc.delete("busybox", false, true).unwrap();
        assert_eq!(r[0], json!({"Untagged": "busybox:latest"}));
        assert_eq!(r[1], json!({"Deleted": id}));
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(svc.count(), 0);
        assert!(svc.delete("busybox", false, true).is_err());
    }

    #[test]
    fn in_use_conflicts() {
        let (_d, svc, id) = setup();
        let users: Arc<Mutex<Vec<ImageUser>>> = Arc::new(Mutex::new(vec![ImageUser { container_id: "c".repeat(64), running: true }]));
        let u2 = users.clone();
        svc.set_in_use(Arc::new(move |_: &str| u2.lock().unwrap().clone()));
        let e = svc.delete("busybox", false, false).unwrap_err().to_string();
        assert_eq!(e, format!("conflict: unable to remove repository reference \"busybox\" (must force) - container cccccccccccc is using its referenced image {}", short(&id)));
        let e = svc.delete(&id, true, false).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("conflict: unable to delete {} (cannot be forced) - image is being used by running container cccccccccccc", short(&id))
        );
        // running container: forced rmi by name only untags
        let r = svc.delete("busybox", true, false).unwrap();
        assert_eq!(r, vec![json!({"Untagged": "busybox:latest"})]);
        assert_eq!(svc.count(), 1);
        // stopped container: needs force; then the image goes but its layers stay for the container
        users.lock().unwrap()[0].running = false;
        let e = svc.delete(short(&id), false, false).unwrap_err().to_string();
        assert!(e.contains("(must be forced) - image is being used by stopped container cccccccccccc"), "{e}");
        let dirs = svc.resolve(&id).unwrap().layer_dirs;
        let r = svc.delete(&id, true, false).unwrap();
        assert_eq!(r, vec![json!({"Deleted": id})]);
        assert_eq!(svc.count(), 0);
        assert!(svc.resolve(short(&id)).is_err());
        assert!(dirs[0].exists());
        assert_eq!(svc.resolve(&id).unwrap().layer_dirs, dirs);
        users.lock().unwrap().clear();
        svc.collect_garbage().unwrap();
        assert!(!dirs[0].exists());
        assert!(svc.resolve(&id).is_err());
    }

    #[test]
    fn multiple_repositories_need_force_by_id() {
        let (_d, svc, id) = setup();
        svc.set_ref(&Reference::parse_tagged("a/b:1").unwrap(), &id).unwrap();
        let e = svc.delete(&id, false, false).unwrap_err().to_string();
        assert!(e.ends_with("(must be forced) - image is referenced in multiple repositories"), "{e}");
        let r = svc.delete(&id, true, false).unwrap();
        assert_eq!(r.iter().filter(|x| x.get("Untagged").is_some()).count(), 2);
        assert_eq!(svc.count(), 0);
    }
}
