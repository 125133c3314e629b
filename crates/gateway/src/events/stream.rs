//! One subscriber's stream: replay from `event_log` after `Last-Event-ID` (a `seq`), then live
//! events of its tenant that pass its filters. Events arrive in `seq` order and `seq` never goes
//! back, so "deliver only what is above the last delivered `seq`" is all the deduplication a
//! stream needs. A subscriber that falls behind the broadcast buffer catches up from the log.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::Stream;
use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::broadcast::{self, error::RecvError};

use super::hub::{Event, EventHub};

/// Most events replayed at once.
const REPLAY_LIMIT: i64 = 1_000;

/// What a subscriber wants (query parameters of `/v1/events` and `/v1/ws`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// Comma-separated kinds (`plan.updated,execution.updated`); all when absent.
    #[param(
        pattern = "^(plan\\.updated|execution\\.updated|approval\\.updated|audit\\.created|alert\\.received)(,(plan\\.updated|execution\\.updated|approval\\.updated|audit\\.created|alert\\.received))*$"
    )]
    pub kinds: Option<String>,
    pub plan_id: Option<String>,
    pub execution_id: Option<String>,
    pub session_id: Option<String>,
    /// Resume point for clients that cannot send `Last-Event-ID` (WebSocket).
    pub last_event_id: Option<i64>,
    /// Browsers cannot set headers on EventSource/WebSocket: the token may come here.
    pub access_token: Option<String>,
}

impl EventFilter {
    /// Checks the kinds are known.
    pub fn validate(&self) -> Result<(), String> {
        for kind in self.kind_list() {
            if !super::KINDS.contains(&kind) {
                return Err(format!(
                    "unknown event kind {kind:?} (known: {})",
                    super::KINDS.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn kind_list(&self) -> Vec<&str> {
        self.kinds
            .as_deref()
            .map(|k| {
                k.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `event` (already known to be of the subscriber's tenant) passes.
    pub fn matches(&self, event: &Event) -> bool {
        let kinds = self.kind_list();
        if !kinds.is_empty() && !kinds.contains(&event.kind.as_str()) {
            return false;
        }
        let field = |name: &str| event.data.get(name).and_then(|v| v.as_str());
        if let Some(p) = &self.plan_id {
            if field("plan_id") != Some(p.as_str()) {
                return false;
            }
        }
        if let Some(e) = &self.execution_id {
            if field("execution_id") != Some(e.as_str()) {
                return false;
            }
        }
        if let Some(s) = &self.session_id {
            if event.session_id.as_deref() != Some(s.as_str()) {
                return false;
            }
        }
        true
    }
}

/// Builds a subscriber's stream.
pub struct EventStream;

struct State {
    rx: broadcast::Receiver<Arc<Event>>,
    stop: tokio_util::sync::CancellationToken,
    pool: PgPool,
    tenant: String,
    filter: EventFilter,
    pending: VecDeque<Arc<Event>>,
    /// The last `seq` of this tenant taken into account (delivered or filtered out): nothing at
    /// or below it is sent again. Starts at the resume point, or the log head at subscribe.
    last_id: i64,
    /// Whether the log holds events after `last_id` not read yet (resume or lag).
    behind: bool,
}

impl State {
    /// Reads the next page of the tenant's events after `last_id` from the log; stays `behind`
    /// while pages come back full, so a long backlog streams page by page instead of loading.
    async fn catch_up(&mut self) {
        match EventHub::replay(&self.pool, Some(&self.tenant), self.last_id, REPLAY_LIMIT).await {
            Ok(events) => {
                self.behind = events.len() as i64 == REPLAY_LIMIT;
                for event in events {
                    self.offer(Arc::new(event));
                }
            }
            Err(e) => {
                // Live events continue; the next lag or reconnect retries the log.
                self.behind = false;
                tracing::warn!(error = %e, "event replay failed");
            }
        }
    }

    fn offer(&mut self, event: Arc<Event>) {
        if event.id <= self.last_id || event.tenant_id != self.tenant {
            return;
        }
        self.last_id = event.id;
        if self.filter.matches(&event) {
            self.pending.push_back(event);
        }
    }
}

impl EventStream {
    /// Replays after `resume` (if given), then follows live events.
    pub async fn open(
        hub: &EventHub,
        pool: PgPool,
        tenant: String,
        filter: EventFilter,
        resume: Option<i64>,
        stop: tokio_util::sync::CancellationToken,
    ) -> impl Stream<Item = Arc<Event>> + Send + 'static {
        // Subscribe before replaying so nothing committed in between is missed.
        let rx = hub.subscribe();
        let start = match resume {
            Some(seq) => seq.max(0),
            None => EventHub::head(&pool, Some(&tenant)).await.unwrap_or(0),
        };
        let state = State {
            rx,
            stop,
            pool,
            tenant,
            filter,
            pending: VecDeque::new(),
            last_id: start,
            behind: resume.is_some(),
        };
        futures::stream::unfold(state, |mut state| async move {
            loop {
                if let Some(event) = state.pending.pop_front() {
                    return Some((event, state));
                }
                if state.behind {
                    state.catch_up().await;
                    continue;
                }
                // Streams end at shutdown so draining connections does not wait for them.
                let next = tokio::select! {
                    _ = state.stop.cancelled() => return None,
                    next = state.rx.recv() => next,
                };
                match next {
                    Ok(event) => state.offer(event),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::warn!(
                            skipped,
                            "subscriber lagged; catching up from the event log"
                        );
                        state.behind = true;
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        })
    }
}
