//! The Linear approval watcher: every pending plan gets a Linear issue labelled
//! `approval:pending`; the watcher polls those issues and turns an `approval:approved` or
//! `approval:denied` label into an approval decision, attributed to the Linear user who added
//! the label (mapped through `connectors.linear.user_map`), with separation of duties and the
//! optional `connectors.linear.approvers` allow-list enforced exactly as for API approvals.
//!
//! Requests live in `approval_requests` and are claimed with a lease, so gateway replicas share
//! the work; Linear failures back off per request (exponential, capped at 15 minutes). Plans
//! decided elsewhere or expired get a closing comment on their issue.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::Mutex;

use carapulse_core::audit::{AuditActor, AuditDecision, AuditEntry};
use carapulse_core::config::LinearConnector;
use carapulse_core::linear::{
    IssueState, LinearClient, LinearError, LABEL_APPROVED, LABEL_DENIED, LABEL_EXPIRED,
    LABEL_PENDING,
};
use carapulse_core::model::{ActorId, ApprovalSource, ApprovalStatus, Plan, PlanApprovalState};
use carapulse_core::store::{ApprovalDecision, ApprovalRequest, RequestStatus, StoreError};

use crate::state::AppState;

/// Requests worked per tick.
const BATCH: i64 = 100;
/// How long a claimed request is reserved for this replica.
const LEASE_SECS: i64 = 120;
/// Longest back-off after repeated failures.
const MAX_BACKOFF_SECS: i64 = 900;

#[derive(Debug, Clone)]
struct LabelIds {
    pending: String,
    approved: String,
    denied: String,
    expired: String,
}

/// The watcher; built when `connectors.linear.token` and `team_id` are set.
#[derive(Debug)]
pub struct LinearWatcher {
    client: LinearClient,
    team_id: String,
    poll: Duration,
    user_map: BTreeMap<String, String>,
    approvers: Vec<String>,
    public_url: Option<String>,
    labels: Mutex<Option<LabelIds>>,
}

impl LinearWatcher {
    pub fn from_config(cfg: &LinearConnector) -> Option<Result<Self, LinearError>> {
        let token = cfg.token.as_deref().filter(|t| !t.is_empty())?;
        let team_id = cfg.team_id.as_deref().filter(|t| !t.is_empty())?;
        Some(
            LinearClient::new(&cfg.base_url, token, Duration::from_secs(15)).map(|client| Self {
                client,
                team_id: team_id.to_owned(),
                poll: Duration::from_millis(cfg.poll_interval_ms.max(100)),
                user_map: cfg
                    .user_map
                    .iter()
                    .map(|(k, v)| (k.to_lowercase(), v.clone()))
                    .collect(),
                approvers: cfg.approvers.iter().map(|a| a.to_lowercase()).collect(),
                public_url: cfg.public_url.clone(),
                labels: Mutex::new(None),
            }),
        )
    }

    pub fn poll_interval(&self) -> Duration {
        self.poll
    }

    /// The approval labels of the team, created when missing (cached after the first tick).
    async fn labels(&self) -> Result<LabelIds, LinearError> {
        let mut cached = self.labels.lock().await;
        if let Some(ids) = cached.as_ref() {
            return Ok(ids.clone());
        }
        let existing = self.client.team_labels(&self.team_id).await?;
        let find_or_create = async |name: &str, color: &str| -> Result<String, LinearError> {
            match existing.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)) {
                Some((id, _)) => Ok(id.clone()),
                None => self.client.create_label(&self.team_id, name, color).await,
            }
        };
        let ids = LabelIds {
            pending: find_or_create(LABEL_PENDING, "#f2c94c").await?,
            approved: find_or_create(LABEL_APPROVED, "#4cb782").await?,
            denied: find_or_create(LABEL_DENIED, "#eb5757").await?,
            expired: find_or_create(LABEL_EXPIRED, "#95a2b3").await?,
        };
        *cached = Some(ids.clone());
        Ok(ids)
    }

    fn next_poll(&self) -> chrono::DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.poll).unwrap_or(chrono::Duration::seconds(30))
    }

    async fn failed(&self, state: &AppState, req: &ApprovalRequest, err: &LinearError) {
        let secs = (2_i64.pow(req.attempts.clamp(0, 10) as u32) * 5).min(MAX_BACKOFF_SECS);
        let retry_at = Utc::now() + chrono::Duration::seconds(secs);
        tracing::warn!(plan_id = %req.plan_id, error = %err, retry_in_secs = secs, "linear call failed");
        if let Err(e) = state
            .store
            .approval_request_failed(req.plan_id, &err.to_string(), retry_at)
            .await
        {
            tracing::warn!(error = %e, "could not record the linear failure");
        }
    }

    /// One pass: enqueue, create issues, poll labels.
    pub async fn tick(&self, state: &AppState) -> Result<(), String> {
        state
            .store
            .enqueue_approval_requests(BATCH)
            .await
            .map_err(|e| e.to_string())?;
        let claimed = state
            .store
            .claim_approval_requests(Utc::now(), chrono::Duration::seconds(LEASE_SECS), BATCH)
            .await
            .map_err(|e| e.to_string())?;
        if claimed.is_empty() {
            return Ok(());
        }
        let labels = self.labels().await.map_err(|e| e.to_string())?;
        let mut open = Vec::new();
        for req in claimed {
            let plan = match state.store.get_plan(&req.tenant_id, req.plan_id).await {
                Ok(p) => p,
                // Deleted (withdrawn before it ran): its issue says so, then the request closes.
                Err(StoreError::NotFound) => {
                    self.close_withdrawn(state, &req).await;
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            };
            if plan.approval_state != PlanApprovalState::Pending {
                self.close_decided_elsewhere(state, &req, &plan).await;
                continue;
            }
            match req.status {
                RequestStatus::Creating => self.create_issue(state, &req, &plan, &labels).await,
                _ => open.push((req, plan)),
            }
        }
        if open.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = open
            .iter()
            .filter_map(|(r, _)| r.external_id.clone())
            .collect();
        let issues = match self.client.issues(&ids).await {
            Ok(issues) => issues,
            Err(e) => {
                for (req, _) in &open {
                    self.failed(state, req, &e).await;
                }
                return Ok(());
            }
        };
        for (req, plan) in open {
            let issue = issues
                .iter()
                .find(|i| Some(&i.id) == req.external_id.as_ref());
            match issue {
                Some(issue) => self.apply_labels(state, &req, &plan, issue, &labels).await,
                None => {
                    let err = LinearError::Decode(format!(
                        "issue {} not returned (deleted or no access)",
                        req.external_key.as_deref().unwrap_or("?")
                    ));
                    self.failed(state, &req, &err).await;
                }
            }
        }
        Ok(())
    }

    async fn create_issue(
        &self,
        state: &AppState,
        req: &ApprovalRequest,
        plan: &Plan,
        labels: &LabelIds,
    ) {
        let title: String = format!("[Carapulse] Approve: {}", plan.summary.as_str())
            .chars()
            .take(240)
            .collect();
        let description = describe(plan, self.public_url.as_deref());
        match self
            .client
            .create_issue(
                &self.team_id,
                &title,
                &description,
                std::slice::from_ref(&labels.pending),
            )
            .await
        {
            Ok(issue) => {
                tracing::info!(plan_id = %plan.plan_id, issue = %issue.identifier, "linear approval issue created");
                // A revision asked again: the earlier issue is told where the decision went.
                if let Some(previous) = &req.previous_external_id {
                    let body = format!(
                        "This plan was revised to revision {} ({}). Its approval moved to {} ({}); labels on this issue no longer decide anything.",
                        plan.revision,
                        plan.meta["revision_summary"].as_str().unwrap_or("see the plan's diff"),
                        issue.identifier,
                        issue.url
                    );
                    if let Err(e) = self.client.comment(previous, &body).await {
                        tracing::warn!(error = %e, "telling the superseded issue failed");
                    }
                }
                let opened = state
                    .store
                    .approval_request_opened(
                        plan.plan_id,
                        (&issue.id, &issue.identifier, &issue.url),
                        self.next_poll(),
                    )
                    .await;
                if let Err(e) = opened {
                    tracing::error!(error = %e, issue = %issue.identifier, "linear issue created but not recorded");
                }
                let entry = AuditEntry::new(
                    plan.tenant_id.clone(),
                    AuditActor::system(),
                    "approval.requested",
                    AuditDecision::Allow,
                )
                .resource("plan", plan.plan_id)
                .context(json!({"channel": "linear", "issue": issue.identifier, "url": issue.url}));
                state.audit(entry).await;
            }
            Err(e) => self.failed(state, req, &e).await,
        }
    }

    async fn close_withdrawn(&self, state: &AppState, req: &ApprovalRequest) {
        let body = "This plan was withdrawn (deleted) in Carapulse before a decision; this issue no longer decides anything.";
        self.comment_then_close(state, req, body, RequestStatus::Closed)
            .await;
    }

    /// Tells an open issue why it no longer decides anything, then closes its request; a
    /// comment that may succeed later is retried (the request stays due) instead of lost.
    async fn comment_then_close(
        &self,
        state: &AppState,
        req: &ApprovalRequest,
        body: &str,
        status: RequestStatus,
    ) {
        if let (RequestStatus::Open, Some(issue)) = (req.status, &req.external_id) {
            if let Err(e) = self.client.comment(issue, body).await {
                if e.retryable() {
                    self.failed(state, req, &e).await;
                    return;
                }
                tracing::warn!(error = %e, "closing comment failed");
            }
        }
        if let Err(e) = state
            .store
            .approval_request_closed(req.plan_id, status)
            .await
        {
            tracing::warn!(error = %e, "could not close the approval request");
        }
    }

    async fn close_decided_elsewhere(&self, state: &AppState, req: &ApprovalRequest, plan: &Plan) {
        let status = match plan.approval_state {
            PlanApprovalState::Approved => RequestStatus::Approved,
            PlanApprovalState::Denied => RequestStatus::Denied,
            PlanApprovalState::Expired => RequestStatus::Expired,
            _ => RequestStatus::Closed,
        };
        let body = match plan.approval_state {
            PlanApprovalState::Expired => "This approval request expired without a decision (approvals.timeout_hours). The plan will not run.".to_owned(),
            other => format!("This plan was {} in Carapulse; this issue no longer decides anything.", other.as_str()),
        };
        if let (RequestStatus::Open, Some(issue)) = (req.status, &req.external_id) {
            // An expired request is labelled so (the pending label goes), before the comment:
            // the swap is idempotent, so a retry after a failed comment repeats nothing visible.
            if plan.approval_state == PlanApprovalState::Expired {
                let swapped = match self.labels().await {
                    Ok(ids) => {
                        self.client
                            .swap_label(issue, &ids.pending, &ids.expired)
                            .await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = swapped {
                    if e.retryable() {
                        self.failed(state, req, &e).await;
                        return;
                    }
                    tracing::warn!(error = %e, "labelling the expired issue failed");
                }
            }
        }
        self.comment_then_close(state, req, &body, status).await;
    }

    async fn refuse(
        &self,
        state: &AppState,
        req: &ApprovalRequest,
        plan: &Plan,
        issue: &IssueState,
        actor: &AuditActor,
        reason: String,
    ) {
        if req.last_error.as_deref() != Some(reason.as_str()) {
            let entry = AuditEntry::new(
                plan.tenant_id.clone(),
                actor.clone(),
                "approval.create",
                AuditDecision::Deny,
            )
            .resource("plan", plan.plan_id)
            .reason(reason.clone())
            .context(json!({"source": "linear", "issue": issue.identifier}));
            state.audit(entry).await;
            let _ = self
                .client
                .comment(
                    &issue.id,
                    &format!("Carapulse did not record this decision: {reason}"),
                )
                .await;
        }
        let _ = state
            .store
            .approval_request_polled(req.plan_id, self.next_poll(), Some(&reason))
            .await;
    }

    async fn apply_labels(
        &self,
        state: &AppState,
        req: &ApprovalRequest,
        plan: &Plan,
        issue: &IssueState,
        labels: &LabelIds,
    ) {
        // Denied wins when both labels are present: the safe reading of a conflict.
        let (status, label_id) = if issue.labels.iter().any(|(id, _)| id == &labels.denied) {
            (ApprovalStatus::Denied, &labels.denied)
        } else if issue.labels.iter().any(|(id, _)| id == &labels.approved) {
            (ApprovalStatus::Approved, &labels.approved)
        } else {
            let _ = state
                .store
                .approval_request_polled(req.plan_id, self.next_poll(), None)
                .await;
            return;
        };
        let change = issue.who_added(label_id);
        let email = change
            .and_then(|c| c.actor_email.clone())
            .map(|e| e.to_lowercase());
        let unknown = AuditActor::person("linear:unknown", None);
        let Some(email) = email else {
            self.refuse(
                state,
                req,
                plan,
                issue,
                &unknown,
                "the Linear history does not say who added the decision label".into(),
            )
            .await;
            return;
        };
        let actor_id = self
            .user_map
            .get(&email)
            .cloned()
            .unwrap_or_else(|| email.clone());
        let actor = AuditActor::person(actor_id.clone(), Some(email.clone()));
        if !self.approvers.is_empty() && !self.approvers.contains(&email) {
            self.refuse(
                state,
                req,
                plan,
                issue,
                &actor,
                format!("{email} is not in connectors.linear.approvers"),
            )
            .await;
            return;
        }
        let Ok(approver) = ActorId::parse(&actor_id) else {
            self.refuse(
                state,
                req,
                plan,
                issue,
                &actor,
                format!("{actor_id:?} is not a valid actor id"),
            )
            .await;
            return;
        };
        if plan.is_author(&approver) {
            self.refuse(
                state,
                req,
                plan,
                issue,
                &actor,
                "separation of duties: the creator of a plan cannot decide it".into(),
            )
            .await;
            return;
        }
        // The reach of the change is looked at again, as for an approval through the API.
        let blast_check = if status == ApprovalStatus::Approved {
            let check = crate::blast::check_for_approval(state, plan).await;
            if let Some(reason) = check.refusal(plan) {
                self.refuse(state, req, plan, issue, &actor, reason).await;
                return;
            }
            Some(check)
        } else {
            None
        };
        let note = format!(
            "Linear {} label {}",
            issue.identifier,
            match status {
                ApprovalStatus::Approved => LABEL_APPROVED,
                _ => LABEL_DENIED,
            }
        );
        let decision = ApprovalDecision {
            status,
            approver: approver.clone(),
            approver_email: Some(email.clone()),
            source: ApprovalSource::Linear,
            note: Some(note.clone()),
        };
        let entry = AuditEntry::new(
            plan.tenant_id.clone(),
            actor.clone(),
            &format!("approval.{}", status.as_str()),
            if status == ApprovalStatus::Approved {
                AuditDecision::Allow
            } else {
                AuditDecision::Deny
            },
        )
        .resource("plan", plan.plan_id)
        .context(json!({
            "source": "linear",
            "issue": issue.identifier,
            "blast_radius": blast_check.as_ref().map(crate::blast::ApprovalCheck::summary),
        }));
        match state
            .record_approval(&plan.tenant_id, plan.plan_id, decision, entry)
            .await
        {
            Ok(_) => {
                state.metrics.record_audit(true);
                if let Some(check) = &blast_check {
                    crate::blast::keep_approval_estimate(state, plan, check).await;
                }
                tracing::info!(plan_id = %plan.plan_id, status = status.as_str(), approver = %approver, "linear approval recorded");
                // Policy wants more approvers: the issue stays open and says how many.
                if let Ok(tally) = state
                    .store
                    .approval_tally(&plan.tenant_id, plan.plan_id)
                    .await
                {
                    if tally.approval_state == PlanApprovalState::Pending {
                        let progress = format!(
                            "Carapulse recorded: approved by {email} ({} of {} approvals). Another approver must approve: in Carapulse, or by removing and adding approval:approved again.",
                            tally.approved_by.len(),
                            tally.approvals_required
                        );
                        let _ = self.client.comment(&issue.id, &progress).await;
                        let _ = state
                            .store
                            .approval_request_polled(req.plan_id, self.next_poll(), Some(&progress))
                            .await;
                        return;
                    }
                }
                let _ = crate::routes::approvals::signal_waiting_run(
                    state,
                    &plan.tenant_id,
                    plan.plan_id,
                    status == ApprovalStatus::Approved,
                    approver.to_string(),
                    Some(note),
                )
                .await;
                let _ = self
                    .client
                    .comment(
                        &issue.id,
                        &format!("Carapulse recorded: {} by {email}.", status.as_str()),
                    )
                    .await;
                let closed = if status == ApprovalStatus::Approved {
                    RequestStatus::Approved
                } else {
                    RequestStatus::Denied
                };
                let _ = state
                    .store
                    .approval_request_closed(req.plan_id, closed)
                    .await;
            }
            // The same person's label again while more approvers are needed: said once.
            Err(StoreError::Conflict(msg)) if msg.contains("already decided this plan") => {
                self.refuse(
                    state,
                    req,
                    plan,
                    issue,
                    &actor,
                    format!("{email} has already approved; another approver is needed"),
                )
                .await;
            }
            Err(StoreError::Conflict(msg)) => {
                tracing::info!(plan_id = %plan.plan_id, %msg, "linear decision arrived after the plan was settled");
                let _ = state
                    .store
                    .approval_request_closed(req.plan_id, RequestStatus::Closed)
                    .await;
            }
            Err(e) => tracing::warn!(error = %e, "could not record the linear decision"),
        }
    }
}

/// `- Blast radius: ...` and `- Reaches: ...` (the nearest services) of the issue body, and
/// how many approvers policy asks for.
fn blast_radius_lines(plan: &Plan) -> String {
    const SHOWN: usize = 10;
    let mut out = format!("- Approvers required: {}\n", plan.approvals_required());
    let Some(estimate) = crate::blast::stored(plan) else {
        return out;
    };
    out.push_str(&format!(
        "- Blast radius: **{}**\n",
        estimate.headline(chrono::Utc::now())
    ));
    if !estimate.services.is_empty() {
        let names: Vec<String> = estimate
            .services
            .iter()
            .take(SHOWN)
            .map(|s| match &s.team {
                Some(team) => format!("`{}` ({team})", s.name),
                None => format!("`{}`", s.name),
            })
            .collect();
        out.push_str(&format!("- Reaches: {}", names.join(", ")));
        if estimate.service_count > SHOWN {
            out.push_str(&format!(" and {} more", estimate.service_count - SHOWN));
        }
        out.push('\n');
    }
    out
}

/// The issue body: what would run, how risky, until when, and how to decide.
fn describe(plan: &Plan, public_url: Option<&str>) -> String {
    let mut out = format!(
        "**Plan** `{}`\n\n- Risk: **{}**\n- Trigger: {}\n- Created by: {}\n- Environment: {} / namespace {}\n",
        plan.plan_id,
        plan.risk_level.as_str(),
        plan.trigger.as_str(),
        plan.created_by,
        plan.context.environment,
        if plan.context.namespace.is_empty() { "-" } else { &plan.context.namespace },
    );
    if let Some(deadline) = plan.approval_expires_at {
        out.push_str(&format!("- Expires: {}\n", deadline.to_rfc3339()));
    }
    if plan.revision > 1 {
        out.push_str(&format!(
            "- Revision: **{}**, changes: {}\n",
            plan.revision,
            plan.meta["revision_summary"]
                .as_str()
                .unwrap_or("(see the plan's diff)")
        ));
    }
    out.push_str(&blast_radius_lines(plan));
    out.push_str("\n**Steps**\n");
    for step in &plan.steps {
        out.push_str(&format!(
            "{}. [{}] `{} {}` {}\n",
            step.ordinal + 1,
            step.stage.as_str(),
            step.tool,
            step.action.as_str(),
            serde_json::to_string(&step.input).unwrap_or_default()
        ));
    }
    if let Some(base) = public_url {
        out.push_str(&format!(
            "\n[Open in Carapulse]({}/plans/{})\n",
            base.trim_end_matches('/'),
            plan.plan_id
        ));
    }
    out.push_str(&format!(
        "\nTo decide, add the label `{LABEL_APPROVED}` or `{LABEL_DENIED}`. The person adding it is recorded as the approver; the plan's creator cannot decide it.\n"
    ));
    out
}
