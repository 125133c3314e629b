//! The typed sections of the shared JSON configuration file.
//!
//! Every struct rejects unknown fields and has a default for every optional key, so a config file
//! holds only what differs from the defaults and a misspelt key is an error instead of silence.
//! Field names follow the reference implementation's JSON so existing files keep working.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `gateway`: the REST/SSE/WS API process, its authentication and its limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Main API listener (REST + SSE + WebSocket + /metrics).
    pub http_addr: String,
    /// The reference's name for the UI listener; used when `ws_addr` is null.
    pub canvas_addr: Option<String>,
    /// Web UI listener: the embedded UI plus the same API (so pages call their own origin).
    /// Default `:8082`; `null` turns the UI off.
    pub ws_addr: Option<String>,
    pub oidc_issuer: Option<String>,
    /// Expected `aud` claim.
    pub oidc_client_id: Option<String>,
    pub oidc_jwks_url: Option<String>,
    /// Extra origins the web UI may call besides its own and the OIDC issuer's (a provider
    /// whose token endpoint lives elsewhere); only http(s) origins are used.
    pub ui_connect_origins: Vec<String>,
    pub jwks_cache_ttl_secs: u64,
    /// Enables HS256 tokens signed with `dev_jwt_secret`. Signatures are still checked.
    pub dev_mode: bool,
    /// Shared HS256 secret for dev mode (env `CARAPULSE_DEV_JWT_SECRET`).
    pub dev_jwt_secret: Option<String>,
    /// Issuer written into and expected from dev tokens.
    pub dev_issuer: String,
    /// Claim that carries the tenant of the caller.
    pub tenant_claim: String,
    /// Claim that carries the caller's roles (a list of strings).
    pub roles_claim: String,
    /// Roles allowed to run write operations.
    pub writer_roles: Vec<String>,
    /// Roles allowed to approve or deny plans.
    pub approver_roles: Vec<String>,
    /// Roles that let a service act on behalf of a person it identified (the Slack agent).
    pub delegation_roles: Vec<String>,
    /// Roles allowed to assert break-glass (`X-Break-Glass: true` with `X-Break-Glass-Reason`).
    pub break_glass_roles: Vec<String>,
    /// How long change events stay replayable (`Last-Event-ID`) in `event_log`.
    pub event_retention_hours: u64,
    /// Days tool output lines stay in `tool_call_logs` (0 keeps them forever).
    pub tool_log_retention_days: u64,
    /// Days a resolved alert stays in `alert_events` after its last update (0 keeps it).
    pub resolved_alert_retention_days: u64,
    /// Seconds between runs of the retention job (the first one interval after start; 10..=86400).
    pub retention_interval_secs: u64,
    /// Days stored policy decisions (what policy impact re-runs) are kept (0 keeps them).
    pub policy_decision_retention_days: u64,
    pub enable_event_loop: bool,
    pub event_loop_sources: Vec<String>,
    pub session_required: bool,
    pub event_gate_window_secs: u64,
    pub event_gate_backoff_secs: u64,
    pub event_gate_min_count: u32,
    pub event_gate_severities: Vec<String>,
    /// Plans at most this many alert-born plans per service per hour (0 = no limit).
    pub event_gate_service_per_hour: u32,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Sustained requests per second per actor (token bucket refill rate).
    pub rate_limit_per_second: f64,
    /// Token bucket size per actor.
    pub rate_limit_burst: u32,
    /// Per-request timeout for non-streaming routes.
    pub request_timeout_secs: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// A request head must arrive within this many seconds, or the connection is closed.
    pub header_read_timeout_secs: u64,
    /// A connection with no bytes either way (and no request in flight) for this long closes.
    pub idle_timeout_secs: u64,
    /// Concurrent connections one peer address may hold (per listener).
    pub max_connections_per_peer: usize,
    /// Concurrent streams (SSE events, WebSocket, execution logs) one actor may hold.
    pub max_streams_per_actor: usize,
    /// Run database migrations at start.
    pub auto_migrate: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            http_addr: ":8080".into(),
            canvas_addr: None,
            ws_addr: Some(":8082".into()),
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_jwks_url: None,
            ui_connect_origins: Vec::new(),
            jwks_cache_ttl_secs: 3600,
            dev_mode: false,
            dev_jwt_secret: None,
            dev_issuer: "carapulse-dev".into(),
            tenant_claim: "tenant_id".into(),
            roles_claim: "groups".into(),
            writer_roles: vec!["operator".into(), "admin".into()],
            approver_roles: vec!["approver".into(), "admin".into()],
            delegation_roles: vec!["chatops".into()],
            break_glass_roles: vec!["admin".into(), "break-glass".into()],
            event_retention_hours: 24,
            tool_log_retention_days: 30,
            resolved_alert_retention_days: 90,
            retention_interval_secs: 600,
            policy_decision_retention_days: 30,
            enable_event_loop: false,
            event_loop_sources: vec![
                "alertmanager".into(),
                "argocd".into(),
                "git".into(),
                "k8s".into(),
            ],
            session_required: false,
            event_gate_window_secs: 0,
            event_gate_backoff_secs: 600,
            event_gate_min_count: 0,
            event_gate_severities: Vec::new(),
            event_gate_service_per_hour: 6,
            max_body_bytes: 1 << 20,
            rate_limit_per_second: 20.0,
            rate_limit_burst: 40,
            request_timeout_secs: 30,
            shutdown_grace_secs: 30,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 120,
            max_connections_per_peer: 256,
            max_streams_per_actor: 32,
            auto_migrate: true,
        }
    }
}

/// A static service mapping in `context.services`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceMapping {
    pub service: String,
    pub environment: String,
    pub cluster_id: String,
    pub namespace: String,
    pub promql: Vec<String>,
    pub traceql: Vec<String>,
    pub dashboards: Vec<String>,
}

/// One source of service-to-service traffic in `context.service_graph_queries`: a PromQL query
/// giving requests per second per (client, server) pair, and optionally one giving failed
/// requests per second for the same pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceGraphQuery {
    /// Requests per second, one series per pair.
    pub requests: String,
    /// Failed requests per second, same labels (empty: error ratios are not read).
    pub errors: String,
    /// The label naming the calling service.
    pub client_label: String,
    /// The label naming the called service.
    pub server_label: String,
}

impl ServiceGraphQuery {
    /// The standard service-graph metrics: Tempo's metrics-generator and the OpenTelemetry
    /// service-graph connector (`traces_service_graph_request_total{client,server}`), and
    /// Istio (`istio_requests_total{source_workload,destination_workload}`) where present.
    pub fn standard() -> Vec<Self> {
        vec![
            Self {
                requests: "sum by (client, server) (rate(traces_service_graph_request_total[5m]))"
                    .into(),
                errors:
                    "sum by (client, server) (rate(traces_service_graph_request_failed_total[5m]))"
                        .into(),
                client_label: "client".into(),
                server_label: "server".into(),
            },
            Self {
                requests: "sum by (source_workload, destination_workload) (rate(istio_requests_total{reporter=\"destination\"}[5m]))".into(),
                errors: "sum by (source_workload, destination_workload) (rate(istio_requests_total{reporter=\"destination\",response_code=~\"5..\"}[5m]))".into(),
                client_label: "source_workload".into(),
                server_label: "destination_workload".into(),
            },
        ]
    }
}

/// `context`: the collectors that build the service graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextConfig {
    pub enabled: bool,
    pub poll_interval_secs: u64,
    pub snapshot_interval_secs: u64,
    pub watch_timeout_secs: u64,
    pub watch_send_initial_events: bool,
    pub watch_allow_bookmarks: bool,
    pub k8s_resources: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub k8s_namespaces: Vec<String>,
    pub helm_namespaces: Vec<String>,
    pub argo_apps: Vec<String>,
    pub promql_queries: Vec<String>,
    pub traceql_queries: Vec<String>,
    pub grafana_folders: Vec<i64>,
    /// Where `calls` edges (service to service, with request and error rates) come from,
    /// queried on Thanos when configured, else Prometheus. Defaults to the standard
    /// service-graph metrics ([`ServiceGraphQuery::standard`]); `[]` turns it off.
    pub service_graph_queries: Vec<ServiceGraphQuery>,
    /// How many caller hops a plan's blast-radius estimate follows (1..=8).
    pub blast_radius_depth: u32,
    pub aws_resource_tags: BTreeMap<String, Vec<String>>,
    pub tenant_id: String,
    pub environment: String,
    pub cluster_id: String,
    pub namespace: String,
    pub aws_account_id: String,
    pub region: String,
    pub argocd_project: String,
    pub grafana_org_id: String,
    pub services: Vec<ServiceMapping>,
    /// Poll interval per collector (`helm`, `argocd`, ...) overriding `poll_interval_secs`.
    pub intervals: BTreeMap<String, u64>,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            poll_interval_secs: 60,
            snapshot_interval_secs: 300,
            watch_timeout_secs: 30,
            watch_send_initial_events: true,
            watch_allow_bookmarks: true,
            k8s_resources: [
                "deployments",
                "statefulsets",
                "daemonsets",
                "services",
                "ingresses",
                "pods",
                "events",
                "nodes",
            ]
            .map(String::from)
            .to_vec(),
            labels: BTreeMap::new(),
            k8s_namespaces: Vec::new(),
            helm_namespaces: Vec::new(),
            argo_apps: Vec::new(),
            promql_queries: Vec::new(),
            traceql_queries: Vec::new(),
            grafana_folders: Vec::new(),
            service_graph_queries: ServiceGraphQuery::standard(),
            blast_radius_depth: crate::blast_radius::DEFAULT_DEPTH,
            aws_resource_tags: BTreeMap::new(),
            tenant_id: String::new(),
            environment: String::new(),
            cluster_id: String::new(),
            namespace: String::new(),
            aws_account_id: String::new(),
            region: String::new(),
            argocd_project: String::new(),
            grafana_org_id: String::new(),
            services: Vec::new(),
            intervals: BTreeMap::new(),
        }
    }
}

/// `tool_router`: the typed tool RPC service and how other services reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolRouterConfig {
    pub http_addr: String,
    /// URL other services use to call the router.
    pub base_url: Option<String>,
    /// Service token (env `CARAPULSE_TOOL_ROUTER_TOKEN`).
    pub auth_token: Option<String>,
    /// Key signing execution grants (env `CARAPULSE_TOOL_ROUTER_GRANT_KEY`, at least 32 bytes).
    /// Only the orchestrator (which mints) and the router (which checks) need it; without it the
    /// router refuses every write and sensitive read.
    pub grant_key: Option<String>,
    /// Lifetime of one grant; it must cover one tool call (the step activity's own limit).
    pub grant_ttl_secs: u64,
    /// Demo mode (`dev-up.sh --demo`): a directory of stand-in CLIs (the recording fakes of
    /// `e2e/fakes`) the router runs instead of the real ones of the same name. Every call that
    /// runs one is marked `demo` in its response, its tool-call record and `/readyz`, so the UI,
    /// CLI and diagnostics say nothing real was changed. Needs `gateway.dev_mode`.
    pub demo_cli_dir: Option<String>,
}

impl Default for ToolRouterConfig {
    fn default() -> Self {
        Self {
            http_addr: ":8081".into(),
            base_url: None,
            auth_token: None,
            grant_key: None,
            grant_ttl_secs: 20 * 60,
            demo_cli_dir: None,
        }
    }
}

/// `policy`: the in-process Rego engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directory holding the `*.rego` files (test files are skipped at runtime).
    pub policy_dir: String,
    pub policy_package: String,
    /// Accepted for compatibility; must stay false: evaluation errors always deny.
    pub fail_open_reads: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            policy_dir: "policies".into(),
            policy_package: "policy.assistant.v1".into(),
            fail_open_reads: false,
        }
    }
}

/// `llm`: the planner's model provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    pub provider: Option<String>,
    pub api_key: Option<String>,
    pub api_base: Option<String>,
    pub model: Option<String>,
    pub timeout_ms: u64,
    pub max_output_tokens: u32,
    /// Extra redaction patterns on top of the built-in secret families (always applied).
    pub redact_patterns: Vec<String>,
    pub auth_profile: Option<String>,
    pub auth_path: Option<String>,
    /// Retries after the first attempt on 429, 5xx, timeouts and connection errors.
    pub max_retries: u32,
    /// First backoff; doubles per retry (with jitter), `Retry-After` wins when sent.
    pub retry_base_ms: u64,
    /// Model calls per tenant per hour (0 = unlimited).
    pub tenant_calls_per_hour: u32,
    /// When the model fails or proposes an invalid plan, try the rule planner.
    pub fallback_to_rules: bool,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            provider: None,
            api_key: None,
            api_base: None,
            model: None,
            timeout_ms: 30_000,
            max_output_tokens: 2048,
            redact_patterns: Vec::new(),
            auth_profile: None,
            auth_path: None,
            max_retries: 3,
            retry_base_ms: 500,
            tenant_calls_per_hour: 120,
            fallback_to_rules: true,
        }
    }
}

/// `orchestrator`: the Temporal worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrchestratorConfig {
    pub temporal_addr: Option<String>,
    pub namespace: String,
    pub task_queue: String,
    pub health_addr: Option<String>,
    /// How long an inconclusive analysis waits for a person to continue or roll back before it
    /// rolls back on its own.
    pub decision_timeout_secs: u64,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            temporal_addr: None,
            namespace: "default".into(),
            task_queue: "carapulse".into(),
            health_addr: None,
            decision_timeout_secs: 1800,
        }
    }
}

/// `storage.object_store`: where evidence blobs and large tool outputs go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// `fs` (default) or `s3`.
    pub backend: String,
    /// Root directory of the filesystem backend.
    pub fs_root: String,
    /// S3 endpoint (MinIO, Ceph, R2, ...); unset: AWS S3 of `region`.
    pub endpoint: Option<String>,
    /// S3 bucket (required by the `s3` backend).
    pub bucket: Option<String>,
    /// S3 region (default `us-east-1`).
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`, what most S3-compatible servers want);
    /// false: virtual-hosted style (`bucket.endpoint/key`).
    pub path_style: bool,
    /// S3 credentials (env `CARAPULSE_S3_ACCESS_KEY_ID` / `CARAPULSE_S3_SECRET_ACCESS_KEY`);
    /// unset: the usual AWS environment (access keys, web identity, instance profile).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl Default for ObjectStoreConfig {
    fn default() -> Self {
        Self {
            backend: "fs".into(),
            fs_root: "./.data/objects".into(),
            endpoint: None,
            bucket: None,
            region: None,
            path_style: true,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

/// `storage`: Postgres and object storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// libpq-style URL (env `CARAPULSE_POSTGRES_DSN`).
    pub postgres_dsn: String,
    pub max_open_conns: u32,
    pub max_idle_conns: u32,
    pub conn_max_lifetime_secs: u64,
    pub acquire_timeout_secs: u64,
    pub object_store: ObjectStoreConfig,
    pub workspace_dir: Option<String>,
    /// Signs audit checkpoints (env `CARAPULSE_AUDIT_CHECKPOINT_KEY`, at least 32 bytes); without
    /// it no checkpoints are published and truncation of the newest events goes unnoticed.
    pub audit_checkpoint_key: Option<String>,
    /// How often each tenant's chain head is checkpointed (0: only on demand).
    pub audit_checkpoint_interval_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            postgres_dsn: "postgres://postgres@127.0.0.1:5432/carapulse".into(),
            max_open_conns: 25,
            max_idle_conns: 2,
            conn_max_lifetime_secs: 300,
            acquire_timeout_secs: 5,
            object_store: ObjectStoreConfig::default(),
            workspace_dir: None,
            audit_checkpoint_key: None,
            audit_checkpoint_interval_secs: 300,
        }
    }
}

/// `sandbox`: how tool processes are isolated.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    pub enabled: bool,
    /// Enforcement is on unless explicitly switched off (which logs a warning at start).
    pub enforce: bool,
    pub egress_allowlist: Vec<String>,
    pub mounts: Vec<String>,
    pub read_only_root: bool,
    pub user: Option<String>,
    pub seccomp_profile: Option<String>,
    pub require_seccomp: bool,
    pub require_no_new_privs: bool,
    pub require_user: bool,
    pub require_drop_caps: bool,
    pub require_on_write: bool,
    pub require_egress_allowlist: bool,
    pub max_output_bytes: usize,
    pub timeout_ms: u64,
    pub env_allow: Vec<String>,
    /// The `sandbox-exec` binary each tool call runs in, so the sandbox is built in a small
    /// process instead of by forking the tool router (whose memory would be copied per call).
    /// Unset: the one next to the tool router or on `PATH` (in-process, with a warning, when
    /// there is none); `in-process`: always in the router's own process.
    pub exec_helper: Option<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            enforce: true,
            egress_allowlist: Vec::new(),
            mounts: Vec::new(),
            read_only_root: true,
            user: None,
            seccomp_profile: None,
            require_seccomp: false,
            require_no_new_privs: false,
            require_user: false,
            require_drop_caps: false,
            require_on_write: false,
            require_egress_allowlist: false,
            max_output_bytes: 1_000_000,
            timeout_ms: 60_000,
            env_allow: vec!["PATH".into(), "HOME".into(), "LANG".into()],
            exec_helper: None,
        }
    }
}

/// `scheduler`: cron-driven workflow starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    pub enabled: bool,
    pub poll_interval_secs: u64,
    pub default_cron: Option<String>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            poll_interval_secs: 30,
            default_cron: None,
        }
    }
}

/// `telemetry`: traces. Off unless `otlp_endpoint` is set; then every service exports its spans
/// over OTLP/gRPC, and trace context crosses the API, the Temporal workflows (workflow and
/// activity headers), the tool router and the sandboxed process (`TRACEPARENT`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/gRPC collector address, e.g. `http://otel-collector:4317`.
    pub otlp_endpoint: Option<String>,
    /// Share of new traces kept (0.0..=1.0); a sampled parent (inbound `traceparent`) is followed.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            sample_ratio: 1.0,
        }
    }
}

/// A connector reached over HTTP with an optional bearer token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConnector {
    pub addr: Option<String>,
    pub token: Option<String>,
}

/// `connectors.aws`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsConnector {
    pub addr: Option<String>,
    pub token: Option<String>,
    pub region: Option<String>,
}

/// `connectors.grafana`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrafanaConnector {
    pub addr: Option<String>,
    pub token: Option<String>,
    pub org_id: String,
}

impl Default for GrafanaConnector {
    fn default() -> Self {
        Self {
            addr: None,
            token: None,
            org_id: "1".into(),
        }
    }
}

/// `connectors.vault`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultConnector {
    pub addr: Option<String>,
    pub token: Option<String>,
    pub namespace: Option<String>,
}

/// `connectors.boundary`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoundaryConnector {
    pub addr: Option<String>,
    pub token: Option<String>,
}

/// `connectors.k8s`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct K8sConnector {
    pub kubeconfig_path: Option<String>,
}

/// `connectors.linear`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearConnector {
    pub token: Option<String>,
    pub team_id: Option<String>,
    pub base_url: String,
    pub poll_interval_ms: u64,
    /// Linear user email -> Carapulse actor id, so separation of duties compares like with like.
    pub user_map: BTreeMap<String, String>,
    /// Emails allowed to decide through Linear labels (empty: any member of the team).
    pub approvers: Vec<String>,
    /// Base URL of the Carapulse UI/API used for links in issue descriptions.
    pub public_url: Option<String>,
}

impl Default for LinearConnector {
    fn default() -> Self {
        Self {
            token: None,
            team_id: None,
            base_url: "https://api.linear.app/graphql".into(),
            poll_interval_ms: 30_000,
            user_map: BTreeMap::new(),
            approvers: Vec::new(),
            public_url: None,
        }
    }
}

/// `connectors`: credentials and addresses of every external system.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectorsConfig {
    pub aws: AwsConnector,
    pub vault: VaultConnector,
    pub k8s: K8sConnector,
    pub boundary: BoundaryConnector,
    pub argocd: HttpConnector,
    pub prometheus: HttpConnector,
    pub alertmanager: HttpConnector,
    pub thanos: HttpConnector,
    pub grafana: GrafanaConnector,
    pub tempo: HttpConnector,
    pub linear: LinearConnector,
    pub pagerduty: HttpConnector,
    pub github: HttpConnector,
    pub gitlab: HttpConnector,
    /// Which environment each connector's credentials act in: connector name (`kubectl` and
    /// `helm` share `k8s`) -> environment, `*` for shared ones (a Linear workspace). A step
    /// whose connector serves another environment than its plan's is refused, at planning and
    /// again at the router. Connectors not listed fall back to `default_environment`.
    pub environments: BTreeMap<String, String>,
    /// The environment of connectors not named in `environments`; unset = not bound.
    pub default_environment: Option<String>,
    /// The cluster `kubectl`/`helm` act on; a plan naming another `cluster_id` is refused.
    pub cluster_id: Option<String>,
}

/// `chatops`: the Slack agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatOpsConfig {
    pub slack_bot_token: Option<String>,
    pub slack_signing_secret: Option<String>,
    pub gateway_url: Option<String>,
    pub gateway_token: Option<String>,
    pub listen_addr: String,
    pub commands_path: String,
    /// Slack user id -> Carapulse actor id.
    pub user_map: BTreeMap<String, String>,
    /// Resolve unmapped Slack users by their profile email (`users.info`, needs the bot token).
    pub email_lookup: bool,
    /// Roles a mapped Slack user acts with (at most the agent token's own roles).
    pub default_roles: Vec<String>,
    /// Actors (as mapped) who also get the `approver` role through Slack.
    pub approver_actors: Vec<String>,
    /// Channels the commands are accepted in (empty: any).
    pub allowed_channels: Vec<String>,
    /// Slack Web API base (tests point it at a mock).
    pub slack_api_base: String,
    /// Slack request signatures older than this are refused (replay protection).
    pub signature_tolerance_secs: u64,
}

impl Default for ChatOpsConfig {
    fn default() -> Self {
        Self {
            slack_bot_token: None,
            slack_signing_secret: None,
            gateway_url: None,
            gateway_token: None,
            listen_addr: ":8090".into(),
            commands_path: "/slack/commands".into(),
            user_map: BTreeMap::new(),
            email_lookup: true,
            default_roles: vec!["operator".into()],
            approver_actors: Vec::new(),
            allowed_channels: Vec::new(),
            slack_api_base: "https://slack.com/api".into(),
            signature_tolerance_secs: 300,
        }
    }
}

/// `approvals`: how plans get approved.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Auto-approve low-risk plans created manually (never webhook- or schedule-born ones).
    pub auto_approve_low: bool,
    /// Pending approvals expire after this many hours.
    pub timeout_hours: u64,
    /// How often the gateway looks for pending approvals past their deadline.
    pub sweep_interval_secs: u64,
    /// An approval older than this no longer executes (it must be renewed by a new plan).
    pub validity_hours: u64,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            auto_approve_low: false,
            timeout_hours: 24,
            sweep_interval_secs: 30,
            validity_hours: 24,
        }
    }
}

/// One webhook source (`webhooks.<alertmanager|argocd|git|k8s>`): which tenant and target its
/// events belong to, and how its requests prove where they come from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSource {
    pub tenant_id: String,
    /// `Authorization: Bearer <token>` (Alertmanager `http_config.authorization`).
    pub bearer_token: Option<String>,
    /// HMAC-SHA256 of the raw body with this secret: `X-Hub-Signature-256: sha256=<hex>`
    /// (GitHub) or `X-Carapulse-Signature: sha256=<hex>`; GitLab's `X-Gitlab-Token` must equal it.
    pub hmac_secret: Option<String>,
    pub environment: String,
    pub cluster_id: String,
    pub namespace: String,
}
