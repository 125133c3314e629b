//! The scheduler: due schedules become plans (trigger `scheduled`, never auto-approved) exactly
//! once across replicas — rows are claimed with `FOR UPDATE SKIP LOCKED` for the duration of
//! the run and each run is keyed by `(schedule_id, scheduled_for)`. Missed runs (a gateway that
//! was down) follow the schedule's policy: `skip` drops runs older than two poll intervals,
//! `run_once` runs once for all of them; either way the next run is computed from now.

use chrono::{Duration, Utc};
use serde_json::json;

use carapulse_core::audit::AuditDecision;
use carapulse_core::model::{Actor, ActorId, ContextRef, TenantId, Trigger};
use carapulse_core::schedule::CronSchedule;
use carapulse_core::store::ScheduleRecord;

use crate::middleware::RequestContext;
use crate::routes::plans::{create_plan, PlanCreateRequest};
use crate::state::AppState;

/// Schedules run per tick.
const BATCH: i64 = 50;

/// The scheduler acts for the person who wrote the schedule: they are the plan's requester (so
/// separation of duties keeps them from approving it), with the scheduler recorded as `via`.
fn system_context(tenant: &TenantId, created_by: &str) -> Result<RequestContext, String> {
    Ok(RequestContext {
        actor: Actor {
            id: ActorId::parse(created_by).map_err(|e| e.to_string())?,
            email: None,
            roles: vec!["operator".into()],
            tenant_id: tenant.clone(),
        },
        request_id: None,
        break_glass: false,
        break_glass_reason: None,
        via: Some("carapulse:scheduler".to_owned()),
    })
}

/// One pass; returns how many plans it made.
pub async fn tick(state: &AppState) -> Result<usize, String> {
    let now = Utc::now();
    let grace = Duration::seconds(
        i64::try_from(state.config.scheduler.poll_interval_secs.max(1)).unwrap_or(30) * 2,
    );
    let mut tx = state
        .store
        .pool()
        .begin()
        .await
        .map_err(|e| e.to_string())?;
    let due = state
        .store
        .claim_due_schedules(&mut tx, now, BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let mut made = 0;
    for schedule in due {
        let next = match CronSchedule::parse(&schedule.cron, &schedule.timezone)
            .and_then(|c| c.next_after(now))
        {
            Ok(next) => next,
            Err(e) => {
                // A schedule that can no longer be evaluated is disabled rather than retried forever.
                tracing::warn!(schedule_id = %schedule.schedule_id, error = %e, "schedule disabled");
                let _ = sqlx::query("UPDATE schedules SET enabled = false WHERE schedule_id = $1")
                    .bind(schedule.schedule_id)
                    .execute(&mut *tx)
                    .await;
                continue;
            }
        };
        let Some(scheduled_for) = schedule.next_run_at else {
            continue;
        };
        let missed = now - scheduled_for > grace;
        let run = !missed || schedule.missed_run_policy == "run_once";
        let mut ran_at = None;
        if run {
            match run_one(state, &schedule, scheduled_for).await {
                Ok(true) => {
                    made += 1;
                    ran_at = Some(now);
                }
                Ok(false) => ran_at = Some(now),
                Err(e) => {
                    tracing::warn!(schedule_id = %schedule.schedule_id, error = %e, "scheduled run failed")
                }
            }
        } else {
            tracing::info!(schedule_id = %schedule.schedule_id, %scheduled_for, "missed run skipped (missed_run_policy skip)");
        }
        state
            .store
            .schedule_ran(&mut tx, schedule.schedule_id, ran_at, next)
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(made)
}

/// Makes the run's plan unless it exists already; true when a plan was made.
async fn run_one(
    state: &AppState,
    s: &ScheduleRecord,
    scheduled_for: chrono::DateTime<Utc>,
) -> Result<bool, String> {
    let tenant = TenantId::parse(&s.tenant_id).map_err(|e| e.to_string())?;
    if state
        .store
        .scheduled_plan(&tenant, s.schedule_id, scheduled_for)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(false);
    }
    let ctx = system_context(&tenant, &s.created_by)?;
    let context: ContextRef =
        serde_json::from_value(s.context.clone()).map_err(|e| e.to_string())?;
    let (steps, workflow) = match &s.workflow_name {
        Some(name) => {
            let template = carapulse_core::workflows::find(name)
                .ok_or_else(|| format!("workflow {name} is not in the catalogue"))?;
            let steps = template
                .steps(&s.workflow_input)
                .map_err(|e| e.to_string())?;
            (
                steps,
                Some(json!({"name": name, "input": s.workflow_input})),
            )
        }
        None => (Vec::new(), None),
    };
    let request = PlanCreateRequest {
        summary: s.summary.clone(),
        trigger: Trigger::Scheduled,
        intent: s.intent.clone(),
        context,
        constraints: Some(s.constraints.clone()),
        session_id: None,
        steps,
        alert: None,
        alert_planning: None,
        draft: None,
        schedule: Some(
            json!({"schedule_id": s.schedule_id.to_string(), "scheduled_for": scheduled_for.to_rfc3339()}),
        ),
        preview: false,
    };
    match create_plan(state, &ctx, request, workflow).await {
        Ok((plan, _)) => {
            tracing::info!(schedule_id = %s.schedule_id, plan_id = %plan.plan_id, "scheduled plan created");
            Ok(true)
        }
        Err(e) => {
            state
                .audit(
                    ctx.audit("schedule.run", AuditDecision::Deny)
                        .resource("schedule", s.schedule_id)
                        .reason(e.message.clone()),
                )
                .await;
            Err(e.message)
        }
    }
}
