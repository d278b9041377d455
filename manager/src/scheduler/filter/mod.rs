//! Filters: pure predicates over one node. Each lives in its own file; [`by_name`] is the
//! registry `--filter` uses. A filter also says which conditions it imposed (for the
//! "Unable to find a node…" error) and, only when asked, why it turned a node down.
mod affinity;
mod constraint;
mod dependency;
mod health;
mod port;
mod slots;
mod whitelist;

pub use affinity::Affinity;
pub use constraint::Constraint;
pub use dependency::Dependency;
pub use health::Health;
pub use port::Port;
pub use slots::Slots;
pub use whitelist::Whitelist;

use super::node::NodeView;
use super::request::Request;
use super::SchedError;

/// Classic Swarm's default filter chain, in order.
pub const DEFAULT_FILTERS: [&str; 7] = ["health", "port", "containerslots", "dependency", "affinity", "constraint", "whitelist"];

pub trait Filter: Send + Sync {
    fn name(&self) -> &'static str;
    /// Pure: no I/O, no locks, no clock. `soft` = also enforce `~` expressions.
    fn accepts(&self, req: &Request, node: &NodeView, soft: bool) -> bool;
    /// False when this filter accepts every node for `req` (so it need not be run).
    fn applies(&self, _req: &Request, _soft: bool) -> bool {
        true
    }
    /// Why `node` was turned down (called only to build an error).
    fn explain(&self, req: &Request, node: &NodeView, soft: bool) -> String;
    /// The conditions this filter imposes on `req` (one bracketed line of the error).
    fn conditions(&self, _req: &Request) -> Vec<String> {
        vec![]
    }
}

/// A filter by its `--filter` name.
pub fn by_name(name: &str) -> Result<Box<dyn Filter>, SchedError> {
    Ok(match name {
        "health" => Box::new(Health),
        "port" => Box::new(Port),
        "containerslots" => Box::new(Slots),
        "dependency" => Box::new(Dependency),
        "affinity" => Box::new(Affinity),
        "constraint" => Box::new(Constraint),
        "whitelist" => Box::new(Whitelist),
        other => return Err(SchedError::UnknownFilter(other.to_string())),
    })
}

/// True when `e` applies in this pass.
pub(crate) fn active(e: &super::expr::Expr, soft: bool) -> bool {
    soft || !e.soft
}
