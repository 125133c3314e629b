//! aws, vault and boundary.

use serde_json::json;

use crate::model::{RiskLevel, ToolName};
use crate::tools::spec::seg;
use crate::tools::{
    ActionClass, ActionSpec, ApiRequest, FieldKind as K, FieldSpec as F, HttpMethod, ListOf,
    ToolInput,
};

use super::{argv, flag_eq};

const R: ActionClass = ActionClass::Read;
const W_LOW: ActionClass = ActionClass::Write(RiskLevel::Low);
const W_MED: ActionClass = ActionClass::Write(RiskLevel::Medium);
const W_HIGH: ActionClass = ActionClass::Write(RiskLevel::High);

const REGION: F = F::opt("region", K::Region, "AWS region");

fn aws_tail(a: &mut Vec<String>, i: &ToolInput) {
    flag_eq(a, "--region", i.str("region"));
    a.push("--output=json".into());
}

/// `Key=k,Values=v1,v2` for each `{key, values}` object; values must be names.
fn tag_filters(i: &ToolInput) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(items) = i.value("tag_filters").and_then(|v| v.as_array()) {
        for item in items {
            let key = item.get("key").and_then(|v| v.as_str()).unwrap_or_default();
            let values: Vec<&str> = item
                .get("values")
                .and_then(|v| v.as_array())
                .map(|vs| vs.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let safe = |s: &str| {
                !s.is_empty() && !s.starts_with('-') && !s.contains(',') && !s.contains('=')
            };
            if safe(key) && !values.is_empty() && values.iter().all(|v| safe(v)) {
                out.push(format!("Key={key},Values={}", values.join(",")));
            }
        }
    }
    out
}

pub(super) fn actions() -> Vec<ActionSpec> {
    vec![
        ActionSpec {
            tool: ToolName::Aws,
            action: "assume-role",
            description: "Get temporary credentials for a role",
            class: W_MED,
            break_glass: false,
            fields: const {
                &[
                    F::req("role_arn", K::Arn, "role to assume"),
                    F::opt("session_name", K::Name, "session name (default carapulse)"),
                    F::opt(
                        "duration_seconds",
                        K::Int {
                            min: 900,
                            max: 43_200,
                        },
                        "credential lifetime",
                    ),
                    REGION,
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["aws", "sts", "assume-role"]);
                flag_eq(&mut a, "--role-arn", i.str("role_arn"));
                flag_eq(
                    &mut a,
                    "--role-session-name",
                    Some(i.str("session_name").unwrap_or("carapulse")),
                );
                flag_eq(&mut a, "--duration-seconds", i.int("duration_seconds"));
                aws_tail(&mut a, i);
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Aws,
            action: "tagging-get-resources",
            description: "Resources matching tag filters",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    F::opt("tag_filters", K::List(ListOf::Objects), "[{key, values[]}]"),
                    REGION,
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["aws", "resourcegroupstaggingapi", "get-resources"]);
                for f in tag_filters(i) {
                    a.push(format!("--tag-filters={f}"));
                }
                aws_tail(&mut a, i);
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Aws,
            action: "cloudtrail-lookup-events",
            description: "CloudTrail events",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    F::opt(
                        "lookup_key",
                        K::Enum(&[
                            "EventId",
                            "EventName",
                            "ReadOnly",
                            "Username",
                            "ResourceType",
                            "ResourceName",
                            "EventSource",
                            "AccessKeyId",
                        ]),
                        "attribute",
                    ),
                    F::opt("lookup_value", K::Name, "attribute value"),
                    F::opt("start_time", K::Timestamp, "from"),
                    F::opt("end_time", K::Timestamp, "to"),
                    F::opt("max_results", K::Int { min: 1, max: 50 }, "page size"),
                    REGION,
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["aws", "cloudtrail", "lookup-events"]);
                if let (Some(k), Some(v)) = (i.str("lookup_key"), i.str("lookup_value")) {
                    a.push(format!(
                        "--lookup-attributes=AttributeKey={k},AttributeValue={v}"
                    ));
                }
                flag_eq(&mut a, "--start-time", i.str("start_time"));
                flag_eq(&mut a, "--end-time", i.str("end_time"));
                flag_eq(&mut a, "--max-results", i.int("max_results"));
                aws_tail(&mut a, i);
                a
            }),
            api: Some(|i| ApiRequest::post("/cloudtrail/lookup", i.as_value())),
        },
        ActionSpec {
            tool: ToolName::Aws,
            action: "cloudwatch-get-metric-data",
            description: "CloudWatch metric data",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    F::req(
                        "metric_data_queries",
                        K::List(ListOf::Objects),
                        "MetricDataQueries",
                    ),
                    F::req("start_time", K::Timestamp, "from"),
                    F::req("end_time", K::Timestamp, "to"),
                    REGION,
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["aws", "cloudwatch", "get-metric-data"]);
                let queries = i
                    .value("metric_data_queries")
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "[]".into());
                a.push(format!("--metric-data-queries={queries}"));
                flag_eq(&mut a, "--start-time", i.str("start_time"));
                flag_eq(&mut a, "--end-time", i.str("end_time"));
                aws_tail(&mut a, i);
                a
            }),
            api: Some(|i| ApiRequest::post("/cloudwatch/metric-data", i.as_value())),
        },
        ActionSpec {
            tool: ToolName::Vault,
            action: "health",
            description: "Vault status",
            class: R,
            break_glass: false,
            fields: &[],
            cli: Some(|_| argv(&["vault", "status", "-format=json"])),
            api: Some(|_| ApiRequest::get("/v1/sys/health")),
        },
        ActionSpec {
            tool: ToolName::Vault,
            action: "read",
            description: "Read a path (values are redacted in output)",
            class: R,
            break_glass: false,
            fields: const { &[F::req("path", K::VaultPath, "secret path")] },
            cli: Some(|i| {
                argv(&[
                    "vault",
                    "read",
                    "-format=json",
                    i.str("path").unwrap_or_default(),
                ])
            }),
            api: Some(|i| ApiRequest::get(format!("/v1/{}", i.str("path").unwrap_or_default()))),
        },
        ActionSpec {
            tool: ToolName::Vault,
            action: "rotate",
            description: "Rotate a secret (e.g. database/rotate-role/app)",
            class: W_MED,
            break_glass: false,
            fields: const { &[F::req("path", K::VaultPath, "rotation endpoint path")] },
            cli: Some(|i| {
                argv(&[
                    "vault",
                    "write",
                    "-format=json",
                    "-force",
                    i.str("path").unwrap_or_default(),
                ])
            }),
            api: Some(|i| {
                ApiRequest::post(
                    format!("/v1/{}", i.str("path").unwrap_or_default()),
                    json!({}),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Vault,
            action: "token-renew",
            description: "Renew the router's own token",
            class: W_LOW,
            break_glass: false,
            fields: &[],
            cli: Some(|_| argv(&["vault", "token", "renew", "-format=json"])),
            api: Some(|_| ApiRequest::post("/v1/auth/token/renew-self", json!({}))),
        },
        ActionSpec {
            tool: ToolName::Vault,
            action: "lease-renew",
            description: "Renew a lease",
            class: W_LOW,
            break_glass: false,
            fields: const { &[F::req("lease_id", K::VaultPath, "lease id")] },
            cli: Some(|i| {
                argv(&[
                    "vault",
                    "lease",
                    "renew",
                    "-format=json",
                    i.str("lease_id").unwrap_or_default(),
                ])
            }),
            api: Some(|i| {
                ApiRequest::post(
                    "/v1/sys/leases/renew",
                    json!({"lease_id": i.str("lease_id")}),
                )
                .with_method(HttpMethod::Put)
            }),
        },
        ActionSpec {
            tool: ToolName::Vault,
            action: "lease-revoke",
            description: "Revoke a lease (break-glass only)",
            class: W_HIGH,
            break_glass: true,
            fields: const { &[F::req("lease_id", K::VaultPath, "lease id")] },
            cli: Some(|i| {
                argv(&[
                    "vault",
                    "lease",
                    "revoke",
                    i.str("lease_id").unwrap_or_default(),
                ])
            }),
            api: Some(|i| {
                ApiRequest::post(
                    "/v1/sys/leases/revoke",
                    json!({"lease_id": i.str("lease_id")}),
                )
                .with_method(HttpMethod::Put)
            }),
        },
        ActionSpec {
            tool: ToolName::Boundary,
            action: "targets-list",
            description: "List targets of a scope",
            class: R,
            break_glass: false,
            fields: const { &[F::req("scope_id", K::Name, "scope id")] },
            cli: Some(|i| {
                let mut a = argv(&["boundary", "targets", "list", "-format=json"]);
                a.push(format!(
                    "-scope-id={}",
                    i.str("scope_id").unwrap_or_default()
                ));
                a
            }),
            api: Some(|i| ApiRequest::get("/v1/targets").query_opt("scope_id", i.str("scope_id"))),
        },
        ActionSpec {
            tool: ToolName::Boundary,
            action: "authorize-session",
            description: "Authorize a session to a target",
            class: W_MED,
            break_glass: false,
            fields: const { &[F::req("target_id", K::Name, "target id")] },
            cli: Some(|i| {
                let mut a = argv(&["boundary", "targets", "authorize-session", "-format=json"]);
                a.push(format!("-id={}", i.str("target_id").unwrap_or_default()));
                a
            }),
            api: Some(|i| {
                ApiRequest::post(
                    format!(
                        "/v1/targets/{}:authorize-session",
                        seg(i.str("target_id").unwrap_or_default())
                    ),
                    json!({}),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Boundary,
            action: "session-cancel",
            description: "Cancel a session",
            class: W_LOW,
            break_glass: false,
            fields: const { &[F::req("session_id", K::Name, "session id")] },
            cli: Some(|i| {
                let mut a = argv(&["boundary", "sessions", "cancel", "-format=json"]);
                a.push(format!("-id={}", i.str("session_id").unwrap_or_default()));
                a
            }),
            api: Some(|i| {
                ApiRequest::post(
                    format!(
                        "/v1/sessions/{}:cancel",
                        seg(i.str("session_id").unwrap_or_default())
                    ),
                    json!({}),
                )
            }),
        },
    ]
}
