//! A small Linear GraphQL client: just what approvals need (team labels, create an issue, read
//! issues' labels with the history of who added them, comment).
//!
//! Personal API keys (`lin_api_...`) go in `Authorization` as they are; OAuth tokens as
//! `Bearer`. GraphQL errors inside a 200 answer are errors; 429 and 5xx are reported as
//! retryable so the watcher backs off instead of hammering the API.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

/// The three labels the approval flow uses.
pub const LABEL_PENDING: &str = "approval:pending";
pub const LABEL_APPROVED: &str = "approval:approved";
pub const LABEL_DENIED: &str = "approval:denied";
/// Set when the approval timed out (the pending label is removed), as the Go version did.
pub const LABEL_EXPIRED: &str = "approval:expired";

/// Why a Linear call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinearError {
    #[error("linear answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("linear GraphQL error: {0}")]
    GraphQl(String),
    #[error("linear unreachable: {0}")]
    Transport(String),
    #[error("linear answer could not be read: {0}")]
    Decode(String),
}

impl LinearError {
    /// Worth retrying later (rate limits, outages) rather than a request we got wrong.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Transport(_) => true,
            Self::GraphQl(msg) => msg.contains("RATELIMITED"),
            Self::Decode(_) => false,
        }
    }
}

/// A created issue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IssueRef {
    pub id: String,
    pub identifier: String,
    pub url: String,
}

/// A label change in an issue's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelChange {
    pub label_id: String,
    pub actor_email: Option<String>,
    pub actor_name: Option<String>,
    pub at: String,
}

/// An issue's current labels and label history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueState {
    pub id: String,
    pub identifier: String,
    pub labels: Vec<(String, String)>,
    pub added: Vec<LabelChange>,
}

impl IssueState {
    pub fn has_label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(id, _)| id.as_str())
    }

    /// Who added `label_id` most recently.
    pub fn who_added(&self, label_id: &str) -> Option<&LabelChange> {
        self.added
            .iter()
            .filter(|c| c.label_id == label_id)
            .max_by(|a, b| a.at.cmp(&b.at))
    }
}

/// The client.
#[derive(Debug, Clone)]
pub struct LinearClient {
    http: reqwest::Client,
    url: String,
    auth: String,
}

impl LinearClient {
    pub fn new(url: &str, token: &str, timeout: Duration) -> Result<Self, LinearError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| LinearError::Transport(e.to_string()))?;
        let auth = if token.starts_with("lin_api_") {
            token.to_owned()
        } else {
            format!("Bearer {token}")
        };
        Ok(Self {
            http,
            url: url.to_owned(),
            auth,
        })
    }

    async fn graphql(&self, query: &str, variables: Value) -> Result<Value, LinearError> {
        let request = self
            .http
            .post(&self.url)
            .header("authorization", &self.auth)
            .json(&json!({"query": query, "variables": variables}));
        let response = crate::telemetry::traced(request)
            .send()
            .await
            .map_err(|e| LinearError::Transport(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| LinearError::Transport(e.to_string()))?;
        if !status.is_success() {
            return Err(LinearError::Status {
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        let body: Value =
            serde_json::from_str(&text).map_err(|e| LinearError::Decode(e.to_string()))?;
        if let Some(errors) = body.get("errors").and_then(Value::as_array) {
            if !errors.is_empty() {
                let messages: Vec<String> = errors
                    .iter()
                    .map(|e| {
                        let code = e
                            .pointer("/extensions/code")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        let msg = e.get("message").and_then(Value::as_str).unwrap_or("?");
                        format!("{code} {msg}").trim().to_owned()
                    })
                    .collect();
                return Err(LinearError::GraphQl(messages.join("; ")));
            }
        }
        body.get("data")
            .cloned()
            .ok_or_else(|| LinearError::Decode("no data".into()))
    }

    /// The team's labels as (id, name).
    pub async fn team_labels(&self, team_id: &str) -> Result<Vec<(String, String)>, LinearError> {
        let data = self
            .graphql(
                "query CarapulseTeamLabels($teamId: String!) { team(id: $teamId) { labels(first: 250) { nodes { id name } } } }",
                json!({"teamId": team_id}),
            )
            .await?;
        Ok(pairs(data.pointer("/team/labels/nodes")))
    }

    /// Creates a team label and returns its id.
    pub async fn create_label(
        &self,
        team_id: &str,
        name: &str,
        color: &str,
    ) -> Result<String, LinearError> {
        let data = self
            .graphql(
                "mutation CarapulseLabelCreate($input: IssueLabelCreateInput!) { issueLabelCreate(input: $input) { success issueLabel { id name } } }",
                json!({"input": {"teamId": team_id, "name": name, "color": color}}),
            )
            .await?;
        data.pointer("/issueLabelCreate/issueLabel/id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| LinearError::Decode("issueLabelCreate returned no label".into()))
    }

    /// Creates an issue.
    pub async fn create_issue(
        &self,
        team_id: &str,
        title: &str,
        description: &str,
        label_ids: &[String],
    ) -> Result<IssueRef, LinearError> {
        let data = self
            .graphql(
                "mutation CarapulseIssueCreate($input: IssueCreateInput!) { issueCreate(input: $input) { success issue { id identifier url } } }",
                json!({"input": {"teamId": team_id, "title": title, "description": description, "labelIds": label_ids}}),
            )
            .await?;
        let issue = data
            .pointer("/issueCreate/issue")
            .cloned()
            .ok_or_else(|| LinearError::Decode("issueCreate returned no issue".into()))?;
        serde_json::from_value(issue).map_err(|e| LinearError::Decode(e.to_string()))
    }

    /// Labels and label history of up to 100 issues.
    pub async fn issues(&self, ids: &[String]) -> Result<Vec<IssueState>, LinearError> {
        let data = self
            .graphql(
                "query CarapulseIssues($ids: [ID!]) { issues(filter: { id: { in: $ids } }, first: 100) { nodes { id identifier labels { nodes { id name } } history(first: 50) { nodes { createdAt addedLabelIds actor { id name email } } } } } }",
                json!({"ids": ids}),
            )
            .await?;
        let nodes = data
            .pointer("/issues/nodes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(nodes
            .iter()
            .map(|n| {
                let s = |p: &str| {
                    n.pointer(p)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                };
                let mut added = Vec::new();
                for h in n
                    .pointer("/history/nodes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for label in h
                        .get("addedLabelIds")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        added.push(LabelChange {
                            label_id: label.to_owned(),
                            actor_email: h
                                .pointer("/actor/email")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                            actor_name: h
                                .pointer("/actor/name")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                            at: h
                                .get("createdAt")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                        });
                    }
                }
                IssueState {
                    id: s("/id"),
                    identifier: s("/identifier"),
                    labels: pairs(n.pointer("/labels/nodes")),
                    added,
                }
            })
            .collect())
    }

    /// Moves an issue from one label to another, leaving its other labels alone.
    pub async fn swap_label(
        &self,
        issue_id: &str,
        remove: &str,
        add: &str,
    ) -> Result<(), LinearError> {
        self.graphql(
            "mutation CarapulseIssueAddLabel($id: String!, $labelId: String!) { issueAddLabel(id: $id, labelId: $labelId) { success } }",
            json!({"id": issue_id, "labelId": add}),
        )
        .await?;
        self.graphql(
            "mutation CarapulseIssueRemoveLabel($id: String!, $labelId: String!) { issueRemoveLabel(id: $id, labelId: $labelId) { success } }",
            json!({"id": issue_id, "labelId": remove}),
        )
        .await
        .map(|_| ())
    }

    /// Adds a comment.
    pub async fn comment(&self, issue_id: &str, body: &str) -> Result<(), LinearError> {
        self.graphql(
            "mutation CarapulseComment($input: CommentCreateInput!) { commentCreate(input: $input) { success } }",
            json!({"input": {"issueId": issue_id, "body": body}}),
        )
        .await
        .map(|_| ())
    }
}

fn pairs(nodes: Option<&Value>) -> Vec<(String, String)> {
    nodes
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| {
            Some((
                n.get("id")?.as_str()?.to_owned(),
                n.get("name")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}
