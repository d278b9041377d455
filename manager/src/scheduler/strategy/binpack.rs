//! `binpack`: the most loaded node that still fits first (ties: more containers).
use super::{weigh::weigh, weigh::weight, RankKey, Strategy};
use crate::scheduler::{NodeView, Request, SchedError};

pub struct Binpack;

fn order(x: &(&NodeView, i64), y: &(&NodeView, i64)) -> std::cmp::Ordering {
    let ((a, wa), (b, wb)) = (x, y);
    wb.cmp(wa).then(b.containers.len().cmp(&a.containers.len()))
}

impl Strategy for Binpack {
    fn name(&self) -> &'static str {
        "binpack"
    }
    fn rank<'n>(&self, req: &Request, nodes: Vec<&'n NodeView>) -> Result<Vec<&'n NodeView>, SchedError> {
        let mut w = weigh(req, nodes, 10)?;
        w.sort_by(order);
        Ok(w.into_iter().map(|(n, _)| n).collect())
    }
    fn best<'n>(&self, req: &Request, nodes: Vec<&'n NodeView>) -> Result<&'n NodeView, SchedError> {
        // `min_by` keeps the first of equal minima, as the stable sort in `rank` does.
        weigh(req, nodes, 10)?.into_iter().min_by(order).map(|(n, _)| n).ok_or(SchedError::NoHealthyNode)
    }
    fn key(&self, req: &Request, node: &NodeView) -> Option<RankKey> {
        weight(req, node, 10).map(|w| (-w, -(node.containers.len() as i64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::{container, place, sized};
    use std::sync::Arc;

    #[test]
    fn fills_one_node_first() {
        let mut nodes = [sized("n1", 2, 1 << 30), sized("n2", 2, 1 << 30)];
        let req = Request { memory: 256 << 20, ..Default::default() };
        let placed = place(&Binpack, &mut nodes, &req, 6);
        assert_eq!(&placed[..4], &[placed[0].clone(), placed[0].clone(), placed[0].clone(), placed[0].clone()]);
        assert_ne!(placed[4], placed[0]);
    }

    #[test]
    fn ties_go_to_more_containers() {
        let n1 = sized("n1", 1, 1 << 30);
        let mut n2 = sized("n2", 1, 1 << 30);
        n2.containers.push(Arc::new(container("c", "c")));
        assert_eq!(Binpack.rank(&Request::default(), vec![&n1, &n2]).unwrap()[0].name, "n2");
        assert_eq!(Binpack.best(&Request::default(), vec![&n1, &n2]).unwrap().name, "n2");
    }
}
