//! The per-process event hub: one Postgres listener fans events out to every subscriber of
//! this gateway through a broadcast channel. After a lost connection it reconnects with backoff
//! and replays what it missed from `event_log`, so no event committed meanwhile is lost.

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
];

/// Events buffered per process before a slow subscriber lags (and catches up from the log).
const CAPACITY: usize = 8192;

/// How far back (in ids) a gap replay looks for events that committed out of id order.
pub const REPLAY_MARGIN: i64 = 1_000;

/// The ids delivered most recently, to drop duplicates between replays and live events.
#[derive(Debug)]
pub struct RecentIds {
    order: std::collections::VecDeque<i64>,
    set: std::collections::HashSet<i64>,
    capacity: usize,
}

impl RecentIds {
    pub fn new(capacity: usize) -> Self {
        Self {
            order: std::collections::VecDeque::with_capacity(capacity),
            set: std::collections::HashSet::with_capacity(capacity),
            capacity,
        }
    }

    /// Remembers `id`; false when it was already there.
    pub fn insert(&mut self, id: i64) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// One change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
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

    /// Events of `tenant` after `after` from the log (oldest first, at most `limit`).
    pub async fn replay(
        pool: &PgPool,
        tenant: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Event>, sqlx::Error> {
        type Row = (i64, String, String, Option<String>, Value, DateTime<Utc>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT event_id, tenant_id, kind, session_id, data, occurred_at FROM event_log \
             WHERE event_id > $1 AND ($2::text IS NULL OR tenant_id = $2) ORDER BY event_id LIMIT $3",
        )
        .bind(after)
        .bind(tenant)
        .bind(limit)
        .fetch_all(pool)
        .await?;
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

    /// Listens until `stop`; reconnects with backoff and fills gaps from the log.
    pub async fn run(self, pool: PgPool, stop: CancellationToken) {
        let mut channels: Vec<String> = KINDS
            .iter()
            .map(|k| format!("carapulse_{}", k.replace('.', "_")))
            .collect();
        channels.push(TOOL_LOG_CHANNEL.to_owned());
        let mut last_id: Option<i64> = None;
        let mut seen = RecentIds::new(16_384);
        let mut backoff = Duration::from_millis(200);
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "event listener cannot connect");
                    tokio::select! {
                        _ = stop.cancelled() => return,
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
            // Anything committed while we were not listening. Ids are taken at insert but become
            // visible at commit, so look back a margin and drop what was already delivered.
            if let Some(after) = last_id {
                match Self::replay(&pool, None, (after - REPLAY_MARGIN).max(0), 100_000).await {
                    Ok(missed) => {
                        let mut count = 0;
                        for event in missed {
                            if seen.insert(event.id) {
                                last_id = last_id.max(Some(event.id));
                                count += 1;
                                let _ = self.tx.send(Arc::new(event));
                            }
                        }
                        if count > 0 {
                            tracing::info!(count, "replayed events missed while reconnecting");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "event gap replay failed"),
                }
            } else {
                last_id =
                    sqlx::query_scalar::<_, Option<i64>>("SELECT max(event_id) FROM event_log")
                        .fetch_one(&pool)
                        .await
                        .ok()
                        .flatten()
                        .or(Some(0));
            }
            loop {
                let next = tokio::select! {
                    _ = stop.cancelled() => return,
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
                    Ok(Some(notification)) => {
                        match serde_json::from_str::<Event>(notification.payload()) {
                            Ok(event) => {
                                if !seen.insert(event.id) {
                                    continue;
                                }
                                last_id = last_id.max(Some(event.id));
                                let _ = self.tx.send(Arc::new(event));
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, channel = notification.channel(), "unreadable event")
                            }
                        }
                    }
                    // The connection dropped: reconnect and replay the gap.
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
    }
}
