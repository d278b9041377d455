//! `random`: a uniform shuffle, without any resource check (as classic Swarm).
use super::Strategy;
use crate::scheduler::{NodeView, Request, SchedError};
use rand::seq::SliceRandom;

pub struct Random;

impl Strategy for Random {
    fn name(&self) -> &'static str {
        "random"
    }
    fn rank<'n>(&self, _: &Request, mut nodes: Vec<&'n NodeView>) -> Result<Vec<&'n NodeView>, SchedError> {
        nodes.shuffle(&mut rand::rng());
        Ok(nodes)
    }
    fn uniform(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::node;
    #[test]
    fn keeps_every_node() {
        let (a, b, c) = (node("a"), node("b"), node("c"));
        let mut r: Vec<String> = Random.rank(&Request::default(), vec![&a, &b, &c]).unwrap().iter().map(|n| n.name.clone()).collect();
        r.sort();
        assert_eq!(r, vec!["a", "b", "c"]);
    }
}
