//! List pages at two table sizes (issue 15): the tenant-scoped lists of plans, executions, audit
//! events and alerts, served by a real gateway, at 10,000 rows and at `--list-rows` (a million by
//! default) rows per table. Each list is timed on its first page, on the page after 10,000 rows by
//! cursor and by offset, with the planner's estimate and with an exact count; beside them, the
//! query every list used before keyset pages (`COUNT(*) OVER ()`), in SQL, on the same data.
//!
//! Rows are loaded with `INSERT … SELECT generate_series` with triggers off
//! (`session_replication_role = replica`: a bench database only), then `ANALYZE`d.

use std::time::{Duration, Instant};

use carapulse_core::auth::{mint_dev_token, DevTokenRequest};
use carapulse_core::testing::{TestDatabase, TEST_JWT_SECRET};

use crate::{millis, percentile, Row};

/// Tenants of the two sizes.
const SMALL: (&str, usize) = ("lists-10k", 10_000);
const LARGE_TENANT: &str = "lists-large";
/// How deep the "deep page" starts (less on the small tenant: 1,000 rows before its end).
const DEPTH: usize = 10_000;

/// Seeds both tenants, starts a gateway and times every list at both sizes.
pub async fn bench_lists(
    db: &TestDatabase,
    large_rows: usize,
    samples: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    seed(db, SMALL.0, SMALL.1).await?;
    seed(db, LARGE_TENANT, large_rows).await?;
    sqlx::query("ANALYZE").execute(db.store.pool()).await?;
    rows.push(Row {
        what: "lists: seed plans+executions+audit+alerts".into(),
        figure: format!(
            "{} + {} rows per table in {:.1} s",
            SMALL.1,
            large_rows,
            started.elapsed().as_secs_f64()
        ),
    });

    let (base, shutdown, server) = crate::spawn_gateway(db).await?;
    let http = reqwest::Client::new();
    let result = async {
        for (tenant, size) in [(SMALL.0, SMALL.1), (LARGE_TENANT, large_rows)] {
            let token = viewer_token(tenant)?;
            let depth = DEPTH.min(size - 1_000);
            for list in ["plans", "executions", "audit/events", "alerts"] {
                let path = format!("{base}/v1/{list}");
                let cursor = cursor_at(&http, &token, &path, depth).await?;
                // (what, query, requests): exact counts and deep offsets are slow, so fewer.
                let cases = [
                    ("first page".to_owned(), "limit=50".to_owned(), samples),
                    (
                        format!("page after {depth} rows, cursor"),
                        format!("limit=50&cursor={cursor}"),
                        samples,
                    ),
                    (
                        format!("page after {depth} rows, offset"),
                        format!("limit=50&offset={depth}"),
                        samples.min(50),
                    ),
                    (
                        "first page + count=estimate".to_owned(),
                        "limit=50&count=estimate".to_owned(),
                        samples.min(100),
                    ),
                    (
                        "first page + count=exact".to_owned(),
                        "limit=50&count=exact".to_owned(),
                        samples.min(10),
                    ),
                ];
                for (what, query, n) in cases {
                    let figure = time(&http, &token, &format!("{path}?{query}"), n).await?;
                    rows.push(Row {
                        what: format!("list /v1/{list} {what}, {size} rows"),
                        figure,
                    });
                }
            }
            let before = old_plan_page(db, tenant, samples.min(10)).await?;
            rows.push(Row {
                what: format!("list plans, old COUNT(*) OVER () query (SQL only), {size} rows"),
                figure: before,
            });
        }
        anyhow::Ok(())
    }
    .await;
    shutdown.cancel();
    let _ = server.await;
    result
}

pub(crate) fn viewer_token(tenant: &str) -> anyhow::Result<String> {
    token_for(tenant, "viewer")
}

/// A dev token of `tenant` with one role.
pub(crate) fn token_for(tenant: &str, role: &str) -> anyhow::Result<String> {
    let roles = vec![role.to_owned()];
    Ok(mint_dev_token(&DevTokenRequest {
        secret: TEST_JWT_SECRET,
        issuer: "carapulse-dev",
        audience: None,
        subject: "bench",
        tenant,
        roles: &roles,
        email: None,
        ttl_secs: 3600,
        tenant_claim: "tenant_id",
        roles_claim: "groups",
    })?)
}

/// `n` rows per table for `tenant`, one row every 30 seconds back from now.
async fn seed(db: &TestDatabase, tenant: &str, n: usize) -> anyhow::Result<()> {
    // Triggers (event log, NOTIFY, foreign keys) off for the load: this is a bench database.
    // SET LOCAL: the setting ends with the transaction, so the pooled connection goes back clean.
    let mut conn = db.store.pool().begin().await?;
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *conn)
        .await?;
    let n = n as i64;
    let statements = [
        "INSERT INTO plans (plan_id, tenant_id, created_at, updated_at, created_by, trigger, summary, \
         context_json, risk_level, policy_decision, approval_state) \
         SELECT gen_random_uuid(), $1, now() - make_interval(secs => i * 30), now(), 'bench', 'manual', \
         'bench plan ' || i, '{\"environment\":\"dev\"}', 'low', 'allow', 'not_required' \
         FROM generate_series(1, $2) AS i",
        "INSERT INTO executions (execution_id, plan_id, tenant_id, status, created_by, created_at, updated_at) \
         SELECT gen_random_uuid(), plan_id, tenant_id, 'succeeded', 'bench', created_at, created_at \
         FROM plans WHERE tenant_id = $1 AND $2 > 0",
        "INSERT INTO audit_events (event_id, tenant_id, seq, occurred_at, actor_json, action, decision, \
         resource_type, resource_id, prev_hash, hash) \
         SELECT gen_random_uuid(), $1, i, now() - make_interval(secs => ($2 - i) * 30), \
         '{\"id\":\"bench\",\"kind\":\"person\"}', 'plan.create', 'allow', 'plan', i::text, '', '' \
         FROM generate_series(1, $2) AS i",
        "INSERT INTO alert_events (alert_id, tenant_id, source, fingerprint, status, started_at, updated_at, payload_json) \
         SELECT gen_random_uuid(), $1, 'alertmanager', 'fp-' || i, \
         CASE WHEN i % 10 = 0 THEN 'firing' ELSE 'resolved' END, now() - make_interval(secs => i * 30), \
         now() - make_interval(secs => i * 30), '{\"labels\":{\"alertname\":\"Bench\"}}' \
         FROM generate_series(1, $2) AS i",
    ];
    for sql in statements {
        sqlx::query(sql)
            .bind(tenant)
            .bind(n)
            .execute(&mut *conn)
            .await?;
    }
    conn.commit().await?;
    Ok(())
}

/// p50/p99 of `samples` GETs of `url` (after 3 warm-up requests).
pub(crate) async fn time(
    http: &reqwest::Client,
    token: &str,
    url: &str,
    samples: usize,
) -> anyhow::Result<String> {
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples + 3 {
        let t = Instant::now();
        let resp = http.get(url).bearer_auth(token).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        anyhow::ensure!(
            status.is_success(),
            "{url}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        if i >= 3 {
            lat.push(t.elapsed());
        }
    }
    Ok(summary(&mut lat))
}

fn summary(lat: &mut [Duration]) -> String {
    lat.sort();
    format!(
        "p50 {}, p99 {} (n={})",
        millis(percentile(lat, 0.5)),
        millis(percentile(lat, 0.99)),
        lat.len()
    )
}

/// The cursor after the first `depth` rows, reached by following cursors 200 rows at a time.
pub(crate) async fn cursor_at(
    http: &reqwest::Client,
    token: &str,
    path: &str,
    depth: usize,
) -> anyhow::Result<String> {
    // `path` may carry filters already.
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut cursor: Option<String> = None;
    for _ in 0..depth / 200 {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=200&cursor={c}"),
            None => format!("{path}{sep}limit=200"),
        };
        let body: serde_json::Value = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        cursor = body["pagination"]["next_cursor"]
            .as_str()
            .map(str::to_owned);
        anyhow::ensure!(cursor.is_some(), "{path} has fewer than {depth} rows");
    }
    cursor.ok_or_else(|| anyhow::anyhow!("depth {depth} is below one page"))
}

/// The plans page as it was queried before keyset pages: the window count makes it read every
/// row of the tenant.
async fn old_plan_page(db: &TestDatabase, tenant: &str, samples: usize) -> anyhow::Result<String> {
    let mut lat = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        let rows = sqlx::query(
            "SELECT plan_id, created_at, created_by, trigger, summary, intent, context_json, risk_level, \
             policy_decision, approval_state, session_id, COUNT(*) OVER () AS total FROM plans \
             WHERE tenant_id = $1 ORDER BY created_at DESC, plan_id DESC LIMIT 50 OFFSET 0",
        )
        .bind(tenant)
        .fetch_all(db.store.pool())
        .await?;
        anyhow::ensure!(rows.len() == 50);
        lat.push(t.elapsed());
    }
    Ok(summary(&mut lat))
}
