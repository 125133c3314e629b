//! Where an operation applies: tenant, environment, cluster, namespace, account, region, ...

use serde::{Deserialize, Serialize};

use super::error::reject_control_chars;
use super::ModelError;

/// The eight-field context of a plan or request. Empty strings mean "not given".
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextRef {
    #[serde(alias = "tenant", alias = "org")]
    pub tenant_id: String,
    #[serde(alias = "env")]
    pub environment: String,
    #[serde(alias = "cluster")]
    pub cluster_id: String,
    pub namespace: String,
    #[serde(alias = "account_id")]
    pub aws_account_id: String,
    pub region: String,
    #[serde(alias = "project")]
    pub argocd_project: String,
    #[serde(alias = "grafana_org")]
    pub grafana_org_id: String,
}

/// A validated environment name, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment(String);

impl Environment {
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let v = value.trim().to_ascii_lowercase();
        let ok = !v.is_empty()
            && v.len() <= 32
            && v.starts_with(|c: char| c.is_ascii_lowercase())
            && v.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(ModelError::new(
                "context.environment",
                format!("{value:?} is not a valid environment name"),
            ));
        }
        Ok(Self(v))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `prod` and `production` both count (the reference treated `production` as non-prod).
    pub fn is_production(&self) -> bool {
        matches!(self.0.as_str(), "prod" | "production")
    }
}

impl ContextRef {
    /// Checks lengths and characters of every field, and that the environment is given.
    pub fn validate(&self) -> Result<(), ModelError> {
        for (name, value) in self.fields() {
            let field = format!("context.{name}");
            if value.len() > 128 {
                return Err(ModelError::new(field, "must be at most 128 characters"));
            }
            reject_control_chars(&field, value)?;
            if value.starts_with('-') {
                return Err(ModelError::new(field, "must not start with '-'"));
            }
        }
        Environment::parse(&self.environment)?;
        if !self.namespace.is_empty() && !is_dns1123_label(&self.namespace) {
            return Err(ModelError::new(
                "context.namespace",
                format!("{:?} is not a valid Kubernetes namespace", self.namespace),
            ));
        }
        Ok(())
    }

    pub fn environment(&self) -> Option<Environment> {
        Environment::parse(&self.environment).ok()
    }

    fn fields(&self) -> [(&'static str, &String); 8] {
        [
            ("tenant_id", &self.tenant_id),
            ("environment", &self.environment),
            ("cluster_id", &self.cluster_id),
            ("namespace", &self.namespace),
            ("aws_account_id", &self.aws_account_id),
            ("region", &self.region),
            ("argocd_project", &self.argocd_project),
            ("grafana_org_id", &self.grafana_org_id),
        ]
    }
}

/// Kubernetes DNS-1123 label: lower-case alphanumerics and '-', at most 63, alnum at both ends.
pub fn is_dns1123_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_rules() {
        assert!(Environment::parse("Prod").unwrap().is_production());
        assert!(Environment::parse("production").unwrap().is_production());
        assert!(!Environment::parse("staging").unwrap().is_production());
        assert!(Environment::parse("").is_err());
        assert!(Environment::parse("-x").is_err());
    }

    #[test]
    fn context_validation() {
        let mut ctx = ContextRef {
            environment: "dev".into(),
            namespace: "web".into(),
            ..Default::default()
        };
        ctx.validate().unwrap();
        ctx.namespace = "--all".into();
        assert_eq!(ctx.validate().unwrap_err().field, "context.namespace");
        ctx.namespace = "Web".into();
        assert_eq!(ctx.validate().unwrap_err().field, "context.namespace");
        ctx.namespace.clear();
        ctx.environment.clear();
        assert_eq!(ctx.validate().unwrap_err().field, "context.environment");
        assert!(serde_json::from_str::<ContextRef>(r#"{"bogus": 1}"#).is_err());
        let aliased: ContextRef = serde_json::from_str(r#"{"env": "dev", "tenant": "t"}"#).unwrap();
        assert_eq!(aliased.environment, "dev");
        assert_eq!(aliased.tenant_id, "t");
    }
}
