//! Block Kit replies (slack-morphism types): a plan card with risk, steps and Approve/Deny
//! buttons, decision and status cards, audit lists, and plain errors. Each reply is the JSON
//! body posted to a `response_url`.

use serde_json::{json, Value};
use slack_morphism::prelude::*;

/// `action_id`s of the two buttons.
pub const APPROVE_ACTION: &str = "carapulse_approve";
pub const DENY_ACTION: &str = "carapulse_deny";

/// Most steps listed on a card (Slack sections hold 3000 characters).
const MAX_STEPS_SHOWN: usize = 12;

fn section(text: String) -> SlackBlock {
    SlackSectionBlock::new().with_text(md!(text)).into()
}

fn fields(pairs: &[(&str, String)]) -> SlackBlock {
    SlackSectionBlock::new()
        .with_fields(
            pairs
                .iter()
                .map(|(k, v)| md!(format!("*{k}*\n{v}")))
                .collect(),
        )
        .into()
}

fn message(text: String, blocks: Vec<SlackBlock>, replace: bool) -> Value {
    json!({
        "response_type": "ephemeral",
        "replace_original": replace,
        "text": text,
        "blocks": blocks,
    })
}

fn s(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("-").to_owned()
}

fn clip(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        text
    } else {
        let mut t: String = text.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// The card for a plan; buttons while it waits for approval.
pub fn plan_card(plan: &Value, headline: &str) -> Value {
    let plan_id = s(plan, "plan_id");
    let state = s(plan, "approval_state");
    let mut steps = String::new();
    let all = plan
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, step) in all.iter().take(MAX_STEPS_SHOWN).enumerate() {
        let input = step.get("input").map(Value::to_string).unwrap_or_default();
        steps.push_str(&format!(
            "{}. `{}` *{} {}* {}\n",
            i + 1,
            s(step, "stage"),
            s(step, "tool"),
            s(step, "action"),
            clip(input, 120)
        ));
    }
    if all.len() > MAX_STEPS_SHOWN {
        steps.push_str(&format!("… and {} more\n", all.len() - MAX_STEPS_SHOWN));
    }
    if steps.is_empty() {
        steps.push_str("_no steps_");
    }
    let mut blocks = vec![
        section(format!("*{headline}*\n{}", clip(s(plan, "summary"), 500))),
        fields(&[
            ("Risk", s(plan, "risk_level")),
            ("Approval", state.clone()),
            ("Planner", s(plan, "planner")),
            ("Plan", format!("`{plan_id}`")),
        ]),
        section(clip(steps, 2900)),
    ];
    // A revised plan says what its current revision changed before anyone approves it.
    if let Some(revision) = plan
        .get("revision")
        .and_then(Value::as_i64)
        .filter(|r| *r > 1)
    {
        let changes = plan
            .pointer("/meta/revision_summary")
            .and_then(Value::as_str)
            .unwrap_or("see the plan's diff");
        blocks.insert(
            2,
            section(clip(
                format!("*Revision {revision}* — changes: {changes}"),
                500,
            )),
        );
    }
    // Who depends on what changes, before anyone approves it.
    if let Some(blast) = plan.get("blast_radius").filter(|b| !b.is_null()) {
        blocks.push(section(clip(blast_radius_text(plan, blast), 900)));
    }
    if state == "pending" {
        let approve = SlackBlockButtonElement::new(pt!("Approve"))
            .with_action_id(SlackActionId::new(APPROVE_ACTION.into()))
            .with_value(plan_id.clone())
            .with_style(SlackBlockButtonStyle::Primary);
        let deny = SlackBlockButtonElement::new(pt!("Deny"))
            .with_action_id(SlackActionId::new(DENY_ACTION.into()))
            .with_value(plan_id.clone())
            .with_style(SlackBlockButtonStyle::Danger);
        blocks.push(SlackActionsBlock::new(vec![approve.into(), deny.into()]).into());
    }
    message(format!("{headline}: {}", s(plan, "summary")), blocks, false)
}

/// `*Blast radius* — 3 services, ...` with the approvers required and the nearest services.
fn blast_radius_text(plan: &Value, blast: &Value) -> String {
    const SHOWN: usize = 6;
    let mut text = format!(
        "*Blast radius* — {}",
        blast.get("headline").and_then(Value::as_str).unwrap_or("-")
    );
    if let Some(required) = plan.pointer("/approvals/required").and_then(Value::as_u64) {
        text.push_str(&format!("\n*Approvers required:* {required}"));
    }
    let services: Vec<String> = blast
        .pointer("/estimate/services")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(SHOWN)
        .map(|svc| {
            let mut line = format!("`{}`", s(svc, "name"));
            if let Some(team) = svc.get("team").and_then(Value::as_str) {
                line.push_str(&format!(" ({team})"));
            }
            line
        })
        .collect();
    if !services.is_empty() {
        text.push_str(&format!("\n*Reaches:* {}", services.join(", ")));
        let total = blast
            .pointer("/estimate/service_count")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        if total > SHOWN {
            text.push_str(&format!(" and {} more", total - SHOWN));
        }
    }
    text
}

/// The answer to a decision.
pub fn decision_card(plan_id: &str, status: &str, actor: &str, replace: bool) -> Value {
    let text = format!("Plan `{plan_id}` {status} by {actor}.");
    message(text.clone(), vec![section(text)], replace)
}

/// An execution's status and step progress.
pub fn execution_card(exec: &Value) -> Value {
    let mut lines = String::new();
    for step in exec
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(MAX_STEPS_SHOWN)
    {
        lines.push_str(&format!(
            "• {} `{}` {}\n",
            step.get("ordinal")
                .map(Value::to_string)
                .unwrap_or_default(),
            s(step, "stage"),
            s(step, "status"),
        ));
    }
    let mut blocks = vec![fields(&[
        ("Execution", format!("`{}`", s(exec, "execution_id"))),
        ("Status", s(exec, "status")),
        ("Started", s(exec, "started_at")),
        ("Finished", s(exec, "completed_at")),
    ])];
    let verification = exec.get("verification").cloned().unwrap_or(Value::Null);
    if let Some(why) = carapulse_core::verify::report::rollback_reason(&verification) {
        blocks.push(section(format!("*Rolled back because* {}", clip(why, 500))));
    }
    if let Some(err) = exec.get("error").and_then(Value::as_str) {
        blocks.push(section(format!("*Error*: {}", clip(err.to_owned(), 1000))));
    }
    if verification["awaiting_decision"] == true {
        let id = s(exec, "execution_id");
        blocks.push(section(format!(
            "*An analysis was inconclusive* and waits for a person: `/assistant continue {id}` or `/assistant rollback {id}`"
        )));
    }
    if !lines.is_empty() {
        blocks.push(section(lines));
    }
    message(
        format!(
            "Execution {}: {}",
            s(exec, "execution_id"),
            s(exec, "status")
        ),
        blocks,
        false,
    )
}

/// The audit trail of a plan.
pub fn audit_card(plan_id: &str, events: &Value) -> Value {
    let mut lines = String::new();
    for e in events
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        lines.push_str(&format!(
            "• {} *{}* {} by {}\n",
            s(e, "occurred_at"),
            s(e, "action"),
            s(e, "decision"),
            e.pointer("/actor/id")
                .and_then(Value::as_str)
                .unwrap_or("-"),
        ));
    }
    if lines.is_empty() {
        lines.push_str("_no events_");
    }
    let text = format!("Audit trail of plan `{plan_id}`");
    message(
        text.clone(),
        vec![section(format!("*{text}*\n{}", clip(lines, 2800)))],
        false,
    )
}

/// A plain answer (usage, refusals, errors).
pub fn text(text: &str) -> Value {
    message(text.to_owned(), vec![section(text.to_owned())], false)
}

#[cfg(test)]
mod verification_tests {
    use super::*;

    #[test]
    fn a_revised_plan_card_says_what_changed() {
        let plan = serde_json::json!({
            "plan_id": "p1", "summary": "scale web", "approval_state": "pending", "revision": 3,
            "meta": {"revision_summary": "1 step changed; risk_level medium -> high"},
            "steps": [{"stage": "act", "tool": "kubectl", "action": "scale", "input": {"replicas": 5}}]
        });
        let card = plan_card(&plan, "Plan revised").to_string();
        assert!(
            card.contains("Revision 3* — changes: 1 step changed; risk_level medium -> high"),
            "{card}"
        );
        let first = serde_json::json!({"plan_id": "p1", "summary": "scale web", "approval_state": "pending", "revision": 1, "steps": []});
        assert!(!plan_card(&first, "Plan created")
            .to_string()
            .contains("Revision"));
    }

    #[test]
    fn plan_cards_state_the_blast_radius_and_the_approvers_required() {
        let plan = serde_json::json!({
            "plan_id": "p1", "summary": "scale web", "approval_state": "pending", "steps": [],
            "approvals": {"required": 2, "approved_by": []},
            "blast_radius": {"stage": "revision", "headline": "8 services, 3 namespaces, 2 teams, 450.0 req/s, tier critical",
                "estimate": {"service_count": 8, "services": [
                    {"name": "web", "team": "shop"}, {"name": "api"}, {"name": "a"}, {"name": "b"},
                    {"name": "c"}, {"name": "d"}, {"name": "e"}, {"name": "f"}]}}
        });
        let card = plan_card(&plan, "Plan created").to_string();
        assert!(
            card.contains(
                "*Blast radius* — 8 services, 3 namespaces, 2 teams, 450.0 req/s, tier critical"
            ),
            "{card}"
        );
        assert!(card.contains("*Approvers required:* 2"), "{card}");
        assert!(
            card.contains("*Reaches:* `web` (shop), `api`, `a`, `b`, `c`, `d` and 2 more"),
            "{card}"
        );
        let unknown = serde_json::json!({"plan_id": "p2", "summary": "s", "approval_state": "pending", "steps": [],
            "blast_radius": {"headline": "unknown: no service-graph data for this tenant", "estimate": {"services": []}}});
        assert!(plan_card(&unknown, "Plan created")
            .to_string()
            .contains("*Blast radius* — unknown: no service-graph data"));
        let older = serde_json::json!({"plan_id": "p3", "summary": "s", "approval_state": "pending", "steps": [], "blast_radius": null});
        assert!(!plan_card(&older, "Plan created")
            .to_string()
            .contains("Blast radius"));
    }

    #[test]
    fn execution_cards_say_why_an_analysis_rolled_back_and_when_a_person_is_needed() {
        let exec = serde_json::json!({
            "execution_id": "e1", "status": "rolled_back", "error": "verify step 2 failed",
            "verification": {"analyses": [{"verdict": "failed", "samples": [
                {"verdict": "failed", "measured": ["0.31"], "threshold": 0.05, "query": "error ratio"},
                {"verdict": "failed", "measured": ["0.33"], "threshold": 0.05, "query": "error ratio"},
                {"verdict": "failed", "measured": ["0.31"], "threshold": 0.05, "query": "error ratio"}]}]}
        });
        let text = execution_card(&exec).to_string();
        assert!(
            text.contains(
                "Rolled back because* error ratio: 0.31 against threshold 0.05 in 3 of 3 samples"
            ),
            "{text}"
        );
        let waiting = serde_json::json!({"execution_id": "e2", "status": "running",
            "verification": {"analyses": [], "awaiting_decision": true}});
        let text = execution_card(&waiting).to_string();
        assert!(text.contains("/assistant continue e2"), "{text}");
    }
}
