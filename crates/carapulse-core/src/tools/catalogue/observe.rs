//! prometheus, thanos, alertmanager, grafana and tempo (HTTP APIs only).

use serde_json::json;

use crate::model::{RiskLevel, ToolName};
use crate::tools::spec::seg;
use crate::tools::{
    ActionClass, ActionSpec, ApiRequest, FieldKind as K, FieldSpec as F, HttpMethod, ListOf,
    ToolInput,
};

const R: ActionClass = ActionClass::Read;
const W_LOW: ActionClass = ActionClass::Write(RiskLevel::Low);

const QUERY: F = F::req("query", K::Text { max: 10_000 }, "PromQL expression");
const START: F = F::req("start", K::Timestamp, "range start");
const END: F = F::req("end", K::Timestamp, "range end");

fn instant(i: &ToolInput) -> ApiRequest {
    ApiRequest::get("/api/v1/query")
        .query_opt("query", i.str("query"))
        .query_opt("time", i.str("time"))
}

fn range(i: &ToolInput) -> ApiRequest {
    ApiRequest::get("/api/v1/query_range")
        .query_opt("query", i.str("query"))
        .query_opt("start", i.str("start"))
        .query_opt("end", i.str("end"))
        .query_opt("step", i.str("step"))
}

fn exemplars(i: &ToolInput) -> ApiRequest {
    ApiRequest::get("/api/v1/query_exemplars")
        .query_opt("query", i.str("query"))
        .query_opt("start", i.str("start"))
        .query_opt("end", i.str("end"))
}

fn thanos_opts(mut r: ApiRequest, i: &ToolInput) -> ApiRequest {
    if let Some(d) = i.bool("dedup") {
        r = r.query("dedup", d.to_string());
    }
    r.query_opt("max_source_resolution", i.str("max_source_resolution"))
}

fn metrics_actions(tool: ToolName) -> Vec<ActionSpec> {
    let thanos = tool == ToolName::Thanos;
    let mut out = vec![
        ActionSpec {
            tool,
            action: "query",
            description: "Instant query",
            class: R,
            break_glass: false,
            fields: if thanos {
                const {
                    &[
                        QUERY,
                        F::opt("time", K::Timestamp, "evaluation time"),
                        F::opt("dedup", K::Bool, "deduplicate"),
                        F::opt(
                            "max_source_resolution",
                            K::Enum(&["0s", "5m", "1h", "auto"]),
                            "downsampling",
                        ),
                    ]
                }
            } else {
                const { &[QUERY, F::opt("time", K::Timestamp, "evaluation time")] }
            },
            cli: None,
            api: Some(if thanos {
                |i: &ToolInput| thanos_opts(instant(i), i)
            } else {
                instant
            }),
        },
        ActionSpec {
            tool,
            action: "query_range",
            description: "Range query",
            class: R,
            break_glass: false,
            fields: if thanos {
                const {
                    &[
                        QUERY,
                        START,
                        END,
                        F::req("step", K::Duration, "resolution"),
                        F::opt("dedup", K::Bool, "deduplicate"),
                        F::opt(
                            "max_source_resolution",
                            K::Enum(&["0s", "5m", "1h", "auto"]),
                            "downsampling",
                        ),
                    ]
                }
            } else {
                const { &[QUERY, START, END, F::req("step", K::Duration, "resolution")] }
            },
            cli: None,
            api: Some(if thanos {
                |i: &ToolInput| thanos_opts(range(i), i)
            } else {
                range
            }),
        },
        ActionSpec {
            tool,
            action: "rules",
            description: "Alerting and recording rules",
            class: R,
            break_glass: false,
            fields: &[],
            cli: None,
            api: Some(|_| ApiRequest::get("/api/v1/rules")),
        },
    ];
    out.push(ActionSpec {
        tool,
        action: "exemplars",
        description: "Exemplars (trace ids) for a query",
        class: R,
        break_glass: false,
        fields: const { &[QUERY, START, END] },
        cli: None,
        api: Some(exemplars),
    });
    out
}

pub(super) fn actions() -> Vec<ActionSpec> {
    let mut all = metrics_actions(ToolName::Prometheus);
    all.extend(metrics_actions(ToolName::Thanos));
    all.extend(vec![
        ActionSpec {
            tool: ToolName::Alertmanager,
            action: "alerts",
            description: "Current alerts",
            class: R,
            break_glass: false,
            fields: const { &[F::opt("filter", K::List(ListOf::Texts), "matchers like alertname=\"X\""), F::opt("active", K::Bool, "only active")] },
            cli: None,
            api: Some(|i| {
                let mut r = ApiRequest::get("/api/v2/alerts");
                for f in i.strings("filter") {
                    r = r.query("filter", f);
                }
                if let Some(a) = i.bool("active") {
                    r = r.query("active", a.to_string());
                }
                r
            }),
        },
        ActionSpec {
            tool: ToolName::Alertmanager,
            action: "silences",
            description: "Silences",
            class: R,
            break_glass: false,
            fields: &[],
            cli: None,
            api: Some(|_| ApiRequest::get("/api/v2/silences")),
        },
        ActionSpec {
            tool: ToolName::Alertmanager,
            action: "silence-create",
            description: "Create a silence",
            class: W_LOW,
            break_glass: false,
            fields: const { &[
                F::req("matchers", K::List(ListOf::Objects), "[{name, value, isRegex, isEqual}]"),
                F::req("starts_at", K::Timestamp, "start"),
                F::req("ends_at", K::Timestamp, "end"),
                F::req("comment", K::Text { max: 1000 }, "why"),
                F::req("created_by", K::Name, "who"),
            ] },
            cli: None,
            api: Some(|i| {
                ApiRequest::post(
                    "/api/v2/silences",
                    json!({"matchers": i.value("matchers"), "startsAt": i.str("starts_at"), "endsAt": i.str("ends_at"), "comment": i.str("comment"), "createdBy": i.str("created_by")}),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Alertmanager,
            action: "silence-expire",
            description: "Expire a silence",
            class: W_LOW,
            break_glass: false,
            fields: const { &[F::req("silence_id", K::Uuid, "silence id")] },
            cli: None,
            api: Some(|i| ApiRequest::get(format!("/api/v2/silence/{}", seg(i.str("silence_id").unwrap_or_default()))).with_method(HttpMethod::Delete)),
        },
        ActionSpec {
            tool: ToolName::Grafana,
            action: "annotation-create",
            description: "Annotate dashboards",
            class: W_LOW,
            break_glass: false,
            fields: const { &[
                F::req("text", K::Text { max: 2000 }, "annotation text"),
                F::opt("tags", K::List(ListOf::Names), "tags"),
                F::opt("dashboard_uid", K::Name, "dashboard"),
                F::opt("time", K::Int { min: 0, max: i64::MAX }, "epoch ms"),
            ] },
            cli: None,
            api: Some(|i| {
                ApiRequest::post(
                    "/api/annotations",
                    json!({"text": i.str("text"), "tags": i.strings("tags"), "dashboardUID": i.str("dashboard_uid"), "time": i.int("time")}),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Grafana,
            action: "annotations",
            description: "Find annotations",
            class: R,
            break_glass: false,
            fields: const { &[F::opt("dashboard_uid", K::Name, "dashboard"), F::opt("from", K::Int { min: 0, max: i64::MAX }, "epoch ms"), F::opt("to", K::Int { min: 0, max: i64::MAX }, "epoch ms"), F::opt("tags", K::List(ListOf::Names), "tags")] },
            cli: None,
            api: Some(|i| {
                let mut r = ApiRequest::get("/api/annotations")
                    .query_opt("dashboardUID", i.str("dashboard_uid"))
                    .query_opt("from", i.int("from").map(|v| v.to_string()))
                    .query_opt("to", i.int("to").map(|v| v.to_string()));
                for t in i.strings("tags") {
                    r = r.query("tags", t);
                }
                r
            }),
        },
        ActionSpec {
            tool: ToolName::Grafana,
            action: "dashboard-get",
            description: "A dashboard by uid",
            class: R,
            break_glass: false,
            fields: const { &[F::req("uid", K::Name, "dashboard uid")] },
            cli: None,
            api: Some(|i| ApiRequest::get(format!("/api/dashboards/uid/{}", seg(i.str("uid").unwrap_or_default())))),
        },
        ActionSpec {
            tool: ToolName::Grafana,
            action: "dashboards",
            description: "Search dashboards",
            class: R,
            break_glass: false,
            fields: const { &[F::opt("query", K::Text { max: 200 }, "title search"), F::opt("folder_ids", K::List(ListOf::Ids), "only these folders")] },
            cli: None,
            api: Some(|i| {
                let mut req = ApiRequest::get("/api/search").query("type", "dash-db").query_opt("query", i.str("query"));
                for id in i.value("folder_ids").and_then(|v| v.as_array()).into_iter().flatten().filter_map(|v| v.as_u64()) {
                    req = req.query("folderIds", id.to_string());
                }
                req
            }),
        },
        ActionSpec {
            tool: ToolName::Grafana,
            action: "datasources",
            description: "List data sources",
            class: R,
            break_glass: false,
            fields: &[],
            cli: None,
            api: Some(|_| ApiRequest::get("/api/datasources")),
        },
        ActionSpec {
            tool: ToolName::Tempo,
            action: "trace",
            description: "A trace by id",
            class: R,
            break_glass: false,
            fields: const { &[F::req("trace_id", K::TraceId, "trace id")] },
            cli: None,
            api: Some(|i| ApiRequest::get(format!("/api/traces/{}", seg(i.str("trace_id").unwrap_or_default())))),
        },
        ActionSpec {
            tool: ToolName::Tempo,
            action: "search",
            description: "TraceQL search",
            class: R,
            break_glass: false,
            fields: const { &[
                F::req("q", K::Text { max: 5000 }, "TraceQL"),
                F::opt("start", K::Int { min: 0, max: i64::MAX }, "unix seconds"),
                F::opt("end", K::Int { min: 0, max: i64::MAX }, "unix seconds"),
                F::opt("limit", K::Int { min: 1, max: 1000 }, "max traces"),
            ] },
            cli: None,
            api: Some(|i| {
                ApiRequest::get("/api/search")
                    .query_opt("q", i.str("q"))
                    .query_opt("start", i.int("start").map(|v| v.to_string()))
                    .query_opt("end", i.int("end").map(|v| v.to_string()))
                    .query_opt("limit", i.int("limit").map(|v| v.to_string()))
            }),
        },
    ]);
    all
}
