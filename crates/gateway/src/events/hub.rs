//! The per-process event hub: one Postgres listener fans events out to every subscriber of
//! this gateway through a broadcast channel, in commit order.
//!
//! Why a sequencer: an event's `event_id` is taken at insert but the event becomes visible at
//! commit, so ids commit out of order and a subscriber resuming "after id N" could miss one.
//! Events are therefore delivered by `seq`, which `carapulse_sequence_events` (migration 0011)
//! hands out after commit, only below the oldest running transaction: once a `seq` is delivered,
//! nothing can appear below it. The per-kind NOTIFYs only wake this hub's sequencer; the
//! sequencer's `carapulse_sequenced` NOTIFY makes every hub read the new events from the log in
//! `seq` order. After a lost connection the hub reconnects with backoff and reads on from its last
//! `seq`, so nothing is lost or repeated.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use carapulse_core::store::ToolLogLine;

/// Event kinds, each on its own NOTIFY channel (`carapulse_<kind with _>`).
pub const KINDS: &[&str] = &[
    "plan.updated",
    "execution.updated",
    "approval.updated",
    "audit.created",
    "alert.received",
    "policy.impact",
    "replay.progress",
];

/// Events buffered per process before a slow subscriber lags (and catches up from the log).
const CAPACITY: usize = 8192;

/// Events the sequencer numbers per pass (a pass repeats while it fills its batch).
const SEQUENCE_BATCH: i32 = 5_000;

/// How often the sequencer runs without being woken: events of a transaction that committed while
/// an older one was still running become deliverable when that one ends, which nobody announces.
const SEQUENCE_TICK: Duration = Duration::from_millis(250);

/// The sequencer's announcement channel.
const SEQUENCED_CHANNEL: &str = "carapulse_sequenced";

/// One change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// The event's position in commit order (`seq`): what `Last-Event-ID` resumes after.
    pub id: i64,
    pub tenant_id: String,
    pub kind: String,
    #[serde(default)]
    pub session_id: Option<String>,
    pub data: Value,
    pub ts: DateTime<Utc>,
}

impl Event {
    /// The wire shape subscribers receive.
    pub fn body(&self) -> Value {
        let mut body = serde_json::json!({"event": self.kind, "data": self.data, "ts": self.ts});
        if let Some(s) = &self.session_id {
            body["session_id"] = Value::String(s.clone());
        }
        body
    }
}

/// The NOTIFY channel of tool call log lines (not an event kind: logs have their own route).
pub const TOOL_LOG_CHANNEL: &str = "carapulse_tool_log";

/// Fans events (and tool log lines) out to subscribers of this process.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<Event>>,
    logs: broadcast::Sender<Arc<ToolLogLine>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHub {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            logs: broadcast::channel(CAPACITY).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    pub fn subscribe_logs(&self) -> broadcast::Receiver<Arc<ToolLogLine>> {
        self.logs.subscribe()
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Sequenced events (of `tenant`, or all) with `seq > after`, in `seq` order, at most `limit`.
    pub async fn replay(
        pool: &PgPool,
        tenant: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Event>, sqlx::Error> {
        type Row = (i64, String, String, Option<String>, Value, DateTime<Utc>);
        let rows: Vec<Row> =
            match tenant {
                Some(tenant) => sqlx::query_as(
                    "SELECT seq, tenant_id, kind, session_id, data, occurred_at FROM event_log \
                     WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(tenant)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?,
                None => sqlx::query_as(
                    "SELECT seq, tenant_id, kind, session_id, data, occurred_at FROM event_log \
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?,
            };
        Ok(rows
            .into_iter()
            .map(|(id, tenant_id, kind, session_id, data, ts)| Event {
                id,
                tenant_id,
                kind,
                session_id,
                data,
                ts,
            })
            .collect())
    }

    /// The highest `seq` handed out (of `tenant`, or of all tenants); 0 for an empty log.
    pub async fn head(pool: &PgPool, tenant: Option<&str>) -> Result<i64, sqlx::Error> {
        let head: Option<i64> = match tenant {
            Some(tenant) => {
                sqlx::query_scalar("SELECT max(seq) FROM event_log WHERE tenant_id = $1")
                    .bind(tenant)
                    .fetch_one(pool)
                    .await?
            }
            None => {
                sqlx::query_scalar("SELECT max(seq) FROM event_log")
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(head.unwrap_or(0))
    }

    /// One sequencing pass: numbers every event whose transaction is over (in batches).
    pub async fn sequence(pool: &PgPool) -> Result<i64, sqlx::Error> {
        let mut total = 0;
        loop {
            let n: i64 = sqlx::query_scalar("SELECT carapulse_sequence_events($1)")
                .bind(SEQUENCE_BATCH)
                .fetch_one(pool)
                .await?;
            total += n;
            if n < i64::from(SEQUENCE_BATCH) {
                return Ok(total);
            }
        }
    }

    /// Numbers events until `stop`: when a write is announced (`wake`) and every
    /// [`SEQUENCE_TICK`].
    async fn run_sequencer(pool: PgPool, wake: Arc<tokio::sync::Notify>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(SEQUENCE_TICK) => {}
            }
            if let Err(e) = Self::sequence(&pool).await {
                tracing::warn!(error = %e, "event sequencing failed; retrying");
            }
        }
    }

    /// Broadcasts every sequenced event after `*last`, advancing it.
    async fn deliver(&self, pool: &PgPool, last: &mut i64) -> Result<usize, sqlx::Error> {
        let mut count = 0;
        loop {
            let events = Self::replay(pool, None, *last, 1_000).await?;
            let full = events.len() == 1_000;
            for event in events {
                *last = event.id;
                count += 1;
                let _ = self.tx.send(Arc::new(event));
            }
            if !full {
                return Ok(count);
            }
        }
    }

    /// Listens until `stop`; reconnects with backoff and reads on from the last delivered `seq`.
    pub async fn run(self, pool: PgPool, stop: CancellationToken) {
        let mut channels: Vec<String> = KINDS
            .iter()
            .map(|k| format!("carapulse_{}", k.replace('.', "_")))
            .collect();
        channels.push(TOOL_LOG_CHANNEL.to_owned());
        channels.push(SEQUENCED_CHANNEL.to_owned());
        let wake = Arc::new(tokio::sync::Notify::new());
        let sequencer = tokio::spawn(Self::run_sequencer(
            pool.clone(),
            wake.clone(),
            stop.clone(),
        ));
        let mut last: Option<i64> = None;
        let mut backoff = Duration::from_millis(200);
        'connect: loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "event listener cannot connect");
                    tokio::select! {
                        _ = stop.cancelled() => break 'connect,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            // Without a reconnect, sqlx would silently re-listen and skip what was missed.
            listener.ignore_pool_close_event(true);
            if let Err(e) = listener
                .listen_all(channels.iter().map(String::as_str))
                .await
            {
                tracing::warn!(error = %e, "LISTEN failed");
                tokio::time::sleep(backoff).await;
                continue;
            }
            backoff = Duration::from_millis(200);
            let mut delivered = match last {
                Some(last) => last,
                None => match Self::head(&pool, None).await {
                    Ok(head) => head,
                    Err(e) => {
                        tracing::warn!(error = %e, "event log head unreadable; reconnecting");
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                },
            };
            // Anything sequenced while we were not listening.
            match self.deliver(&pool, &mut delivered).await {
                Ok(n) if n > 0 && last.is_some() => {
                    tracing::info!(count = n, "delivered events missed while reconnecting")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "event catch-up failed"),
            }
            last = Some(delivered);
            wake.notify_one();
            loop {
                let next = tokio::select! {
                    _ = stop.cancelled() => break 'connect,
                    n = listener.try_recv() => n,
                };
                match next {
                    Ok(Some(notification)) if notification.channel() == TOOL_LOG_CHANNEL => {
                        match serde_json::from_str::<ToolLogLine>(notification.payload()) {
                            Ok(line) => {
                                let _ = self.logs.send(Arc::new(line));
                            }
                            Err(e) => tracing::warn!(error = %e, "unreadable tool log line"),
                        }
                    }
                    Ok(Some(notification)) if notification.channel() == SEQUENCED_CHANNEL => {
                        if let Err(e) = self.deliver(&pool, &mut delivered).await {
                            tracing::warn!(error = %e, "reading sequenced events failed; reconnecting");
                            break;
                        }
                        last = Some(delivered);
                    }
                    // A write committed somewhere: number it (the sequencer batches wake-ups).
                    Ok(Some(_)) => wake.notify_one(),
                    // The connection dropped: reconnect and read on.
                    Ok(None) => {
                        tracing::warn!("event listener lost its connection; reconnecting");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
        let _ = sequencer.await;
    }
}
