//! The year suite (issue 15): a year of one busy tenant's data — a million plans and executions,
//! ten million audit events on one valid hash chain, five million alerts and a million change
//! events, timestamps spread over the last 365 days (`--year-scale` shrinks every volume for a
//! quick run). Then, against the gateway binary:
//!
//! 1. with retention off, so the tables hold still: every list endpoint (first page, and a page
//!    10,000 rows deep by cursor on the large ones), `audit verify` over the whole chain (rows/s
//!    and the gateway's peak RSS: bounded memory), the CSV export of the whole chain, and SSE
//!    resume (`Last-Event-ID` 10,000 and 100,000 events back: time to the first and the last);
//! 2. the load mix on two gateways with two orchestrator workers (and a tool router with a fake
//!    `kubectl`) on the same Postgres, with default retention: the gateways' prune drains the
//!    year's backlog of change events and resolved alerts while the mix runs, and the row says how
//!    much went and whether throughput stayed flat.
//!
//! Plans, executions, approvals, alerts and change events are generated inside Postgres
//! (`INSERT … SELECT generate_series`, triggers off: a bench database only); the audit chain is
//! hashed here, like the gateway hashes it, and streamed in with `COPY`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use carapulse_core::model::TenantId;
use carapulse_core::testing::{seed_audit_chain, TestDatabase};

use crate::lists::{cursor_at, time, viewer_token};
use crate::load::{self, LoadSettings};
use crate::stack::{process_stats, Stack, StackOptions, TENANT};
use crate::Row;

/// Settings of the year suite.
pub struct YearSettings {
    /// 1.0 is a full year (1M plans, 10M audit events, 5M alerts, 1M change events).
    pub scale: f64,
    pub samples: usize,
    /// Seed this database once and keep it (later runs with the same name skip the seeding).
    pub database: Option<String>,
    pub temporal: String,
    pub load: LoadSettings,
}

/// Rows per table.
#[derive(Debug, Clone, Copy)]
struct Volume {
    plans: i64,
    audit: i64,
    alerts: i64,
    events: i64,
}

impl Volume {
    fn scaled(scale: f64) -> Self {
        let n = |full: f64| ((full * scale) as i64).max(20_000);
        Self {
            plans: n(1e6),
            audit: n(1e7),
            alerts: n(5e6),
            events: n(1e6),
        }
    }
}

const YEAR_SECS: f64 = 365.0 * 86_400.0;
/// How deep the deep pages start.
const DEPTH: usize = 10_000;

pub async fn run(s: &YearSettings, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let (db, existed) = match &s.database {
        Some(name) => TestDatabase::open_kept(name).await,
        None => (TestDatabase::create().await, false),
    };
    let result = run_on(&db, s, existed, rows).await;
    // A kept database stays; a fresh one goes.
    db.drop_now().await;
    result
}

async fn run_on(
    db: &TestDatabase,
    s: &YearSettings,
    existed: bool,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let volume = Volume::scaled(s.scale);
    let seeded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_chain_heads WHERE tenant_id = $1")
            .bind(TENANT)
            .fetch_one(db.store.pool())
            .await?;
    if existed && seeded > 0 {
        rows.push(Row {
            what: "year: seed".into(),
            figure: format!("reused database {} (seeded by an earlier run)", db.name),
        });
    } else {
        seed(db, volume, rows).await?;
    }
    rows.push(Row {
        what: "year: database size".into(),
        figure: sizes(db).await?,
    });

    // 1. Still tables: retention off.
    let opts = StackOptions {
        gateways: 1,
        workers: 0,
        temporal: s.temporal.clone(),
        retention: false,
    };
    let stack = Stack::start(db, &opts).await?;
    let measured = measure(db, volume, &stack, s.samples, rows).await;
    stack.stop().await;
    measured?;

    // 2. The load mix at size, two gateways and two workers, retention on.
    let opts = StackOptions {
        gateways: 2,
        workers: 2,
        temporal: s.temporal.clone(),
        retention: true,
    };
    let before = counts(db).await?;
    let stack = Stack::start(db, &opts).await?;
    let mixed = load::mix(db, &stack, &s.load, "year: load", rows).await;
    stack.stop().await;
    let after = counts(db).await?;
    rows.push(Row {
        what: "year: rows before -> after the load run (retention on)".into(),
        figure: before
            .iter()
            .zip(&after)
            .map(|((table, b), (_, a))| format!("{table} {b} -> {a}"))
            .collect::<Vec<_>>()
            .join(", "),
    });
    mixed
}

/// Seeds the tenant; one row per table with the time it took.
async fn seed(db: &TestDatabase, v: Volume, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let mut conn = db.store.pool().begin().await?;
    // Triggers (event log, NOTIFY, foreign keys) off for the load: this is a bench database.
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *conn)
        .await?;
    // (what, rows, statement): $1 tenant, $2 rows, $3 seconds between rows.
    let statements = [
        ("plans", v.plans,
         "INSERT INTO plans (plan_id, tenant_id, created_at, updated_at, created_by, trigger, summary, \
          context_json, risk_level, policy_decision, approval_state) \
          SELECT gen_random_uuid(), $1, now() - make_interval(secs => i * $3), now(), 'bench-seed', \
          CASE WHEN i % 3 = 0 THEN 'alert' ELSE 'manual' END, 'year plan ' || i, \
          '{\"environment\":\"production\",\"namespace\":\"web\"}', \
          CASE WHEN i % 10 = 0 THEN 'medium' ELSE 'low' END, \
          CASE WHEN i % 10 = 0 THEN 'require_approval' ELSE 'allow' END, \
          CASE WHEN i % 500 = 0 THEN 'pending' WHEN i % 10 = 0 THEN 'approved' ELSE 'not_required' END \
          FROM generate_series(1, $2) AS i"),
        ("executions", v.plans,
         "INSERT INTO executions (execution_id, plan_id, tenant_id, status, created_by, created_at, updated_at) \
          SELECT gen_random_uuid(), plan_id, tenant_id, \
          CASE WHEN random() < 0.97 THEN 'succeeded' ELSE 'rolled_back' END, 'bench-seed', \
          created_at + interval '1 minute', created_at + interval '3 minutes' \
          FROM plans WHERE tenant_id = $1 AND approval_state <> 'pending' AND $2 > 0 AND $3 > 0"),
        ("approvals", v.plans / 10,
         "INSERT INTO approvals (approval_id, plan_id, tenant_id, status, approver, source, created_at) \
          SELECT gen_random_uuid(), plan_id, tenant_id, 'approved', 'approver-' || (hashtext(plan_id::text) & 7), 'api', \
          created_at + interval '30 seconds' \
          FROM plans WHERE tenant_id = $1 AND approval_state = 'approved' AND $2 > 0 AND $3 > 0"),
        ("alert_events", v.alerts,
         "INSERT INTO alert_events (alert_id, tenant_id, source, fingerprint, status, started_at, updated_at, payload_json) \
          SELECT gen_random_uuid(), $1, 'alertmanager', 'year-' || i, \
          CASE WHEN i % 1000 = 0 THEN 'firing' ELSE 'resolved' END, now() - make_interval(secs => i * $3), \
          now() - make_interval(secs => i * $3 - 600), \
          jsonb_build_object('labels', jsonb_build_object('alertname', 'Year' || (i % 40), 'instance', 'i-' || (i % 5000), 'severity', 'warning')) \
          FROM generate_series(1, $2) AS i"),
        ("event_log", v.events,
         "INSERT INTO event_log (tenant_id, kind, data, occurred_at, seq) \
          SELECT $1, 'plan.updated', jsonb_build_object('plan_id', gen_random_uuid(), 'approval_state', 'approved', 'op', 'update'), \
          now() - make_interval(secs => ($2 - i) * $3), \
          coalesce((SELECT max(seq) FROM event_log), 0) + i \
          FROM generate_series(1, $2) AS i"),
    ];
    for (table, n, sql) in statements {
        let started = Instant::now();
        let done = sqlx::query(sql)
            .bind(TENANT)
            .bind(n)
            .bind(YEAR_SECS / n as f64)
            .execute(&mut *conn)
            .await?;
        rows.push(seed_row(table, done.rows_affected(), started.elapsed()));
    }
    conn.commit().await?;

    let started = Instant::now();
    let (head_seq, _) = seed_audit_chain(
        &db.store,
        &TenantId::parse(TENANT)?,
        v.audit,
        chrono::Duration::seconds(YEAR_SECS as i64),
    )
    .await?;
    rows.push(seed_row(
        "audit_events (hashed here, COPY)",
        head_seq as u64,
        started.elapsed(),
    ));
    let started = Instant::now();
    sqlx::query("VACUUM ANALYZE")
        .execute(db.store.pool())
        .await?;
    rows.push(Row {
        what: "year: seed VACUUM ANALYZE".into(),
        figure: format!("{:.1} s", started.elapsed().as_secs_f64()),
    });
    Ok(())
}

fn seed_row(table: &str, n: u64, took: Duration) -> Row {
    Row {
        what: format!("year: seed {table}"),
        figure: format!(
            "{n} rows in {:.1} s ({:.0} rows/s)",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64().max(1e-9)
        ),
    }
}

/// Rows of the tables that grow, for the tenant.
async fn counts(db: &TestDatabase) -> anyhow::Result<Vec<(&'static str, i64)>> {
    let mut out = Vec::new();
    for table in [
        "plans",
        "executions",
        "audit_events",
        "alert_events",
        "event_log",
    ] {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = $1"
        ))
        .bind(TENANT)
        .fetch_one(db.store.pool())
        .await?;
        out.push((table, n));
    }
    Ok(out)
}

async fn sizes(db: &TestDatabase) -> anyhow::Result<String> {
    let total: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(db.store.pool())
        .await?;
    let counts = counts(db).await?;
    Ok(format!(
        "{:.2} GiB on disk; {}",
        total as f64 / (1u64 << 30) as f64,
        counts
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Every list endpoint, verify, export and SSE resume against the stack's gateway.
async fn measure(
    db: &TestDatabase,
    v: Volume,
    stack: &Stack,
    samples: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let base = &stack.gateways[0];
    let pid = stack.gateway_pids()[0];
    let http = reqwest::Client::new();
    let token = viewer_token(TENANT)?;
    // (list, extra query, rows it holds: a page 10,000 rows deep too when it has them)
    let lists = [
        ("plans", "", v.plans),
        ("executions", "", v.plans),
        ("approvals", "status=approved&", v.plans / 10),
        ("approvals", "status=pending&", 0),
        ("audit/events", "", v.audit),
        ("audit/events", "action=plan.execute&", v.audit / 5),
        ("alerts", "", v.alerts),
        ("sessions", "", 0),
        ("schedules", "", 0),
        ("memory", "", 0),
        ("playbooks", "", 0),
        ("runbooks", "", 0),
        ("context/services", "", 0),
        ("context/snapshots", "", 0),
    ];
    for (list, filter, size) in lists {
        let path = format!("{base}/v1/{list}");
        let figure = time(&http, &token, &format!("{path}?{filter}limit=50"), samples).await?;
        rows.push(Row {
            what: format!("year: list /v1/{list}?{filter} first page"),
            figure,
        });
        if size > 2 * DEPTH as i64 {
            let filtered = match filter.trim_end_matches('&') {
                "" => path.clone(),
                f => format!("{path}?{f}"),
            };
            let cursor = cursor_at(&http, &token, &filtered, DEPTH).await?;
            let figure = time(
                &http,
                &token,
                &format!("{path}?{filter}limit=50&cursor={cursor}"),
                samples,
            )
            .await?;
            rows.push(Row {
                what: format!("year: list /v1/{list}?{filter} page after {DEPTH} rows (cursor)"),
                figure,
            });
        }
    }

    // Verify the whole chain.
    let rss_before = process_stats(pid).rss_mib;
    let started = Instant::now();
    let report: Value = http
        .get(format!("{base}/v1/audit/verify"))
        .bearer_auth(&token)
        .header("accept", "application/x-ndjson")
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|l| l.get("report").cloned())
        .ok_or_else(|| anyhow::anyhow!("verify sent no report"))?;
    let took = started.elapsed();
    let checked = report["events_checked"].as_i64().unwrap_or(0);
    anyhow::ensure!(
        report["ok"] == true,
        "the seeded chain did not verify: {report}"
    );
    rows.push(Row {
        what: "year: GET /v1/audit/verify, whole chain (NDJSON progress)".into(),
        figure: format!(
            "{checked} events in {:.1} s ({:.0} events/s); gateway RSS {rss_before:.0} MiB before, peak {:.0} MiB",
            took.as_secs_f64(),
            checked as f64 / took.as_secs_f64(),
            process_stats(pid).peak_rss_mib
        ),
    });

    // Export the whole chain as CSV, streamed.
    let started = Instant::now();
    let resp = http
        .get(format!("{base}/v1/audit/export?format=csv"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?;
    let mut body = resp.bytes_stream();
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        bytes += chunk.len();
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
    }
    let took = started.elapsed();
    let exported = lines.saturating_sub(1);
    anyhow::ensure!(
        exported as i64 >= checked,
        "the export has {exported} events, the chain {checked}"
    );
    rows.push(Row {
        what: "year: GET /v1/audit/export?format=csv, whole chain".into(),
        figure: format!(
            "{exported} events, {:.0} MiB in {:.1} s ({:.0} events/s); gateway peak RSS {:.0} MiB",
            bytes as f64 / (1u64 << 20) as f64,
            took.as_secs_f64(),
            exported as f64 / took.as_secs_f64(),
            process_stats(pid).peak_rss_mib
        ),
    });

    // SSE resume from behind the head.
    for behind in [10_000i64, 100_000] {
        let (replayed, first, last) = sse_resume(db, &http, base, &token, behind).await?;
        rows.push(Row {
            what: format!("year: SSE resume {behind} events behind the head"),
            figure: format!(
                "first event after {}, all {replayed} after {} ({:.0} events/s)",
                crate::millis(first),
                crate::millis(last),
                replayed as f64 / last.as_secs_f64()
            ),
        });
    }
    Ok(())
}

/// Resumes `/v1/events` `behind` events before the newest (or from the start, when there are
/// fewer) and times the first and the last replayed event; checks the ids arrive in order without
/// a gap. Returns how many were replayed.
async fn sse_resume(
    db: &TestDatabase,
    http: &reqwest::Client,
    base: &str,
    token: &str,
    behind: i64,
) -> anyhow::Result<(i64, Duration, Duration)> {
    // The newest id: the one a fresh subscriber would resume after.
    let head: i64 =
        sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM event_log WHERE tenant_id = $1")
            .bind(TENANT)
            .fetch_one(db.store.pool())
            .await?;
    let from = (head - behind).max(0);
    let started = Instant::now();
    let resp = http
        .get(format!("{base}/v1/events"))
        .bearer_auth(token)
        .header("last-event-id", from.to_string())
        .send()
        .await?
        .error_for_status()?;
    let mut body = resp.bytes_stream();
    let mut buffer = Vec::new();
    let mut expected = from + 1;
    let mut first = None;
    while expected <= head {
        let chunk = tokio::time::timeout(Duration::from_secs(60), body.next())
            .await
            .map_err(|_| anyhow::anyhow!("SSE replay stalled at id {expected}"))?
            .ok_or_else(|| anyhow::anyhow!("SSE stream ended at id {expected}"))??;
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            if let Some(id) = line.strip_prefix(b"id:") {
                let id: i64 = String::from_utf8_lossy(id).trim().parse()?;
                anyhow::ensure!(
                    id == expected,
                    "SSE replay sent id {id}, expected {expected}"
                );
                first.get_or_insert_with(|| started.elapsed());
                expected += 1;
            }
        }
    }
    Ok((head - from, first.unwrap_or_default(), started.elapsed()))
}
