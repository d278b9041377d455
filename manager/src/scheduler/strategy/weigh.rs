//! The weight spread and binpack share: `cpu% + mem% + health_factor × health`, where a
//! percentage is what the node would have reserved after this container (100 when the request
//! asks for none). Nodes where the request does not fit are dropped.
use crate::scheduler::node::NodeView;
use crate::scheduler::request::Request;
use crate::scheduler::{NodeReason, SchedError};

/// Why the request does not fit on `n`, if it does not.
pub fn misfit(req: &Request, n: &NodeView) -> Option<String> {
    if req.memory > 0 && n.used_memory + req.memory > n.total_memory {
        return Some(format!(
            "needs {} memory, {} of {} reserved",
            human_bytes(req.memory),
            human_bytes(n.used_memory),
            human_bytes(n.total_memory)
        ));
    }
    if req.cpus > 0 && n.used_cpus + req.cpus > n.total_cpus {
        return Some(format!("needs {} CPUs, {} of {} reserved", req.cpus, n.used_cpus, n.total_cpus));
    }
    None
}

/// `n`'s weight for `req`, or `None` when the request does not fit there.
pub fn weight(req: &Request, n: &NodeView, health_factor: i64) -> Option<i64> {
    if n.total_memory < req.memory || n.total_cpus < req.cpus {
        return None;
    }
    let cpu = if req.cpus > 0 { (n.used_cpus + req.cpus) * 100 / n.total_cpus } else { 100 };
    let mem = if req.memory > 0 { (n.used_memory + req.memory) * 100 / n.total_memory } else { 100 };
    (cpu <= 100 && mem <= 100).then_some(cpu + mem + health_factor * n.health)
}

/// Weighs every node that has room; fails with each node's shortfall when none has.
pub fn weigh<'n>(req: &Request, nodes: Vec<&'n NodeView>, health_factor: i64) -> Result<Vec<(&'n NodeView, i64)>, SchedError> {
    let mut out = Vec::with_capacity(nodes.len());
    for n in &nodes {
        if let Some(w) = weight(req, n, health_factor) {
            out.push((*n, w));
        }
    }
    if out.is_empty() {
        let reasons = nodes
            .iter()
            .map(|n| NodeReason {
                node: n.name.clone(),
                filter: "resources",
                why: misfit(req, n).unwrap_or_else(|| "not enough resources".into()),
            })
            .collect();
        return Err(SchedError::NoResources { reasons });
    }
    Ok(out)
}

/// go-units' BytesSize: `1 GiB`, `2.05 GiB`, `512 MiB`.
pub fn human_bytes(b: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    // go-units uses %.4g: four significant digits, trailing zeros dropped.
    let int_digits = if v < 1.0 { 1 } else { (v.log10().floor() as usize) + 1 };
    let s = format!("{v:.*}", 4usize.saturating_sub(int_digits));
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    format!("{s} {}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn bytes() {
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(512 << 20), "512 MiB");
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(2_201_170_739), "2.05 GiB");
    }
}
