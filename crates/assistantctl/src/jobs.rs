//! Following a background job of the gateway (a policy impact run, an incident replay) to its
//! end: a progress bar fed by the job's events, with its status polled as well (events sent
//! before the stream opened are not replayed, and a stream may drop).

use serde_json::Value;

use crate::client::{CliError, Client};

/// What to follow.
pub struct Job<'a> {
    /// How errors name it (`policy impact job`).
    pub what: &'a str,
    /// The event kind carrying its progress.
    pub kind: &'a str,
    /// The field of an event naming the job, and the job's id.
    pub id_field: &'a str,
    pub id: &'a str,
    /// Where its state is read.
    pub path: String,
    /// The bar's label (`re-evaluating`).
    pub verb: &'a str,
    /// The field counting what is done.
    pub done_field: &'a str,
}

/// Follows `job` until it is no longer running: its final state, or an error when it failed.
pub async fn follow(client: &Client, job: &Job<'_>, total: u64) -> Result<Value, CliError> {
    let mut bar = crate::progress::ProgressBar::new();
    bar.draw(job.verb, 0, total, "");
    let stream = format!("/v1/events?kinds={}", job.kind);
    let events = client.stream_sse(&stream, |_, data| {
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            return true;
        };
        let progress = &event["data"];
        if progress[job.id_field] != job.id {
            return true;
        }
        bar.draw(
            job.verb,
            progress[job.done_field].as_u64().unwrap_or(0),
            progress["total"].as_u64().unwrap_or(total),
            &format!(", {} changed", progress["changed"]),
        );
        progress["status"] == "running"
    });
    let polled = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let state = client.get(&job.path).await?;
            if state["status"] != "running" {
                return Ok::<Value, CliError>(state);
            }
        }
    };
    let ended = tokio::select! {
        streamed = events => { streamed?; client.get(&job.path).await? }
        polled = polled => polled?,
    };
    // The stream ends at the job's last event; the row may lag it by a moment.
    let mut ended = ended;
    for _ in 0..20 {
        if ended["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        ended = client.get(&job.path).await?;
    }
    bar.clear();
    match ended["status"].as_str() {
        Some("done") => Ok(ended),
        Some(status) => Err(CliError::Local(format!(
            "{} {} {status}: {}",
            job.what,
            job.id,
            ended["error"].as_str().unwrap_or("no report")
        ))),
        None => Err(CliError::Local(format!("unexpected job state: {ended}"))),
    }
}
