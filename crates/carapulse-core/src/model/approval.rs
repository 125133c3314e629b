//! Approval decisions on plans.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ActorId, ApprovalId, ModelError, PlanId, TenantId};

/// A decision recorded by an approver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Approved,
    Denied,
    Expired,
    /// A later revision of the plan replaced the one this approved or denied.
    Superseded,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Superseded => "superseded",
        }
    }

    pub fn parse(value: &str) -> Result<Self, ModelError> {
        serde_json::from_value(Value::String(value.to_owned())).map_err(|_| {
            ModelError::new(
                "status",
                format!("{value:?} is not one of approved, denied, expired, superseded"),
            )
        })
    }
}

/// Where an approval came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalSource {
    #[default]
    Api,
    Ui,
    Cli,
    Slack,
    Linear,
    Auto,
    System,
}

impl ApprovalSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Ui => "ui",
            Self::Cli => "cli",
            Self::Slack => "slack",
            Self::Linear => "linear",
            Self::Auto => "auto",
            Self::System => "system",
        }
    }

    pub fn parse(value: &str) -> Result<Self, ModelError> {
        serde_json::from_value(Value::String(value.to_owned())).map_err(|_| {
            ModelError::new(
                "source",
                format!("{value:?} is not one of api, ui, cli, slack, linear"),
            )
        })
    }
}

/// A stored approval decision, with the hash of the plan it approved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub approval_id: ApprovalId,
    pub plan_id: PlanId,
    pub tenant_id: TenantId,
    pub status: ApprovalStatus,
    pub approver: ActorId,
    pub approver_email: Option<String>,
    pub source: ApprovalSource,
    pub note: Option<String>,
    pub approved_hash: Option<String>,
    /// The plan revision decided on.
    pub revision: i32,
    pub created_at: DateTime<Utc>,
}
