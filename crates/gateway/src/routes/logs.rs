//! `GET /v1/executions/{id}/logs` (SSE): the execution's tool-call log lines — what was already
//! written, then live lines as the orchestrator copies them in (from any process) — filtered by
//! `tool_call_id` and `level`. An `end` event follows once the execution is finished.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use carapulse_core::model::{ExecutionId, ToolCallId};
use carapulse_core::store::{ToolLogFilter, ToolLogLine};

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::require_read;

/// Lines replayed at most.
const REPLAY_LIMIT: i64 = 20_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogsQuery {
    tool_call_id: Option<String>,
    level: Option<String>,
    /// Stop after the replay instead of following.
    #[serde(default)]
    follow: Option<bool>,
    access_token: Option<String>,
}

fn frame(line: &ToolLogLine) -> SseEvent {
    SseEvent::default()
        .event("log")
        .id(format!("{}:{}", line.tool_call_id, line.seq))
        .data(
            json!({"execution_id": line.execution_id, "tool_call_id": line.tool_call_id, "seq": line.seq,
                   "stream": line.stream, "level": line.level, "message": line.message, "ts": line.ts})
            .to_string(),
        )
}

enum Item {
    Line(Arc<ToolLogLine>),
    End(String),
}

/// Follows live lines of one execution until it finishes.
struct Follower {
    live: tokio::sync::broadcast::Receiver<Arc<ToolLogLine>>,
    status_events: tokio::sync::broadcast::Receiver<Arc<crate::events::Event>>,
    sent: HashSet<(uuid::Uuid, i64)>,
    tenant: String,
    filter: ToolLogFilter,
    stop: tokio_util::sync::CancellationToken,
    execution_id: String,
    execution_uuid: uuid::Uuid,
}

impl Follower {
    async fn next(&mut self) -> Option<Item> {
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                line = self.live.recv() => match line {
                    Ok(line) => {
                        if line.tenant_id == self.tenant
                            && line.execution_id == self.execution_uuid
                            && self.filter.matches(&line)
                            && self.sent.insert((line.tool_call_id, line.seq))
                        {
                            return Some(Item::Line(line));
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "log subscriber lagged; lines dropped");
                    }
                    Err(RecvError::Closed) => return None,
                },
                event = self.status_events.recv() => {
                    let Ok(event) = event else { continue };
                    let data = &event.data;
                    let status = data.get("status").and_then(|s| s.as_str()).unwrap_or("");
                    let ours = event.kind == "execution.updated"
                        && event.tenant_id == self.tenant
                        && data.get("execution_id").and_then(|v| v.as_str()) == Some(self.execution_id.as_str())
                        && data.get("step").is_none();
                    if ours && matches!(status, "succeeded" | "failed" | "rolled_back" | "cancelled" | "expired") {
                        return Some(Item::End(status.to_owned()));
                    }
                }
            }
        }
    }
}

#[utoipa::path(get, path = "/executions/{id}/logs", tag = "executions", summary = "Tool output of an execution as Server-Sent Events (replay, then live until it finishes)", params(("id" = String, Path, description = "Execution id (UUID)"), LogsQuery), responses((status = 200, description = "`log` events, then an `end` event", body = String, content_type = "text/event-stream"), crate::openapi::CommonErrors, crate::openapi::NotFound), security(("bearer" = []), ("access_token" = [])))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> ApiResult<Response> {
    require_read(&state, &ctx, "execution.logs").await?;
    // `access_token` is read by the authentication middleware; it is declared so that strict
    // query parsing accepts it.
    let _ = &q.access_token;
    let execution_id = ExecutionId::parse(&id).map_err(|_| ApiError::not_found("execution"))?;
    let execution = state
        .store
        .get_execution(ctx.tenant(), execution_id)
        .await
        .map_err(super::execution_not_found)?;
    super::executions::require_execution_visible(&state, &ctx, execution.plan_id).await?;
    let filter = ToolLogFilter {
        tool_call_id: q
            .tool_call_id
            .as_deref()
            .map(ToolCallId::parse)
            .transpose()
            .map_err(|e| ApiError::bad_request("invalid_query", e.message))?,
        level: q.level.clone(),
    };
    // Subscribe first, then replay, so nothing written in between is lost.
    let live = state.events.subscribe_logs();
    let status_events = state.events.subscribe();
    let history = state
        .store
        .tool_logs(ctx.tenant(), execution_id, &filter, REPLAY_LIMIT)
        .await?;
    let sent: HashSet<(uuid::Uuid, i64)> =
        history.iter().map(|l| (l.tool_call_id, l.seq)).collect();
    let finished = execution.status.is_terminal();
    let follow = q.follow.unwrap_or(true) && !finished;
    let tenant = ctx.tenant().to_string();
    let stop = state.shutdown.clone();
    let replay = futures::stream::iter(history.into_iter().map(|l| Item::Line(Arc::new(l))));
    let tail: futures::stream::BoxStream<'static, Item> = if follow {
        let follower = Follower {
            live,
            status_events,
            sent,
            tenant,
            filter,
            stop,
            execution_id: execution_id.to_string(),
            execution_uuid: execution_id.0,
        };
        futures::stream::unfold(follower, |mut f| async move {
            f.next().await.map(|item| (item, f))
        })
        .boxed()
    } else {
        futures::stream::iter(vec![Item::End(execution.status.as_str().to_owned())]).boxed()
    };
    let mut ended = false;
    let frames = replay.chain(tail).take_while(move |item| {
        let keep = !ended;
        if matches!(item, Item::End(_)) {
            ended = true;
        }
        futures::future::ready(keep)
    });
    let slot = state.stream_slot(&ctx)?;
    let frames = frames.map(move |item| {
        let _alive = &slot;
        Ok::<_, Infallible>(match item {
            Item::Line(line) => frame(&line),
            Item::End(status) => SseEvent::default()
                .event("end")
                .data(json!({"status": status}).to_string()),
        })
    });
    Ok(Sse::new(frames)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
