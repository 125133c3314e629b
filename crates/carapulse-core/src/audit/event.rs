//! Audit event types and the hash that chains them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::canonical::{canonical_json, sha256_hex};
use crate::model::{Actor, AuditEventId, TenantId};

/// `prev_hash` of a tenant's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What the audit records about a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    Allow,
    Deny,
    RequireApproval,
    Info,
    Error,
}

impl AuditDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::RequireApproval => "require_approval",
            Self::Info => "info",
            Self::Error => "error",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        serde_json::from_value(Value::String(value.to_owned())).ok()
    }
}

/// Who acted, as stored in the audit log (stable lower-case keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditActor {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// The service that acted on this person's behalf (the Slack agent), when one did. Absent
    /// from events without delegation, so their hashes are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl AuditActor {
    /// A person identified outside a token (a Linear user, a Slack user).
    pub fn person(id: impl Into<String>, email: Option<String>) -> Self {
        Self {
            id: id.into(),
            email,
            roles: Vec::new(),
            via: None,
        }
    }

    /// The system itself (background loops, expiry).
    pub fn system() -> Self {
        Self {
            id: "system".into(),
            email: None,
            roles: Vec::new(),
            via: None,
        }
    }

    /// A caller whose token could not be verified.
    pub fn anonymous() -> Self {
        Self {
            id: "anonymous".into(),
            email: None,
            roles: Vec::new(),
            via: None,
        }
    }
}

impl From<&Actor> for AuditActor {
    fn from(actor: &Actor) -> Self {
        Self {
            id: actor.id.to_string(),
            email: actor.email.clone(),
            roles: actor.roles.clone(),
            via: None,
        }
    }
}

/// An event to append (ids, sequence and hashes are assigned on append).
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub tenant_id: TenantId,
    pub actor: AuditActor,
    pub action: String,
    pub decision: AuditDecision,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub context: Value,
}

/// Replaces NUL — the one character Postgres cannot store in `text` or `jsonb` — with U+FFFD,
/// so no content can make an audit append fail. The edge refuses such input already; this keeps
/// internal callers (tool output, webhook fields) from ever costing an audit event.
fn storable(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{fffd}");
    }
}

fn storable_value(value: &mut Value) {
    match value {
        Value::String(s) => storable(s),
        Value::Array(items) => items.iter_mut().for_each(storable_value),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (mut k, mut v) in old {
                    storable(&mut k);
                    storable_value(&mut v);
                    map.insert(k, v);
                }
            } else {
                map.values_mut().for_each(storable_value);
            }
        }
        _ => {}
    }
}

impl AuditEntry {
    /// The entry with every string made storable (see [`storable`]); applied before hashing,
    /// so the chain covers exactly what is stored.
    pub fn into_storable(mut self) -> Self {
        storable(&mut self.actor.id);
        if let Some(e) = &mut self.actor.email {
            storable(e);
        }
        self.actor.roles.iter_mut().for_each(storable);
        if let Some(v) = &mut self.actor.via {
            storable(v);
        }
        storable(&mut self.action);
        for field in [
            &mut self.resource_type,
            &mut self.resource_id,
            &mut self.reason,
            &mut self.request_id,
        ]
        .into_iter()
        .flatten()
        {
            storable(field);
        }
        storable_value(&mut self.context);
        self
    }

    pub fn new(
        tenant_id: TenantId,
        actor: AuditActor,
        action: &str,
        decision: AuditDecision,
    ) -> Self {
        Self {
            tenant_id,
            actor,
            action: action.to_owned(),
            decision,
            resource_type: None,
            resource_id: None,
            reason: None,
            request_id: None,
            context: json!({}),
        }
    }

    pub fn resource(mut self, kind: &str, id: impl ToString) -> Self {
        self.resource_type = Some(kind.to_owned());
        self.resource_id = Some(id.to_string());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn request_id(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }

    pub fn context(mut self, context: Value) -> Self {
        self.context = context;
        self
    }
}

/// A stored, chained audit event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub event_id: AuditEventId,
    pub tenant_id: String,
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: Value,
    pub action: String,
    pub decision: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub context: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEvent {
    /// Builds the next event of a chain from an entry; `occurred_at` is cut to microseconds, the
    /// precision Postgres stores, so the hash can be recomputed from the row.
    pub fn chain(entry: AuditEntry, seq: i64, prev_hash: &str, now: DateTime<Utc>) -> Self {
        let occurred_at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let mut event = Self {
            event_id: AuditEventId::new(),
            tenant_id: entry.tenant_id.to_string(),
            seq,
            occurred_at,
            actor: serde_json::to_value(&entry.actor).unwrap_or(Value::Null),
            action: entry.action,
            decision: entry.decision.as_str().to_owned(),
            resource_type: entry.resource_type,
            resource_id: entry.resource_id,
            reason: entry.reason,
            request_id: entry.request_id,
            context: entry.context,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        event
    }

    /// The hash this event should carry given its content and `prev_hash`.
    pub fn compute_hash(&self) -> String {
        let body = json!({
            "event_id": self.event_id,
            "tenant_id": self.tenant_id,
            "seq": self.seq,
            "occurred_at": self.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "actor": self.actor,
            "action": self.action,
            "decision": self.decision,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "reason": self.reason,
            "request_id": self.request_id,
            "context": self.context,
        });
        let mut material = String::with_capacity(512);
        material.push_str(&self.prev_hash);
        material.push('\n');
        material.push_str(&canonical_json(&body));
        sha256_hex(material.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry::new(
            TenantId::parse("t1").unwrap(),
            AuditActor::system(),
            action,
            AuditDecision::Info,
        )
    }

    #[test]
    fn chain_links_and_detects_edits() {
        let now = Utc::now();
        let a = AuditEvent::chain(entry("a"), 1, GENESIS_HASH, now);
        let b = AuditEvent::chain(entry("b"), 2, &a.hash, now);
        assert_eq!(a.hash, a.compute_hash());
        assert_eq!(b.prev_hash, a.hash);
        let mut edited = b.clone();
        edited.action = "c".into();
        assert_ne!(edited.compute_hash(), b.hash);
        let mut relinked = b.clone();
        relinked.prev_hash = GENESIS_HASH.into();
        assert_ne!(relinked.compute_hash(), b.hash);
    }

    #[test]
    fn timestamps_are_microsecond_precise() {
        let now = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let a = AuditEvent::chain(entry("a"), 1, GENESIS_HASH, now);
        assert_eq!(a.occurred_at.timestamp_subsec_nanos(), 123_456_000);
    }
}
