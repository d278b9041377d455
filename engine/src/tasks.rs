//! Background work with an owner. Each service holds one [`Tasks`] and spawns through it, so its
//! background tasks are counted in one place, told to stop by one token, and awaited at shutdown
//! (`server::run` calls each service's `shutdown`, which calls [`Tasks::shutdown`]).
//!
//! Two kinds of task:
//! - [`Tasks::spawn`]: work that must finish once started (a record written, a mount undone).
//!   Shutdown waits for it, up to its grace period.
//! - [`Tasks::spawn_until_shutdown`]: loops and watchers (a restart backoff, a health probe, a
//!   sampler). They are dropped at their next await once shutdown begins; [`Tasks::token`] gives
//!   the same signal to code that wants to stop at a point of its own choosing.
//!
//! Tasks that serve one HTTP request (a hijacked stream, a pull's progress) belong to that
//! request and are not spawned here: they end with their connection.
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The background tasks of one service (cheap to clone: clones share the same tasks).
#[derive(Clone, Debug)]
pub struct Tasks {
    owner: &'static str,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Tasks {
    /// `owner` names the service in logs (`"containers"`, `"network"`, ...).
    pub fn new(owner: &'static str) -> Self {
        Tasks { owner, tracker: TaskTracker::new(), cancel: CancellationToken::new() }
    }

    /// Runs `fut` to its end; shutdown waits for it.
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(fut)
    }

    /// Runs `fut` until it ends or shutdown begins, whichever comes first (`None` then).
    #[track_caller]
    pub fn spawn_until_shutdown<F>(&self, fut: F) -> JoinHandle<Option<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let token = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                biased;
                _ = token.cancelled() => None,
                out = fut => Some(out),
            }
        })
    }

    /// Runs blocking `f` on tokio's blocking pool; shutdown waits for it like [`Tasks::spawn`].
    #[track_caller]
    pub fn spawn_blocking<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.tracker.spawn_blocking(f)
    }

    /// Cancelled when shutdown begins. A child token: cancelling it stops only its holder.
    pub fn token(&self) -> CancellationToken {
        self.cancel.child_token()
    }

    /// True once shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// How many tasks are running now.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Stops the loops, then waits up to `grace` for the rest. Returns false when some were
    /// still running at the deadline (they are logged and left to the runtime's end).
    /// Idempotent; nothing can be spawned usefully afterwards (loops end at once).
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        let done = tokio::time::timeout(grace, self.tracker.wait()).await.is_ok();
        if !done {
            tracing::warn!(owner = self.owner, left = self.tracker.len(), "background tasks still running at shutdown");
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn shutdown_ends_loops_and_waits_for_work() {
        let t = Tasks::new("test");
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        t.spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            f.store(true, Ordering::SeqCst);
        });
        let looping = t.spawn_until_shutdown(std::future::pending::<()>());
        let token = t.token();
        assert_eq!(t.len(), 2);
        assert!(t.shutdown(Duration::from_secs(5)).await);
        assert!(finished.load(Ordering::SeqCst), "shutdown returned before the work ended");
        assert_eq!(looping.await.unwrap(), None);
        assert!(token.is_cancelled());
        assert!(t.is_empty());
    }

    #[tokio::test]
    async fn shutdown_gives_up_after_its_grace() {
        let t = Tasks::new("test");
        t.spawn(std::future::pending::<()>());
        assert!(!t.shutdown(Duration::from_millis(20)).await);
        assert_eq!(t.len(), 1);
    }

    #[tokio::test]
    async fn a_cancelled_child_token_leaves_the_others_alone() {
        let t = Tasks::new("test");
        let a = t.token();
        let b = t.token();
        a.cancel();
        assert!(!b.is_cancelled());
        assert!(!t.is_shutting_down());
    }
}
