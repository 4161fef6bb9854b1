//! Background tasks that must not die silently: the once-a-second timer
//! (timeouts, rates), the kernel lease renewal and the standby's Redis
//! follower. A panic in one is logged, counted
//! (`rtpengine_task_panics_total`) and the task is started again after a
//! second; the daemon keeps serving. Restarting beats exiting here: every
//! call lives in this process, and a supervisor's restart would cost them
//! all (without Redis), while these tasks keep no state a fresh start lacks.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Panics of supervised tasks since the start.
pub static TASK_PANICS: AtomicU64 = AtomicU64::new(0);

/// Runs the task `make` builds, building and running it again after a
/// panic, until it returns (or the runtime shuts down).
pub fn spawn<F, Fut>(name: &'static str, make: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(run(name, make, Duration::from_secs(1)));
}

async fn run<F, Fut>(name: &'static str, make: F, pause: Duration)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(make()).await {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                TASK_PANICS.fetch_add(1, Relaxed);
                tracing::error!(task = name, "Background task panicked; starting it again");
                tokio::time::sleep(pause).await;
            }
            // Cancelled: the runtime is shutting down.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    /// A task that panics twice is started three times and its panics are
    /// counted; one that returns is not started again.
    #[tokio::test]
    async fn a_panicking_task_is_restarted() {
        let runs = Arc::new(AtomicU32::new(0));
        let before = TASK_PANICS.load(Relaxed);
        let r = Arc::clone(&runs);
        run(
            "test",
            move || {
                let r = Arc::clone(&r);
                async move {
                    if r.fetch_add(1, Relaxed) < 2 {
                        panic!("induced");
                    }
                }
            },
            Duration::from_millis(1),
        )
        .await;
        assert_eq!(runs.load(Relaxed), 3);
        assert!(TASK_PANICS.load(Relaxed) >= before + 2);
    }
}
