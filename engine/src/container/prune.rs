//! `POST /containers/prune` and the container part of `GET /system/df`.
use super::record::Record;
use super::{rootfs, view, ContainerError, ContainerService};
use crate::runtime::Runtime;
use serde_json::Value;
use std::collections::HashMap;

/// `until` of prune filters: a Unix time (`1700000000[.5]`), RFC 3339, or a duration before
/// now (`10m`, `24h`, `1h30m`), as dockerd accepts it. Returns Unix seconds.
pub fn parse_until(s: &str, now: i64) -> Option<i64> {
    if let Some(n) = crate::events::parse_time(s) {
        return Some(n.div_euclid(1_000_000_000));
    }
    let mut total = 0f64;
    let mut num = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            i += 1;
            continue;
        }
        let unit = if s[i..].starts_with("ms") {
            i += 2;
            0.001
        } else {
            i += 1;
            match c {
                's' => 1.0,
                'm' => 60.0,
                'h' => 3600.0,
                _ => return None,
            }
        };
        total += num.parse::<f64>().ok()? * unit;
        num.clear();
    }
    if !num.is_empty() || s.is_empty() {
        return None;
    }
    Some(now - total as i64)
}

fn labels_match(labels: &HashMap<String, String>, f: &str) -> bool {
    match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(f),
    }
}

impl<R: Runtime> ContainerService<R> {
    /// Bytes written by the container (its overlay upper dir).
    pub fn size_rw(&self, id: &str) -> u64 {
        crate::image::unpack::du(&rootfs::paths(&Record::dir(&self.cfg.data_root, id)).upper)
    }

    /// Removes every stopped container matching `until`, `label` and `label!` filters; returns
    /// the removed ids and the bytes their writable layers held.
    pub async fn prune(&self, filters: &HashMap<String, Vec<String>>) -> Result<(Vec<String>, u64), ContainerError> {
        let now = chrono::Utc::now().timestamp();
        let mut until = None;
        for (k, vals) in filters {
            match k.as_str() {
                "label" | "label!" => {}
                "until" => {
                    for v in vals {
                        until = Some(
                            parse_until(v, now)
                                .ok_or_else(|| ContainerError::InvalidParam(format!("failed to parse value {v} as a time for until")))?,
                        );
                    }
                }
                other => return Err(ContainerError::InvalidParam(format!("Invalid filter '{other}'"))),
            }
        }
        let mut recs: Vec<Record> = self.all().iter().map(|c| c.record()).filter(|r| !r.running()).collect();
        recs.sort_by(|a, b| a.created.cmp(&b.created));
        let mut deleted = vec![];
        let mut reclaimed = 0;
        for rec in recs {
            let labels = rec.config.labels.clone().unwrap_or_default();
            let pos = filters.get("label").is_none_or(|v| v.iter().all(|l| labels_match(&labels, l)));
            let neg = filters.get("label!").is_some_and(|v| v.iter().any(|l| labels_match(&labels, l)));
            let created = chrono::DateTime::parse_from_rfc3339(&rec.created).map(|t| t.timestamp()).unwrap_or(0);
            if !pos || neg || until.is_some_and(|u| created >= u) {
                continue;
            }
            let size = self.size_rw(&rec.id);
            match self.remove(&rec.id, false).await {
                Ok(()) => {
                    deleted.push(rec.id);
                    reclaimed += size;
                }
                Err(e) => tracing::info!(container = %rec.id, error = %e, "prune: not removed"),
            }
        }
        Ok((deleted, reclaimed))
    }

    /// Every container as `docker system df -v` lists it (`SizeRw`, `SizeRootFs`).
    pub fn df_containers(&self, image_size: impl Fn(&str) -> u64) -> Vec<Value> {
        let mut recs: Vec<Record> = self.all().iter().map(|c| c.record()).collect();
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        recs.iter()
            .map(|r| {
                let mut v = view::summary(r);
                let rw = self.size_rw(&r.id);
                v["SizeRw"] = rw.into();
                v["SizeRootFs"] = (rw + image_size(&r.image_id)).into();
                v
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn until_values() {
        let now = 1_000_000;
        assert_eq!(parse_until("10m", now), Some(now - 600));
        assert_eq!(parse_until("1h30m", now), Some(now - 5400));
        assert_eq!(parse_until("1.5h", now), Some(now - 5400));
        assert_eq!(parse_until("500", now), Some(500));
        assert_eq!(parse_until("1970-01-01T00:00:10Z", now), Some(10));
        assert_eq!(parse_until("10x", now), None);
        assert_eq!(parse_until("10", now), Some(10));
        assert_eq!(parse_until("", now), None);
    }
}
