//! Read-only views: `GET /images/json`, `/images/{name}/json`, `/images/{name}/history`.
use super::reference::{familiar_match, Reference};
use super::store::refs_of;
use super::{lookup, Image, ImageError, ImageService, State};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Filters of `GET /images/json`.
#[derive(Debug, Default, Clone)]
pub struct ListFilters {
    pub reference: Vec<String>,
    pub dangling: Option<bool>,
    pub label: Vec<String>,
    pub before: Option<String>,
    pub since: Option<String>,
    /// `all=1`: also the untagged parents of other images (the steps of a build).
    pub all: bool,
}

impl ListFilters {
    pub fn from_map(m: &HashMap<String, Vec<String>>) -> Result<Self, ImageError> {
        let mut f = ListFilters::default();
        for (k, v) in m {
            match k.as_str() {
                "reference" => f.reference = v.clone(),
                "label" => f.label = v.clone(),
                "dangling" => {
                    f.dangling = match v.first().map(|s| s.to_ascii_lowercase()).as_deref() {
                        Some("true" | "1") => Some(true),
                        Some("false" | "0") => Some(false),
                        None => None,
                        Some(other) => return Err(ImageError::Invalid(format!("Invalid filter 'dangling=[{other}]'"))),
                    }
                }
                "before" => f.before = v.first().cloned(),
                "since" => f.since = v.first().cloned(),
                other => return Err(ImageError::Invalid(format!("invalid filter '{other}'"))),
            }
        }
        Ok(f)
    }
}

fn image_size(st: &State, img: &Image) -> u64 {
    img.record.diff_ids.iter().filter_map(|d| st.layers.get(d)).map(|l| l.size).sum()
}

fn label_ok(img: &Image, wanted: &[String]) -> bool {
    let labels = img.config.run_config().labels;
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(w),
    })
}

/// dockerd marshals a nil map as `null`.
fn labels_or_null(img: &Image) -> Value {
    let l = img.config.run_config().labels;
    if l.is_empty() {
        Value::Null
    } else {
        json!(l)
    }
}

fn tags_and_digests(refs: &[Reference]) -> (Vec<String>, Vec<String>) {
    let mut tags: Vec<String> = refs.iter().filter(|r| !r.is_digest()).map(|r| r.familiar()).collect();
    let mut digests: Vec<String> = refs.iter().filter(|r| r.is_digest()).map(|r| r.familiar()).collect();
    tags.sort();
    digests.sort();
    (tags, digests)
}

impl ImageService {
    /// `GET /images/json`: ImageSummary objects, newest first.
    pub fn list(&self, f: &ListFilters) -> Result<Vec<Value>, ImageError> {
        let st = self.lock();
        let created_of = |name: &str| -> Result<i64, ImageError> {
            let id = lookup(&st, name)?;
            Ok(st.images[&id].config.created_unix())
        };
        let before = f.before.as_deref().map(created_of).transpose()?;
        let since = f.since.as_deref().map(created_of).transpose()?;
        let mut out: Vec<(i64, Value)> = Vec::new();
        let parents: std::collections::HashSet<&str> = st.images.values().filter_map(|i| i.config.parent.as_deref()).collect();
        for (id, img) in st.images.iter().filter(|(_, i)| !i.record.removed) {
            let created = img.config.created_unix();
            if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
                continue;
            }
            if !f.label.is_empty() && !label_ok(img, &f.label) {
                continue;
            }
            let mut refs = refs_of(&st, id);
            if !f.reference.is_empty() {
                refs.retain(|r| f.reference.iter().any(|p| familiar_match(p, r)));
            }
            let (mut tags, mut digests) = tags_and_digests(&refs);
            if tags.is_empty() && digests.is_empty() {
                if !f.all && parents.contains(id.as_str()) {
                    continue; // an intermediate image, as dockerd hides them
                }
                if f.dangling == Some(false) || !f.reference.is_empty() {
                    continue;
                }
                tags = vec!["<none>:<none>".into()];
                digests = vec!["<none>@<none>".into()];
            } else if f.dangling == Some(true) && !tags.is_empty() {
                continue;
            }
            let size = image_size(&st, img);
            out.push((
                created,
                json!({
                    "Id": id,
                    "ParentId": img.config.parent.clone().unwrap_or_default(),
                    "RepoTags": tags,
                    "RepoDigests": digests,
                    "Created": created,
                    "Size": size,
                    "SharedSize": -1,
                    "VirtualSize": size,
                    "Labels": labels_or_null(img),
                    "Containers": -1,
                }),
            ));
        }
        out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1["Id"].as_str().cmp(&b.1["Id"].as_str())));
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    /// `GET /images/{name}/json`: ImageInspect.
    pub fn inspect(&self, name: &str) -> Result<Value, ImageError> {
        let st = self.lock();
        let id = lookup(&st, name)?;
        let img = &st.images[&id];
        let (tags, digests) = tags_and_digests(&refs_of(&st, &id));
        let size = image_size(&st, img);
        let c = &img.config;
        let dirs: Vec<String> = img.record.diff_ids.iter().map(|d| self.layer_dir(d).display().to_string()).collect();
        let mut data = serde_json::Map::new();
        if let Some((top, lower)) = dirs.split_last() {
            let top_parent = std::path::Path::new(top).parent().map(|p| p.display().to_string()).unwrap_or_default();
            if !lower.is_empty() {
                data.insert("LowerDir".into(), json!(lower.iter().rev().cloned().collect::<Vec<_>>().join(":")));
            }
            data.insert("MergedDir".into(), json!(format!("{top_parent}/merged")));
            data.insert("UpperDir".into(), json!(top));
            data.insert("WorkDir".into(), json!(format!("{top_parent}/work")));
        }
        let mut v = json!({
            "Id": id,
            "RepoTags": tags,
            "RepoDigests": digests,
            "Parent": c.parent.clone().unwrap_or_default(),
            "Comment": c.comment.clone().unwrap_or_default(),
            "Created": c.created.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "Container": c.container.clone().unwrap_or_default(),
            "ContainerConfig": c.container_config.clone().unwrap_or_else(|| Value::Object(super::config::empty_container_config())),
            "DockerVersion": c.docker_version.clone().unwrap_or_default(),
            "Author": c.author.clone().unwrap_or_default(),
            "Config": c.config.clone().unwrap_or(Value::Null),
            "Architecture": c.architecture,
            "Os": c.os,
            "Size": size,
            "VirtualSize": size,
            "GraphDriver": {"Name": "overlay2", "Data": data},
            "RootFS": {"Type": "layers", "Layers": img.record.diff_ids},
            "Metadata": {"LastTagTime": img.record.last_tag_time.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into())},
        });
        if let Some(var) = c.variant.as_ref().filter(|x| !x.is_empty()) {
            v["Variant"] = json!(var);
        }
        Ok(v)
    }

    /// `GET /images/{name}/history`: newest first.
    pub fn history(&self, name: &str) -> Result<Vec<Value>, ImageError> {
        let st = self.lock();
        let id = lookup(&st, name)?;
        let img = &st.images[&id];
        let sizes: Vec<u64> = img.record.diff_ids.iter().map(|d| st.layers.get(d).map(|l| l.size).unwrap_or(0)).collect();
        let mut out = Vec::new();
        let mut layer = 0;
        let ts = |c: &Option<String>| {
            c.as_deref().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| t.timestamp()).unwrap_or(0)
        };
        if img.config.history.is_empty() {
            for s in &sizes {
                out.push(json!({"Id": "<missing>", "Created": img.config.created_unix(), "CreatedBy": "", "Tags": null, "Size": s, "Comment": ""}));
            }
        } else {
            for h in &img.config.history {
                let size = if h.empty_layer {
                    0
                } else {
                    layer += 1;
                    sizes.get(layer - 1).copied().unwrap_or(0)
                };
                out.push(json!({
                    "Id": "<missing>",
                    "Created": ts(&h.created),
                    "CreatedBy": h.created_by.clone().unwrap_or_default(),
                    "Tags": null,
                    "Size": size,
                    "Comment": h.comment.clone().unwrap_or_default(),
                }));
            }
        }
        out.reverse();
        if let Some(top) = out.first_mut() {
            top["Id"] = json!(id);
            let (tags, _) = tags_and_digests(&refs_of(&st, &id));
            top["Tags"] = if tags.is_empty() { Value::Null } else { json!(tags) };
        }
        Ok(out)
    }

    /// `POST /images/{name}/tag?repo=&tag=`.
    pub fn tag(&self, name: &str, repo: &str, tag: &str) -> Result<(), ImageError> {
        let id = self.resolve_id(name)?;
        let mut r = Reference::parse(repo)?;
        if r.digest.is_some() {
            return Err(ImageError::Invalid("refusing to create a tag with a digest reference".into()));
        }
        if !tag.is_empty() {
            if !super::reference::valid_tag(tag) {
                return Err(ImageError::Invalid(format!("invalid tag format: {tag}")));
            }
            r.tag = Some(tag.into());
        }
        if r.tag.is_none() {
            r.tag = Some(super::reference::DEFAULT_TAG.into());
        }
        self.set_ref(&r, &id)?;
        Ok(())
    }
}
