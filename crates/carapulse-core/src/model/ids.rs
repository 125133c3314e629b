//! Identifiers: time-ordered UUIDv7 ids for rows, and the validated tenant id.
//!
//! The reference used `<prefix>_<nanoseconds>` ids, which collide and are guessable; UUIDv7 keeps
//! the time ordering without either problem.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ModelError;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses an id from user input, naming the id kind in the error.
            pub fn parse(value: &str) -> Result<Self, ModelError> {
                Uuid::parse_str(value.trim())
                    .map(Self)
                    .map_err(|_| ModelError::new($what, format!("{value:?} is not a valid id")))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = ModelError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(/** A plan. */ PlanId, "plan_id");
uuid_id!(/** A step of a plan. */ StepId, "step_id");
uuid_id!(/** One run of a plan. */ ExecutionId, "execution_id");
uuid_id!(/** An approval decision. */ ApprovalId, "approval_id");
uuid_id!(/** One tool invocation. */ ToolCallId, "tool_call_id");
uuid_id!(/** One piece of evidence. */ EvidenceId, "evidence_id");
uuid_id!(/** One audit event. */ AuditEventId, "event_id");

/// The tenant every row and request belongs to: 1-63 of `[A-Za-z0-9_.-]`, starting alphanumeric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let valid = !value.is_empty()
            && value.len() <= 63
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(ModelError::new(
                "tenant_id",
                format!("{value:?} is not a valid tenant id (1-63 of [A-Za-z0-9_.-], starting alphanumeric)"),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = ModelError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids() {
        assert!(TenantId::parse("acme").is_ok());
        assert!(TenantId::parse("acme-prod_1.eu").is_ok());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("-acme").is_err());
        assert!(TenantId::parse("a b").is_err());
        assert!(TenantId::parse(&"a".repeat(64)).is_err());
        assert!(serde_json::from_str::<TenantId>("\"../x\"").is_err());
    }

    #[test]
    fn uuid_ids_parse_and_order() {
        let a = PlanId::new();
        let b = PlanId::new();
        assert!(a <= b, "v7 ids are time ordered");
        assert_eq!(PlanId::parse(&a.to_string()).unwrap(), a);
        let err = PlanId::parse("plan_123").unwrap_err();
        assert_eq!(err.field, "plan_id");
    }
}
