//! linear (GraphQL) and pagerduty (Events API v2), API only.

use serde_json::json;

use crate::model::{RiskLevel, ToolName};
use crate::tools::{ActionClass, ActionSpec, ApiRequest, FieldKind as K, FieldSpec as F, ListOf};

const R: ActionClass = ActionClass::Read;
const W_LOW: ActionClass = ActionClass::Write(RiskLevel::Low);

const DEDUP: F = F::req("dedup_key", K::Name, "incident key");

pub(super) fn actions() -> Vec<ActionSpec> {
    vec![
        ActionSpec {
            tool: ToolName::Linear,
            action: "issue-create",
            description: "Create an issue",
            class: W_LOW,
            break_glass: false,
            fields: const {
                &[
                    F::req("team_id", K::Name, "team"),
                    F::req("title", K::Text { max: 256 }, "title"),
                    F::opt("description", K::Text { max: 10_000 }, "markdown"),
                    F::opt("label_ids", K::List(ListOf::Names), "labels"),
                ]
            },
            cli: None,
            api: Some(|i| {
                ApiRequest::post(
                    "/graphql",
                    json!({
                        "query": "mutation IssueCreate($input: IssueCreateInput!) { issueCreate(input: $input) { success issue { id identifier url } } }",
                        "variables": {"input": {"teamId": i.str("team_id"), "title": i.str("title"), "description": i.str("description"), "labelIds": i.strings("label_ids")}},
                    }),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Linear,
            action: "issue-label",
            description: "Set an issue's labels",
            class: W_LOW,
            break_glass: false,
            fields: const {
                &[
                    F::req("issue_id", K::Name, "issue"),
                    F::req("label_ids", K::List(ListOf::Names), "labels"),
                ]
            },
            cli: None,
            api: Some(|i| {
                ApiRequest::post(
                    "/graphql",
                    json!({
                        "query": "mutation IssueUpdate($id: String!, $input: IssueUpdateInput!) { issueUpdate(id: $id, input: $input) { success } }",
                        "variables": {"id": i.str("issue_id"), "input": {"labelIds": i.strings("label_ids")}},
                    }),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Linear,
            action: "issue-get",
            description: "An issue with its labels",
            class: R,
            break_glass: false,
            fields: const { &[F::req("issue_id", K::Name, "issue")] },
            cli: None,
            api: Some(|i| {
                ApiRequest::post(
                    "/graphql",
                    json!({
                        "query": "query Issue($id: String!) { issue(id: $id) { id identifier title url labels { nodes { id name } } } }",
                        "variables": {"id": i.str("issue_id")},
                    }),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Pagerduty,
            action: "trigger",
            description: "Open (or update) an incident",
            class: W_LOW,
            break_glass: false,
            fields: const {
                &[
                    F::req("summary", K::Text { max: 1024 }, "summary"),
                    F::req(
                        "severity",
                        K::Enum(&["critical", "error", "warning", "info"]),
                        "severity",
                    ),
                    F::req("source", K::Name, "affected system"),
                    F::opt("dedup_key", K::Name, "incident key"),
                ]
            },
            cli: None,
            api: Some(|i| {
                ApiRequest::post(
                    "/v2/enqueue",
                    json!({"event_action": "trigger", "dedup_key": i.str("dedup_key"), "payload": {"summary": i.str("summary"), "severity": i.str("severity"), "source": i.str("source")}}),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Pagerduty,
            action: "acknowledge",
            description: "Acknowledge an incident",
            class: W_LOW,
            break_glass: false,
            fields: const { &[DEDUP] },
            cli: None,
            api: Some(|i| {
                ApiRequest::post(
                    "/v2/enqueue",
                    json!({"event_action": "acknowledge", "dedup_key": i.str("dedup_key")}),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Pagerduty,
            action: "resolve",
            description: "Resolve an incident",
            class: W_LOW,
            break_glass: false,
            fields: const { &[DEDUP] },
            cli: None,
            api: Some(|i| {
                ApiRequest::post(
                    "/v2/enqueue",
                    json!({"event_action": "resolve", "dedup_key": i.str("dedup_key")}),
                )
            }),
        },
    ]
}
