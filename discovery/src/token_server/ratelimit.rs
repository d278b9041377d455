//! A per-client token bucket: `per_minute` actions, refilled evenly over a minute, with a burst
//! of `per_minute`. Used for cluster creates (each one is a file on the service's disk).
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Clients remembered before the idle ones (full buckets) are dropped.
const PRUNE_ABOVE: usize = 4096;

pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute` 0: no limit.
    pub fn new(per_minute: u32) -> Self {
        RateLimiter { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Takes one action for `client`; `Err(wait)` when its bucket is empty, with the time
    /// until the next action is allowed.
    pub fn take(&self, client: IpAddr) -> Result<(), Duration> {
        self.take_at(client, Instant::now())
    }

    fn take_at(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let cap = f64::from(self.per_minute);
        let rate = cap / 60.0;
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() > PRUNE_ABOVE {
            b.retain(|_, (tokens, at)| *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < cap);
        }
        let (tokens, at) = b.entry(client).or_insert((cap, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn bursts_then_refills_per_client() {
        let r = RateLimiter::new(3);
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert!((0..3).all(|_| r.take_at(a, t0).is_ok()));
        let wait = r.take_at(a, t0).unwrap_err();
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20), "{wait:?}");
        // Another client has its own bucket.
        assert!(r.take_at(b, t0).is_ok());
        // One create comes back every 20 s.
        assert!(r.take_at(a, t0 + Duration::from_secs(21)).is_ok());
        assert!(r.take_at(a, t0 + Duration::from_secs(22)).is_err());
        assert!((0..100).all(|_| RateLimiter::new(0).take_at(a, t0).is_ok()));
    }
}
