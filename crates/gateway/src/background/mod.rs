//! Loops the gateway runs beside the HTTP server: the approval-expiry sweeper, the Linear
//! approval watcher and the event-log pruner (the event listener lives in `events`). Each stops on the shared shutdown token; each is safe to run on several
//! replicas at once (row locks decide who does a given piece of work).

pub mod checkpoints;
pub mod event_loop;
pub mod expiry;
pub mod linear;
pub mod retention;
pub mod scheduler;

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `tick` every `every` until `stop` fires; a failing tick is logged and retried on the
/// next one with the wait doubled (capped at 10x), so a database outage does not spin.
pub async fn run_every<F, Fut>(
    name: &'static str,
    every: Duration,
    stop: CancellationToken,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut wait = every;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        match tick().await {
            Ok(()) => wait = every,
            Err(e) => {
                wait = (wait * 2).min(every * 10);
                tracing::warn!(task = name, error = %e, retry_in_ms = wait.as_millis() as u64, "background tick failed");
            }
        }
    }
    tracing::info!(task = name, "background task stopped");
}
