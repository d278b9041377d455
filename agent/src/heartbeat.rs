//! The registration loop of `swarm join`: an optional random delay, then register every
//! heartbeat with the TTL (errors are logged and retried next heartbeat, as classic Swarm did),
//! and deregister once `stop` is cancelled.
use discovery::{duration, Discovery, Entry};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest wait for the deregistration at shutdown.
pub const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Timing of the loop (validated by [`crate::validate`]).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat: Duration,
    pub ttl: Duration,
    /// The first registration waits a random time in `[0, delay)`.
    pub delay: Duration,
}

/// Runs until `stop`, then deregisters `me`. Returns how many registrations succeeded.
pub async fn run<D: Discovery>(d: &D, me: &Entry, t: Timing, stop: CancellationToken) -> u64 {
    if !t.delay.is_zero() {
        let jitter = Duration::from_nanos(rand::random_range(0..t.delay.as_nanos().min(u64::MAX as u128) as u64));
        tracing::info!(delay = %duration::format(jitter), "adding a random delay to avoid synchronized registration");
        tokio::select! {
            _ = stop.cancelled() => return 0,
            _ = tokio::time::sleep(jitter) => {}
        }
    }
    tracing::info!(addr = %me, heartbeat = %duration::format(t.heartbeat), ttl = %duration::format(t.ttl), "registering on the discovery service every heartbeat");
    let (mut ok, mut failing) = (0u64, true);
    loop {
        let res = tokio::select! {
            _ = stop.cancelled() => break,
            r = d.register(me, t.ttl) => r,
        };
        match res {
            Ok(()) => {
                if failing {
                    tracing::info!(addr = %me, "registered");
                }
                failing = false;
                ok += 1;
            }
            Err(e) => {
                tracing::error!(addr = %me, error = %e, "registration failed; retrying at the next heartbeat");
                failing = true;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(t.heartbeat) => {}
        }
    }
    match tokio::time::timeout(DEREGISTER_TIMEOUT, d.deregister(me)).await {
        Ok(Ok(())) => tracing::info!(addr = %me, "deregistered"),
        Ok(Err(e)) => tracing::warn!(addr = %me, error = %e, "deregistration failed; the entry expires after its TTL"),
        Err(_) => tracing::warn!(addr = %me, "deregistration timed out; the entry expires after its TTL"),
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use discovery::{DiscoveryError, MemDiscovery};

    fn timing(delay: u64) -> Timing {
        Timing { heartbeat: Duration::from_secs(1), ttl: Duration::from_secs(3), delay: Duration::from_secs(delay) }
    }

    #[tokio::test(start_paused = true)]
    async fn registers_every_heartbeat_and_deregisters() {
        let d = MemDiscovery::new();
        let me = Entry::parse("10.0.0.2:2375").unwrap();
        let stop = CancellationToken::new();
        let task = {
            let (d, me, stop) = (d.clone(), me.clone(), stop.clone());
            tokio::spawn(async move { run(&d, &me, timing(0), stop).await })
        };
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(d.list().await.unwrap(), vec![me.clone()]);
        d.fail_next(DiscoveryError::Empty); // the list call above consumed nothing; next register fails
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.cancel();
        let ok = task.await.unwrap();
        let calls = d.calls();
        let registers = calls.iter().filter(|c| c.as_str() == "register 10.0.0.2:2375 3s").count();
        assert_eq!(registers, 5, "{calls:?}");
        assert_eq!(ok, 4, "one registration failed and was retried");
        assert_eq!(calls.last().map(String::as_str), Some("deregister 10.0.0.2:2375"));
        assert!(d.list().await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn delays_the_first_registration() {
        let d = MemDiscovery::new();
        let me = Entry::parse("10.0.0.3:2375").unwrap();
        let stop = CancellationToken::new();
        let task = {
            let (d, me, stop) = (d.clone(), me.clone(), stop.clone());
            tokio::spawn(async move { run(&d, &me, timing(10), stop).await })
        };
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        let n = d.calls().len();
        assert!((1..=11).contains(&n), "registered within the delay window: {n}");
        stop.cancel();
        task.await.unwrap();
    }
}
