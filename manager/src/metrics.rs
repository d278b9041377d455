//! `/metrics` in Prometheus text format: nodes by state, containers, creates, and latency
//! histograms of placement (the scheduler alone) and of whole creates.
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", self.counts[i].load(Ordering::Relaxed));
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {n}");
    }
}

#[derive(Default)]
pub struct Metrics {
    pub placement: Histogram,
    pub create: Histogram,
    pub creates_ok: AtomicU64,
    pub creates_failed: AtomicU64,
}

/// Point-in-time gauges the cluster supplies when scraped.
pub struct Gauges {
    /// (state, count)
    pub nodes: Vec<(&'static str, usize)>,
    pub containers: usize,
    pub running: usize,
    pub images: usize,
    pub event_listeners: usize,
    /// This manager's role.
    pub primary: bool,
    /// Times this manager was elected primary.
    pub elections: u64,
}

impl Metrics {
    pub fn observe_placement(&self, d: Duration) {
        self.placement.observe(d);
    }
    pub fn observe_create(&self, d: Duration, ok: bool) {
        self.create.observe(d);
        if ok {
            self.creates_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.creates_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP swarm_nodes Nodes by state.\n# TYPE swarm_nodes gauge");
        for (state, n) in &g.nodes {
            let _ = writeln!(out, "swarm_nodes{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP swarm_containers Containers on all nodes.\n# TYPE swarm_containers gauge");
        let _ = writeln!(out, "swarm_containers{{state=\"all\"}} {}", g.containers);
        let _ = writeln!(out, "swarm_containers{{state=\"running\"}} {}", g.running);
        let _ = writeln!(
            out,
            "# HELP swarm_images Images on all nodes (not deduplicated).\n# TYPE swarm_images gauge\nswarm_images {}",
            g.images
        );
        let _ = writeln!(
            out,
            "# HELP swarm_event_listeners Clients following /events.\n# TYPE swarm_event_listeners gauge\nswarm_event_listeners {}",
            g.event_listeners
        );
        let _ = writeln!(out, "# HELP swarm_creates_total Container creates through the scheduler.\n# TYPE swarm_creates_total counter");
        let _ = writeln!(out, "swarm_creates_total{{result=\"ok\"}} {}", self.creates_ok.load(Ordering::Relaxed));
        let _ = writeln!(out, "swarm_creates_total{{result=\"error\"}} {}", self.creates_failed.load(Ordering::Relaxed));
        let (p, r) = if g.primary { (1, 0) } else { (0, 1) };
        let _ = writeln!(out, "# HELP swarm_manager_role This manager's role (1 = current).\n# TYPE swarm_manager_role gauge");
        let _ = writeln!(out, "swarm_manager_role{{role=\"primary\"}} {p}\nswarm_manager_role{{role=\"replica\"}} {r}");
        let _ = writeln!(out, "# HELP swarm_manager_elections_total Times this manager was elected primary.\n# TYPE swarm_manager_elections_total counter\nswarm_manager_elections_total {}", g.elections);
        self.placement.render(&mut out, "swarm_scheduling_seconds", "Time to choose a node (filters and strategy).");
        self.create.render(&mut out, "swarm_create_seconds", "Time of a whole create through the manager.");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.observe_placement(Duration::from_micros(300));
        m.observe_create(Duration::from_millis(3), true);
        let g = Gauges {
            nodes: vec![("healthy", 2), ("pending", 1)],
            containers: 5,
            running: 3,
            images: 4,
            event_listeners: 0,
            primary: false,
            elections: 2,
        };
        let t = m.render(&g);
        assert!(t.contains("swarm_nodes{state=\"healthy\"} 2"));
        assert!(t.contains("swarm_scheduling_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(t.contains("swarm_scheduling_seconds_bucket{le=\"0.0001\"} 0"));
        assert!(t.contains("swarm_create_seconds_count 1"));
        assert!(t.contains("swarm_creates_total{result=\"ok\"} 1"));
        assert!(t.contains("swarm_manager_role{role=\"replica\"} 1"));
        assert!(t.contains("swarm_manager_elections_total 2"));
    }
}
