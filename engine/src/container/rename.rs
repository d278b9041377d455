//! `docker rename`.
use super::{ContainerError, ContainerService};
use crate::runtime::Runtime;

impl<R: Runtime> ContainerService<R> {
    /// Gives the container a new name; the old one becomes free.
    pub async fn rename(&self, key: &str, new_name: &str) -> Result<(), ContainerError> {
        let new_name = new_name.trim_start_matches('/');
        if new_name.is_empty() {
            return Err(ContainerError::InvalidParam("Neither old nor new names may be empty".into()));
        }
        if !crate::ids::valid_name(new_name) {
            return Err(ContainerError::InvalidParam(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let ctr = self.get(key)?;
        let _op = ctr.op.lock().await;
        let (id, old) = {
            let r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (r.id.clone(), r.name.clone())
        };
        if old == new_name {
            return Err(ContainerError::InvalidParam("Renaming a container with the same name as its current name".into()));
        }
        {
            let mut t = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(other) = t.names.get(new_name) {
                return Err(ContainerError::Conflict(format!(
                    "Conflict. The container name \"/{new_name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            t.names.remove(&old);
            t.names.insert(new_name.to_string(), id.clone());
        }
        let snapshot = {
            let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            r.name = new_name.to_string();
            r.clone()
        };
        if let Err(e) = self.save(&snapshot) {
            let mut t = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            t.names.remove(new_name);
            t.names.insert(old.clone(), id);
            ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner).name = old;
            return Err(e);
        }
        let old_attr = format!("/{old}");
        self.publish("rename", &snapshot, &[("oldName", old_attr.as_str())]);
        Ok(())
    }
}
