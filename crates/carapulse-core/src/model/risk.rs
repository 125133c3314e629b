//! Risk tiers, blast radius and policy decisions.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ModelError;

/// How dangerous an operation is; ordered so the higher of two risks wins.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Read,
    Low,
    Medium,
    High,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    pub fn parse(value: &str) -> Result<Self, ModelError> {
        match value {
            "read" => Ok(Self::Read),
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            other => Err(ModelError::new(
                "risk_level",
                format!("{other:?} is not one of read, low, medium, high"),
            )),
        }
    }

    /// One level up (high stays high).
    pub fn raise(self) -> Self {
        match self {
            Self::Read => Self::Low,
            Self::Low => Self::Medium,
            Self::Medium | Self::High => Self::High,
        }
    }

    /// The policy tier: reads, safe writes, or break-glass.
    pub fn tier(self) -> Tier {
        match self {
            Self::Read => Tier::Read,
            Self::Low | Self::Medium => Tier::Safe,
            Self::High => Tier::BreakGlass,
        }
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a change can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlastRadius {
    Namespace,
    Cluster,
    Account,
}

impl BlastRadius {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Namespace => "namespace",
            Self::Cluster => "cluster",
            Self::Account => "account",
        }
    }
}

/// Policy tier derived from the risk level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Read,
    Safe,
    BreakGlass,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Safe => "safe",
            Self::BreakGlass => "break_glass",
        }
    }
}

/// What policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
    RequireApproval,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::RequireApproval => "require_approval",
        }
    }

    pub fn parse(value: &str) -> Result<Self, ModelError> {
        match value {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            "require_approval" => Ok(Self::RequireApproval),
            other => Err(ModelError::new(
                "decision",
                format!("{other:?} is not one of allow, deny, require_approval"),
            )),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_order_and_tiers() {
        assert!(RiskLevel::Read < RiskLevel::Low && RiskLevel::Medium < RiskLevel::High);
        assert_eq!(RiskLevel::Low.raise(), RiskLevel::Medium);
        assert_eq!(RiskLevel::High.raise(), RiskLevel::High);
        assert_eq!(RiskLevel::High.tier(), Tier::BreakGlass);
        assert_eq!(RiskLevel::Medium.tier(), Tier::Safe);
        assert!(RiskLevel::parse("critical").is_err());
        assert!(serde_json::from_str::<RiskLevel>("\"extreme\"").is_err());
        assert_eq!(
            Decision::parse("require_approval").unwrap(),
            Decision::RequireApproval
        );
    }
}
