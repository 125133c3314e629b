//! `GET /v1/audit/events`, `GET /v1/audit/verify`, `GET /v1/audit/export?format=json|csv`,
//! `GET|POST /v1/audit/checkpoints` (signed checkpoints published outside the database).

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use std::time::Duration;

use carapulse_core::audit::{
    verify_chain_with_progress, AuditDecision, AuditEvent, VerifyProgress, VerifyReport,
};
use carapulse_core::model::TenantId;
use carapulse_core::store::AuditFilter;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::{page_json, require_read};

const EXPORT_PAGE: i64 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    limit: Option<i64>,
    offset: Option<i64>,
    /// Start after the last row of a previous page: its `pagination.next_cursor`. Not with `offset`.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// `exact` or `estimate` adds `pagination.total`; without it a page costs only its rows.
    #[param(pattern = "^(none|exact|estimate)$")]
    count: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    actor_id: Option<String>,
    action: Option<String>,
    #[param(pattern = "^(allow|deny|require_approval|info|error)$")]
    decision: Option<String>,
    resource_id: Option<String>,
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        if let Some(d) = &self.decision {
            if AuditDecision::parse(d).is_none() {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "decision {d:?} is not one of allow, deny, require_approval, info, error"
                    ),
                ));
            }
        }
        if let Some(f) = &self.format {
            if f != "json" && f != "csv" {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("format {f:?} is not one of json, csv"),
                ));
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from > to {
                return Err(ApiError::bad_request("invalid_query", "from is after to"));
            }
        }
        Ok(AuditFilter {
            from: self.from,
            to: self.to,
            actor_id: self.actor_id.clone(),
            action: self.action.clone(),
            decision: self.decision.clone(),
            resource_id: self.resource_id.clone(),
        })
    }
}

#[utoipa::path(get, path = "/audit/events", tag = "audit", summary = "Search the audit log", params(AuditQuery), responses((status = 200, description = "One page of events", body = crate::openapi::ListBody), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "audit.list").await?;
    if q.format.is_some() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "format applies to /v1/audit/export, not to a page of events",
        ));
    }
    let filter = q.filter()?;
    let page = state
        .store
        .list_audit_events(
            ctx.tenant(),
            &filter,
            super::page_request(q.limit, q.offset, q.cursor.as_deref(), q.count.as_deref())?,
        )
        .await?;
    Ok(Json(page_json(&page)))
}

#[utoipa::path(get, path = "/audit/verify", tag = "audit", summary = "Verify the hash chain of the caller's tenant", description = "With `Accept: application/x-ndjson` the walk streams: a `{\"progress\": {events_checked, head_seq}}` line about every second, then `{\"report\": …}` (or `{\"error\": …}`); a chain of millions of events verifies that way whatever the request timeout. A plain JSON request gets the report, or 503 `verify_too_long` when the walk would outlast the request timeout.", responses((status = 200, description = "Verification result (JSON), or progress lines and the result (NDJSON)", content((Object = "application/json"), (String = "application/x-ndjson"))), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    require_read(&state, &ctx, "audit.verify").await?;
    let streamed = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"));
    if streamed {
        return Ok(verify_streamed(state, ctx.tenant().clone()));
    }
    // Leave the timeout layer a second to answer with this error instead of a bare 504.
    let budget = Duration::from_secs(state.config.gateway.request_timeout_secs.max(2) - 1);
    let report = tokio::time::timeout(budget, verify_with_checkpoint(&state, ctx.tenant(), |_| {}))
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "verify_too_long",
                format!(
                    "the chain is too long to verify within the {}-second request timeout; \
                     ask with Accept: application/x-ndjson to stream the walk (assistantctl audit verify does)",
                    budget.as_secs() + 1
                ),
            )
        })??;
    Ok(Json(serde_json::to_value(report).unwrap_or(Value::Null)).into_response())
}

/// The chain walk, then the comparison with the latest signed checkpoint: the chain alone cannot
/// see its newest events deleted and the head rewritten; the checkpoint (read from the sink, not
/// from Postgres) can.
async fn verify_with_checkpoint(
    state: &AppState,
    tenant: &TenantId,
    on_page: impl FnMut(VerifyProgress) + Send,
) -> ApiResult<VerifyReport> {
    let mut report = verify_chain_with_progress(&state.store, tenant, on_page).await?;
    if let Some(sink) = &state.checkpoints {
        sink.check(&state.store, tenant, &mut report)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "checkpoint check failed");
                ApiError::unavailable("the checkpoint sink cannot be read; retry later")
            })?;
    }
    Ok(report)
}

/// Progress lines at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The NDJSON walk: runs on its own task, which stops when the client goes away (the channel
/// closes and the task is aborted with the body).
fn verify_streamed(state: AppState, tenant: TenantId) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Value>(16);
    let walk = tokio::spawn(async move {
        let progress_tx = tx.clone();
        // The first page reports at once (the caller sees the walk start), then once a second.
        let mut last: Option<std::time::Instant> = None;
        let on_page = move |p: VerifyProgress| {
            if last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
                last = Some(std::time::Instant::now());
                // A full channel drops a progress line, never the report.
                let _ = progress_tx.try_send(serde_json::json!({"progress": p}));
            }
        };
        let line = match verify_with_checkpoint(&state, &tenant, on_page).await {
            Ok(report) => serde_json::json!({"report": report}),
            Err(err) => serde_json::json!({"error": {"code": err.code, "message": err.message}}),
        };
        let _ = tx.send(line).await;
    });
    let abort = tokio_util::task::AbortOnDropHandle::new(walk);
    let lines = futures::stream::unfold((rx, abort), |(mut rx, abort)| async move {
        let line = rx.recv().await?;
        let mut text = line.to_string();
        text.push('\n');
        Some((Ok::<_, std::io::Error>(text), (rx, abort)))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

#[utoipa::path(get, path = "/audit/checkpoints", tag = "audit", summary = "Signed checkpoints of the caller's chain, newest first", responses((status = 200, description = "`{enabled, data}`: the published checkpoints", body = Object), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn checkpoints(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "audit.checkpoints").await?;
    let data = state.store.audit_checkpoints(ctx.tenant(), 50).await?;
    Ok(Json(
        serde_json::json!({"enabled": state.checkpoints.is_some(), "data": data}),
    ))
}

#[utoipa::path(post, path = "/audit/checkpoints", tag = "audit", summary = "Publish a checkpoint of the caller's chain now (admins)", responses((status = 201, description = "The checkpoint published (or `published: false` when nothing changed since the last)", body = Object), crate::openapi::CommonErrors, (status = 409, description = "Checkpoints are not configured (storage.audit_checkpoint_key)", body = carapulse_http::error::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn checkpoint_now(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> ApiResult<Response> {
    if !ctx.is_admin() {
        state
            .audit(
                ctx.audit("audit.checkpoint", AuditDecision::Deny)
                    .reason("actor is not an admin"),
            )
            .await;
        return Err(ApiError::forbidden(
            "forbidden",
            "publishing a checkpoint needs the admin role",
        ));
    }
    let Some(sink) = &state.checkpoints else {
        return Err(ApiError::conflict(
            "checkpoints_disabled",
            "set storage.audit_checkpoint_key (env CARAPULSE_AUDIT_CHECKPOINT_KEY) to publish checkpoints",
        ));
    };
    let published = sink
        .publish(&state.store, ctx.tenant())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "checkpoint not published");
            ApiError::unavailable("the checkpoint could not be published; retry later")
        })?;
    state
        .audit(
            ctx.audit("audit.checkpoint", AuditDecision::Allow)
                .context(serde_json::json!({"seq": published.as_ref().map(|c| c.seq)})),
        )
        .await;
    let body = match published {
        Some(cp) => serde_json::json!({"published": true, "checkpoint": cp}),
        None => {
            serde_json::json!({"published": false, "reason": "nothing new since the latest checkpoint"})
        }
    };
    Ok((axum::http::StatusCode::CREATED, Json(body)).into_response())
}

/// Streams every matching event, oldest first, page by page (no full buffering).
#[utoipa::path(get, path = "/audit/export", tag = "audit", summary = "Export matching audit events as CSV or JSON", params(AuditQuery), responses((status = 200, description = "Matching events: a JSON array (`format=json`, the default) or CSV (`format=csv`)", content((Vec<Object> = "application/json"), (String = "text/csv"))), crate::openapi::CommonErrors), security(("bearer" = [])))]
pub(crate) async fn export(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    require_read(&state, &ctx, "audit.export").await?;
    if q.limit.is_some() || q.offset.is_some() || q.cursor.is_some() || q.count.is_some() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "an export streams every matching event; limit, offset, cursor and count page \
             /v1/audit/events",
        ));
    }
    let filter = q.filter()?;
    let csv = match q.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("format {other:?} is not json or csv"),
            ))
        }
    };
    let tenant = ctx.tenant().clone();
    let store = state.store.clone();
    // The export is the chain as it stood when it started (events appended meanwhile wait for
    // the next export), streamed whole however long: no silent cut-off. The head is also sent
    // as a header, so a reader can tell a complete export from an interrupted one.
    let head_seq = store.audit_head(&tenant).await?.map_or(0, |(seq, _)| seq);
    struct Cursor {
        after: i64,
        sent: i64,
        first: bool,
        done: bool,
    }
    let start = Cursor {
        after: 0,
        sent: 0,
        first: true,
        done: false,
    };
    let stream = futures::stream::unfold(start, move |mut cur| {
        let store = store.clone();
        let tenant = tenant.clone();
        let filter = filter.clone();
        async move {
            if cur.done {
                return None;
            }
            let mut chunk = String::new();
            if cur.first {
                chunk.push_str(if csv { CSV_HEADER } else { "[" });
            }
            let events = match store
                .export_audit_events(&tenant, &filter, cur.after, head_seq, EXPORT_PAGE)
                .await
            {
                Ok(events) => events,
                Err(err) => {
                    tracing::error!(error = %err, "audit export aborted");
                    return Some((
                        Err(std::io::Error::other(err.to_string())),
                        Cursor { done: true, ..cur },
                    ));
                }
            };
            for event in &events {
                if csv {
                    chunk.push_str(&csv_row(event));
                } else {
                    if !(cur.first && cur.sent == 0) {
                        chunk.push(',');
                    }
                    chunk.push_str(&serde_json::to_string(event).unwrap_or_else(|_| "null".into()));
                }
                cur.sent += 1;
                cur.first = false;
            }
            cur.first = false;
            if let Some(last) = events.last() {
                cur.after = last.seq;
            }
            if (events.len() as i64) < EXPORT_PAGE {
                if !csv {
                    chunk.push(']');
                }
                cur.done = true;
            }
            Some((Ok::<_, std::io::Error>(chunk), cur))
        }
    });
    let (content_type, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/json", "json")
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"audit.{ext}\""),
            ),
            (
                header::HeaderName::from_static("x-audit-head-seq"),
                head_seq.to_string(),
            ),
        ],
        Body::from_stream(stream.map(|r| r.map(axum::body::Bytes::from))),
    )
        .into_response())
}

const CSV_HEADER: &str = "seq,event_id,occurred_at,actor_id,action,decision,resource_type,resource_id,reason,request_id,prev_hash,hash\n";

/// A cell a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab, carriage return first) gets a
/// leading apostrophe, so an actor id or a reason cannot become a formula (CSV injection) when
/// an auditor opens the export. Values are otherwise unchanged.
fn neutralise_formula(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

fn csv_row(e: &AuditEvent) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let actor = e
        .actor
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let row = [
        e.seq.to_string(),
        e.event_id.to_string(),
        e.occurred_at.to_rfc3339(),
        actor,
        e.action.clone(),
        e.decision.clone(),
        e.resource_type.clone().unwrap_or_default(),
        e.resource_id.clone().unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
        e.request_id.clone().unwrap_or_default(),
        e.prev_hash.clone(),
        e.hash.clone(),
    ];
    let row = row.map(neutralise_formula);
    if w.write_record(&row).is_err() {
        return String::new();
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::neutralise_formula;

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert!(neutralise_formula(bad.into()).starts_with('\''), "{bad}");
        }
        assert_eq!(neutralise_formula("alice".into()), "alice");
        assert_eq!(neutralise_formula(String::new()), "");
    }
}
