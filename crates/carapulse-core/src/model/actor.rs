//! Who is acting: the verified identity taken from a token, never from a header.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::reject_control_chars;
use super::{ModelError, TenantId};

/// The subject of a verified token (`sub`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActorId(String);

impl ActorId {
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let value = value.trim();
        if value.is_empty() || value.len() > 256 {
            return Err(ModelError::new("sub", "must be 1-256 characters"));
        }
        reject_control_chars("sub", value)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form identities are compared in: trimmed and lower-cased (Unicode), so `Alice`,
    /// `alice` and `ALICE ` are one person for separation of duties.
    pub fn normalised(&self) -> String {
        self.0.trim().to_lowercase()
    }

    /// Whether two ids name the same person (see [`ActorId::normalised`]).
    pub fn same_person(&self, other: &ActorId) -> bool {
        self.normalised() == other.normalised()
    }
}

impl TryFrom<String> for ActorId {
    type Error = ModelError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ActorId> for String {
    fn from(value: ActorId) -> Self {
        value.0
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role name from the token's groups claim.
pub type Role = String;

/// An authenticated caller: identity, roles and the tenant its token is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: ActorId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub roles: Vec<Role>,
    pub tenant_id: TenantId,
}

impl Actor {
    pub fn has_any_role(&self, wanted: &[String]) -> bool {
        self.roles.iter().any(|r| wanted.iter().any(|w| w == r))
    }
}

#[cfg(test)]
mod same_person_tests {
    use super::*;

    #[test]
    fn ids_compare_case_insensitively() {
        let a = ActorId::parse("Alice@Example.com").unwrap();
        assert!(a.same_person(&ActorId::parse("alice@example.COM").unwrap()));
        assert!(ActorId::parse("ÉVA")
            .unwrap()
            .same_person(&ActorId::parse("éva").unwrap()));
        assert!(!a.same_person(&ActorId::parse("alice2@example.com").unwrap()));
    }
}
