//! Strategies rank the nodes the filters kept; the scheduler takes the first.
mod binpack;
mod random;
mod spread;
pub mod weigh;

pub use binpack::Binpack;
pub use random::Random;
pub use spread::Spread;

use super::node::NodeView;
use super::request::Request;
use super::SchedError;

/// What [`Strategy::key`] orders by: smaller is better.
pub type RankKey = (i64, i64);

pub trait Strategy: Send + Sync {
    fn name(&self) -> &'static str;
    /// Best node first. Fails when no node has room for the request.
    fn rank<'n>(&self, req: &Request, nodes: Vec<&'n NodeView>) -> Result<Vec<&'n NodeView>, SchedError>;
    /// The first node [`Strategy::rank`] would return, without ordering the rest.
    fn best<'n>(&self, req: &Request, nodes: Vec<&'n NodeView>) -> Result<&'n NodeView, SchedError> {
        self.rank(req, nodes)?.into_iter().next().ok_or(SchedError::NoHealthyNode)
    }
    /// A key that orders nodes as [`Strategy::best`] does (smallest first; equal keys keep the
    /// address order), or `None` when the request does not fit on `node` (so `best` would never
    /// pick it). Only a strategy that returns keys can be served from a ranked index; one that
    /// always returns `None` (random) is served by a scan.
    /// True for a strategy that picks uniformly among the accepted nodes (random).
    fn uniform(&self) -> bool {
        false
    }
    fn key(&self, _req: &Request, _node: &NodeView) -> Option<RankKey> {
        None
    }
}

/// A strategy by its `--strategy` name (`binpacking` is accepted for `binpack`).
pub fn by_name(name: &str) -> Result<Box<dyn Strategy>, SchedError> {
    Ok(match name {
        "spread" => Box::new(Spread),
        "binpack" | "binpacking" => Box::new(Binpack),
        "random" => Box::new(Random),
        other => return Err(SchedError::UnknownStrategy(other.to_string())),
    })
}
