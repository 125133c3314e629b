//! Audit event types and the hash that chains them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::canonical::{sha256_hex, write_canonical, write_json_str};
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
        let mut material = Vec::with_capacity(512);
        self.write_hash_material(&mut material);
        sha256_hex(&material)
    }

    /// `prev_hash`, a newline, then the canonical JSON of the hashed fields, written field by
    /// field in canonical (sorted) key order instead of building a JSON value first: verifying a
    /// chain hashes every event, and this is most of its time. `hash_material_matches_the_value_form`
    /// pins it to the canonical form of the same object.
    fn write_hash_material(&self, out: &mut Vec<u8>) {
        fn key(out: &mut Vec<u8>, name: &str, first: bool) {
            if !first {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
        }
        fn opt(out: &mut Vec<u8>, value: Option<&str>) {
            match value {
                Some(v) => write_json_str(v, out),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(self.prev_hash.as_bytes());
        out.push(b'\n');
        out.push(b'{');
        key(out, "action", true);
        write_json_str(&self.action, out);
        key(out, "actor", false);
        write_canonical(&self.actor, out);
        key(out, "context", false);
        write_canonical(&self.context, out);
        key(out, "decision", false);
        write_json_str(&self.decision, out);
        key(out, "event_id", false);
        write_json_str(&self.event_id.to_string(), out);
        key(out, "occurred_at", false);
        write_json_str(
            &self
                .occurred_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            out,
        );
        key(out, "reason", false);
        opt(out, self.reason.as_deref());
        key(out, "request_id", false);
        opt(out, self.request_id.as_deref());
        key(out, "resource_id", false);
        opt(out, self.resource_id.as_deref());
        key(out, "resource_type", false);
        opt(out, self.resource_type.as_deref());
        key(out, "seq", false);
        out.extend_from_slice(self.seq.to_string().as_bytes());
        key(out, "tenant_id", false);
        write_json_str(&self.tenant_id, out);
        out.push(b'}');
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

    /// The hash as it was computed before `write_hash_material`: the canonical form of a JSON
    /// value holding the fields. Chains stored by earlier versions must keep verifying.
    fn value_form_hash(e: &AuditEvent) -> String {
        let body = json!({
            "event_id": e.event_id,
            "tenant_id": e.tenant_id,
            "seq": e.seq,
            "occurred_at": e.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "actor": e.actor,
            "action": e.action,
            "decision": e.decision,
            "resource_type": e.resource_type,
            "resource_id": e.resource_id,
            "reason": e.reason,
            "request_id": e.request_id,
            "context": e.context,
        });
        sha256_hex(
            format!(
                "{}\n{}",
                e.prev_hash,
                crate::canonical::canonical_json(&body)
            )
            .as_bytes(),
        )
    }

    #[test]
    fn hash_material_matches_the_value_form() {
        let now = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        let plain = AuditEvent::chain(entry("plan.create"), 1, GENESIS_HASH, now);
        let full = AuditEvent::chain(
            AuditEntry::new(
                TenantId::parse("tenant-ü").unwrap_or_else(|_| TenantId::parse("t2").unwrap()),
                AuditActor::person("o'neil \"quoted\"\n\u{1F600}", Some("a@b.c".into())),
                "approval.create",
                AuditDecision::RequireApproval,
            )
            .resource("plan", "p-1\t2")
            .reason("because: \\ back\u{0007}slash")
            .request_id(Some("req-9".into()))
            .context(json!({"z": [1, 2.5, null, {"b": true, "a": "é"}], "a": {"y": 1, "x": -3}})),
            42,
            &plain.hash,
            now,
        );
        for event in [&plain, &full] {
            assert_eq!(event.compute_hash(), value_form_hash(event));
            assert_eq!(event.hash, value_form_hash(event));
        }
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
