//! `GET /v1/events` (SSE) and `GET /v1/ws` (WebSocket): change events of the caller's tenant,
//! filtered by kind, plan, execution or session, with heartbeats and resume (`Last-Event-ID`
//! header for SSE, `last_event_id` query for both).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};

use crate::error::{ApiError, ApiResult};
use crate::events::{Event, EventFilter, EventStream};
use crate::extract::ApiQuery;
use crate::metrics::Metrics;
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::require_read;

/// Heartbeat interval on idle streams (proxies close silent connections).
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Counts a live subscriber for as long as it exists.
struct Subscribed {
    metrics: Arc<Metrics>,
    transport: &'static str,
}

impl Subscribed {
    fn new(metrics: Arc<Metrics>, transport: &'static str) -> Self {
        metrics.stream_opened(transport);
        Self { metrics, transport }
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.metrics.stream_closed(self.transport);
    }
}

async fn open(
    state: &AppState,
    ctx: &RequestContext,
    filter: EventFilter,
    resume: Option<i64>,
) -> ApiResult<impl Stream<Item = Arc<Event>> + Send + 'static> {
    require_read(state, ctx, "events.subscribe").await?;
    if state.config.gateway.session_required {
        match &filter.session_id {
            Some(session) => super::sessions::require_member(state, ctx, session).await?,
            None => {
                return Err(ApiError::forbidden(
                    "session_required",
                    "gateway.session_required is on: subscribe with session_id of a session you belong to",
                ))
            }
        }
    }
    filter
        .validate()
        .map_err(|m| ApiError::bad_request("invalid_filter", m))?;
    Ok(EventStream::open(
        &state.events,
        state.store.pool().clone(),
        ctx.tenant().to_string(),
        filter,
        resume,
        state.shutdown.clone(),
    )
    .await)
}

fn last_event_id(headers: &HeaderMap, filter: &EventFilter) -> Option<i64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(filter.last_event_id)
}

#[utoipa::path(get, path = "/events", tag = "events", summary = "Live events (plans, approvals, executions, audit, alerts) as Server-Sent Events", params(crate::events::EventFilter), responses((status = 200, description = "An event stream; `id:` can be sent back as Last-Event-ID", body = String, content_type = "text/event-stream"), crate::openapi::CommonErrors), security(("bearer" = []), ("access_token" = [])))]
pub(crate) async fn sse(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    ApiQuery(filter): ApiQuery<EventFilter>,
) -> ApiResult<Response> {
    let resume = last_event_id(&headers, &filter);
    let slot = state.stream_slot(&ctx)?;
    let stream = open(&state, &ctx, filter, resume).await?;
    let guard = Subscribed::new(state.metrics.clone(), "sse");
    let frames = stream.map(move |event| {
        let _alive = (&guard, &slot);
        Ok::<_, Infallible>(
            SseEvent::default()
                .id(event.id.to_string())
                .event(event.kind.clone())
                .data(event.body().to_string()),
        )
    });
    Ok(Sse::new(frames)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response())
}

#[utoipa::path(get, path = "/ws", tag = "events", summary = "Live events over a WebSocket (JSON text frames)", params(crate::events::EventFilter), responses((status = 101, description = "Switching to the WebSocket protocol"), crate::openapi::CommonErrors), security(("bearer" = []), ("access_token" = [])))]
pub(crate) async fn ws(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(filter): ApiQuery<EventFilter>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let resume = filter.last_event_id;
    let slot = state.stream_slot(&ctx)?;
    let stream = open(&state, &ctx, filter, resume).await?;
    let metrics = state.metrics.clone();
    Ok(upgrade.on_upgrade(move |socket| async move {
        let _guard = Subscribed::new(metrics, "ws");
        let _slot = slot;
        pump(socket, Box::pin(stream)).await;
    }))
}

/// Sends events as JSON text frames, pings when idle, and stops when the client goes.
async fn pump(
    mut socket: WebSocket,
    mut events: std::pin::Pin<Box<dyn Stream<Item = Arc<Event>> + Send>>,
) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            next = events.next() => {
                let Some(event) = next else { break };
                let mut body = event.body();
                body["id"] = serde_json::json!(event.id);
                if socket.send(Message::Text(body.to_string().into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = heartbeat.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
}
