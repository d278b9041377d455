//! Free TCP ports for test servers, taken below the kernel's ephemeral range.
//!
//! A port the kernel handed out for `bind(:0)` is in the ephemeral range, where the kernel also
//! picks the local ports of outgoing connections. A server that is stopped and started again on
//! its port (etcd after a simulated crash, a manager after a restart) could then find it taken
//! by some other test's connection. Below the range, only another test's pick can take it.
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The ports handed out: below Linux's default ephemeral range (32768–60999) and above the
/// well-known and common service ports.
const FIRST: u32 = 20_000;
const COUNT: u32 = 12_000;

/// The next candidate, per process; processes start at different offsets.
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

fn start_offset() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (std::process::id().wrapping_mul(7919) ^ nanos) % COUNT
}

/// A port that nothing listens on at 127.0.0.1 or on any address now (panics when none is left).
pub fn free_port() -> u16 {
    let _ = NEXT.compare_exchange(u32::MAX, start_offset(), Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % COUNT) as u16;
        // Free on the wildcard address too: servers under test may listen on 0.0.0.0.
        if TcpListener::bind(("0.0.0.0", port)).is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + COUNT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_bindable_distinct_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut uniq = ports.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), ports.len(), "a port handed out twice: {ports:?}");
        for p in ports {
            assert!((20_000..32_000).contains(&p), "{p}");
            TcpListener::bind(("127.0.0.1", p)).expect("the port is free");
        }
    }
}
