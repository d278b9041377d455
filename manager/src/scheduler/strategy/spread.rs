//! `spread`: the least loaded node first (ties: fewer containers); failing nodes are penalised.
use super::{weigh::weigh, weigh::weight, RankKey, Strategy};
use crate::scheduler::{NodeView, Request, SchedError};

pub struct Spread;

fn order(x: &(&NodeView, i64), y: &(&NodeView, i64)) -> std::cmp::Ordering {
    let ((a, wa), (b, wb)) = (x, y);
    wa.cmp(wb).then(a.containers.len().cmp(&b.containers.len()))
}

impl Strategy for Spread {
    fn name(&self) -> &'static str {
        "spread"
    }
    fn rank<'n>(&self, req: &Request, nodes: Vec<&'n NodeView>) -> Result<Vec<&'n NodeView>, SchedError> {
        let mut w = weigh(req, nodes, -10)?;
        w.sort_by(order);
        Ok(w.into_iter().map(|(n, _)| n).collect())
    }
    fn best<'n>(&self, req: &Request, nodes: Vec<&'n NodeView>) -> Result<&'n NodeView, SchedError> {
        // `min_by` keeps the first of equal minima, as the stable sort in `rank` does.
        weigh(req, nodes, -10)?.into_iter().min_by(order).map(|(n, _)| n).ok_or(SchedError::NoHealthyNode)
    }
    fn key(&self, req: &Request, node: &NodeView) -> Option<RankKey> {
        weight(req, node, -10).map(|w| (w, node.containers.len() as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::{container, node, place, sized};
    use std::sync::Arc;

    #[test]
    fn fewer_containers_first_without_reservations() {
        let mut n1 = node("n1");
        n1.containers.push(Arc::new(container("c1", "a")));
        let n2 = node("n2");
        let r = Spread.rank(&Request::default(), vec![&n1, &n2]).unwrap();
        assert_eq!(r[0].name, "n2");
    }

    #[test]
    fn memory_fills_evenly() {
        let mut nodes = [sized("n1", 2, 1 << 30), sized("n2", 2, 1 << 30)];
        let req = Request { memory: 256 << 20, ..Default::default() };
        let placed = place(&Spread, &mut nodes, &req, 4);
        assert_eq!(placed.iter().filter(|p| *p == "n1").count(), 2);
        let big = Request { memory: 2 << 30, ..Default::default() };
        let e = Spread.rank(&big, nodes.iter().collect()).unwrap_err();
        assert!(e.to_string().contains("no resources available to schedule container"), "{e}");
        assert!(e.to_string().contains("n1: resources: needs 2 GiB memory"), "{e}");
    }

    #[test]
    fn unhealthy_penalty() {
        let n1 = node("n1");
        let mut n2 = node("n2");
        n2.health = 50;
        let r = Spread.rank(&Request::default(), vec![&n2, &n1]).unwrap();
        assert_eq!(r[0].name, "n1");
        assert_eq!(Spread.best(&Request::default(), vec![&n2, &n1]).unwrap().name, "n1");
    }

    #[test]
    fn best_is_the_first_ranked() {
        let nodes: Vec<_> = (0..20)
            .map(|i| {
                let mut n = sized(&format!("n{i}"), 4, 4 << 30);
                for k in 0..(i * 7 % 5) {
                    let mut c = container(&format!("c{i}-{k}"), "x");
                    c.memory = 100 << 20;
                    n.containers.push(Arc::new(c));
                }
                n.recount();
                n
            })
            .collect();
        let req = Request { memory: 64 << 20, ..Default::default() };
        let first = Spread.rank(&req, nodes.iter().collect()).unwrap()[0].name.clone();
        assert_eq!(Spread.best(&req, nodes.iter().collect()).unwrap().name, first);
    }
}
