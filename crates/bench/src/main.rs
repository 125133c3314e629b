//! `carapulse-bench`: measures what the foundation promises and prints one table.
//!
//! - policy decision latency (regorus over the project policies), median and p99 per decision;
//! - `POST /v1/plans` end to end against a gateway on a fresh local database: throughput and
//!   p50/p99 latency at each chosen concurrency (1, 32 and 128 by default);
//! - approval decisions at concurrency 32, one transaction each beside the group-commit writer;
//! - audit append throughput with the hash chain (sequential and concurrent through the batching
//!   writer) beside a raw single-row INSERT loop on the same database in the same run;
//! - and, as their own suites: list pages at size (`lists`), minutes of mixed traffic (`load`),
//!   a year of data (`year`), sandbox and router costs, the orchestrator on Temporal.
//!
//! Run it in release mode: `cargo run --release -p carapulse-bench -- --help`.

mod approvals;
mod blast;
mod events;
mod lists;
mod load;
mod replay;
mod review;
mod stack;
mod year;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;

use carapulse_core::audit::{AuditActor, AuditDecision, AuditEntry, AuditWriter};
use carapulse_core::auth::{mint_dev_token, DevTokenRequest};
use carapulse_core::model::TenantId;
use carapulse_core::policy::PolicyEngine;
use carapulse_core::testing::{policies_dir, TestDatabase, TEST_JWT_SECRET};

/// Signs execution grants in the benchmark stacks (the orchestrator mints, the router checks).
pub(crate) const TEST_GRANT_KEY: &str = "test-grant-key-0123456789abcdef0123456789";

#[derive(Debug, Parser)]
#[command(name = "carapulse-bench", version, about = "Carapulse benchmarks")]
struct Args {
    /// Analysis-sample verdicts to time.
    #[arg(long, default_value_t = 20_000)]
    verdict_iterations: usize,
    /// Policy decisions to time.
    #[arg(long, default_value_t = 20_000)]
    policy_iterations: usize,
    /// Plans to create over HTTP.
    #[arg(long, default_value_t = 4_000)]
    plans: usize,
    /// Concurrent HTTP clients for plan creation; one measurement per value.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 32, 128])]
    concurrency: Vec<usize>,
    /// Tenants the plan clients spread over; one measurement per value and concurrency.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 32])]
    plan_tenants: Vec<usize>,
    /// Approval decisions per approvals measurement (c=32, before and after group commit).
    #[arg(long, default_value_t = 3_000)]
    approvals: usize,
    /// Audit events per audit measurement.
    #[arg(long, default_value_t = 5_000)]
    audit_events: usize,
    /// Runs per sandbox measurement.
    #[arg(long, default_value_t = 300)]
    sandbox_runs: usize,
    /// Requests per what-if row of the `review` suite.
    #[arg(long, default_value_t = 1_000)]
    whatif_requests: usize,
    /// Stored decisions the `review` suite's policy impact row re-evaluates (0: no impact row).
    #[arg(long, default_value_t = 100_000)]
    impact_decisions: usize,
    /// The sandbox-exec binary for the helper rows (default: beside this binary or on PATH).
    #[arg(long)]
    sandbox_helper: Option<std::path::PathBuf>,
    /// Print rows as JSON lines instead of the table (how `tools` reads the `sandbox` suite).
    #[arg(long)]
    rows_json: bool,
    /// Router round trips to time.
    #[arg(long, default_value_t = 500)]
    router_calls: usize,
    /// Plans run through Temporal for the orchestrator figures.
    #[arg(long, default_value_t = 50)]
    workflow_runs: usize,
    /// Temporal dev server for the orchestrator suite.
    #[arg(long, default_value = "127.0.0.1:7233")]
    temporal: String,
    /// Alertmanager webhook requests (100 alerts each) for the ingestion figure.
    #[arg(long, default_value_t = 400)]
    webhooks: usize,
    /// Concurrent SSE subscribers for the fan-out figure.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Events published for the fan-out figure.
    #[arg(long, default_value_t = 30)]
    fanout_events: usize,
    /// Which suites to run: core (verdicts, policy, plans, audit), verify (verdicts only), policy (compiled vs interpreted decisions), tools (sandbox, router), orchestrator,
    /// events (alert ingestion, SSE fan-out), all of those, lists (list pages at 10k and
    /// --list-rows rows; not part of all), or load (minutes of mixed traffic against the gateway
    /// binary; not part of all), or year (a year of data: lists, audit verify and export, SSE
    /// resume, then the load mix on two gateways and two workers; not part of all), review
    /// (what-if and policy impact), blast (blast radius on a 1,000-service graph) or replay
    /// (incident replay of 500 alert events); the last three not part of all.
    #[arg(long, default_value = "all", value_parser = ["all", "core", "verify", "policy", "tools", "sandbox", "orchestrator", "events", "lists", "load", "year", "review", "blast", "replay"])]
    suite: String,
    /// Rows per table of the large tenant in the lists suite (the small one has 10,000).
    #[arg(long, default_value_t = 1_000_000)]
    list_rows: usize,
    /// Requests timed per list figure.
    #[arg(long, default_value_t = 200)]
    list_samples: usize,
    /// Length of the load run.
    #[arg(long, default_value_t = 600)]
    load_secs: u64,
    /// Warm-up before memory growth is measured.
    #[arg(long, default_value_t = 60)]
    load_warmup_secs: u64,
    /// Concurrent request loops of the load run.
    #[arg(long, default_value_t = 16)]
    load_workers: usize,
    /// SSE subscribers kept open during the load run.
    #[arg(long, default_value_t = 50)]
    load_subscribers: usize,
    /// Seconds between load samples.
    #[arg(long, default_value_t = 30)]
    load_sample_secs: u64,
    /// Volume of the year suite: 1.0 is 1M plans, 10M audit events, 5M alerts, 1M change events.
    #[arg(long, default_value_t = 1.0)]
    year_scale: f64,
    /// Database the year suite seeds once and keeps (later runs reuse it); default: a fresh one,
    /// dropped at the end.
    #[arg(long)]
    year_database: Option<String>,
}

struct Row {
    what: String,
    figure: String,
}

/// A gateway on `db` without rate limits (benches measure the server, not the limiter): its
/// base URL, its shutdown token and the serving task.
async fn spawn_gateway(
    db: &TestDatabase,
) -> anyhow::Result<(
    String,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    spawn_gateway_with(db, |_| {}).await
}

/// [`spawn_gateway`] with further settings of the bench's own.
async fn spawn_gateway_with(
    db: &TestDatabase,
    tweak: impl FnOnce(&mut carapulse_core::config::Config),
) -> anyhow::Result<(
    String,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let mut config = db.config();
    config.gateway.rate_limit_per_second = 1e9;
    config.gateway.rate_limit_burst = u32::MAX;
    tweak(&mut config);
    let app = gateway::Application::build(config).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    Ok((base, shutdown, tokio::spawn(app.run_until_stopped())))
}

/// A row of the median and p99 of `samples`.
fn latency_row(what: String, mut samples: Vec<Duration>) -> Row {
    samples.sort();
    Row {
        what,
        figure: format!(
            "median {}, p99 {}",
            millis(percentile(&samples, 0.5)),
            millis(percentile(&samples, 0.99))
        ),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn bench_policy(iterations: usize, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let engine = PolicyEngine::load_dir(Path::new(&policies_dir()), "policy.assistant.v1")?;
    anyhow::ensure!(
        engine.is_compiled(),
        "the project policies did not compile to RVM"
    );
    let inputs = [
        json!({"actor": {"id": "a", "roles": ["viewer"], "tenant_id": "t"}, "action": {"name": "plan.list", "type": "read"}, "context": {"tenant_id": "t"}, "risk": {"level": "read", "blast_radius": "namespace", "targets": 0}}),
        json!({"actor": {"id": "a", "roles": ["operator"], "tenant_id": "t"}, "action": {"name": "plan.create", "type": "write"}, "context": {"tenant_id": "t", "environment": "dev"}, "risk": {"level": "low", "blast_radius": "namespace", "targets": 1}}),
        json!({"actor": {"id": "a", "roles": ["operator"], "tenant_id": "t"}, "action": {"name": "plan.create", "type": "write"}, "context": {"tenant_id": "t", "environment": "prod"}, "risk": {"level": "high", "blast_radius": "cluster", "targets": 4}}),
    ];
    for input in &inputs {
        let _ = engine.evaluate_json(input);
        let _ = engine.evaluate_interpreted_json(input);
    }
    // The compiled path alone, decision after decision, as the gateway runs it: the interleaved
    // loop below evicts the VM's working set from the caches on every interpreter call.
    let mut alone = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let input = &inputs[i % inputs.len()];
        let t = Instant::now();
        let out = engine.evaluate_json(input);
        alone.push(t.elapsed());
        anyhow::ensure!(out.error.is_none(), "policy error: {:?}", out.error);
    }
    alone.sort();
    rows.push(Row {
        what: format!("policy decision, compiled RVM back to back ({iterations} evaluations)"),
        figure: format!(
            "median {}, p99 {}",
            micros(percentile(&alone, 0.5)),
            micros(percentile(&alone, 0.99)),
        ),
    });
    // Both paths interleaved in one loop, so load affects them alike.
    let mut compiled = Vec::with_capacity(iterations);
    let mut interpreted = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let input = &inputs[i % inputs.len()];
        let t = Instant::now();
        let out = engine.evaluate_json(input);
        compiled.push(t.elapsed());
        anyhow::ensure!(out.error.is_none(), "policy error: {:?}", out.error);
        let t = Instant::now();
        let out = engine.evaluate_interpreted_json(input);
        interpreted.push(t.elapsed());
        anyhow::ensure!(out.error.is_none(), "policy error: {:?}", out.error);
    }
    for (label, samples) in [
        (
            "compiled RVM, interleaved with the interpreter",
            &mut compiled,
        ),
        ("interpreter, the playground's path", &mut interpreted),
    ] {
        samples.sort();
        rows.push(Row {
            what: format!("policy decision, {label} ({iterations} evaluations)"),
            figure: format!(
                "median {}, p99 {}",
                micros(percentile(samples, 0.5)),
                micros(percentile(samples, 0.99)),
            ),
        });
    }
    Ok(())
}

async fn bench_plans(
    db: &TestDatabase,
    plans: usize,
    concurrency: usize,
    tenants: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let (base, shutdown, server) = spawn_gateway(db).await?;
    let url = format!("{base}/v1/plans");
    let roles = vec!["operator".to_owned()];
    // Client i creates plans in tenant i mod `tenants` (each tenant has its own audit chain).
    let tokens = (0..tenants.max(1))
        .map(|t| {
            mint_dev_token(&DevTokenRequest {
                secret: TEST_JWT_SECRET,
                issuer: "carapulse-dev",
                audience: None,
                subject: "bench",
                tenant: &format!("bench-{concurrency}-{t}"),
                roles: &roles,
                email: None,
                ttl_secs: 3600,
                tenant_claim: "tenant_id",
                roles_claim: "groups",
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let token = tokens[0].clone();
    let body = json!({
        "summary": "Scale web to 3 replicas",
        "context": {"environment": "staging", "namespace": "web"},
        "steps": [
            {"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "replicas": 3, "namespace": "web"},
             "rollback": {"tool": "kubectl", "action": "scale", "input": {"resource": "deployment/web", "replicas": 2, "namespace": "web"}}},
            {"stage": "verify", "tool": "prometheus", "action": "query", "input": {"query": "up{job=\"web\"}"}}
        ]
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    // Warm-up: connections, pool, policy engine.
    for _ in 0..50 {
        let r = http
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(r.status().as_u16() == 201, "warm-up got {}", r.status());
    }
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(plans));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..concurrency {
        let http = http.clone();
        let url = url.clone();
        let token = tokens[client % tokens.len()].clone();
        let body = body.clone();
        let remaining = remaining.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            while remaining
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                let t = Instant::now();
                match http.post(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 201 => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::with_capacity(plans);
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort();
    rows.push(Row {
        what: format!(
            "POST /v1/plans, concurrency {concurrency}, {tenants} tenant(s), {plans} plans (2 steps each)"
        ),
        figure: format!(
            "{:.0} plans/s, p50 {}, p99 {}, errors {errors}",
            all.len() as f64 / elapsed.as_secs_f64(),
            millis(percentile(&all, 0.5)),
            millis(percentile(&all, 0.99)),
        ),
    });
    shutdown.cancel();
    let _ = server.await;
    Ok(())
}

fn entry(tenant: &TenantId, i: usize) -> AuditEntry {
    AuditEntry::new(
        tenant.clone(),
        AuditActor::system(),
        "bench.append",
        AuditDecision::Info,
    )
    .resource("bench", i)
    .context(json!({"i": i, "note": "benchmark event"}))
}

async fn bench_audit(db: &TestDatabase, n: usize, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let pool = db.store.pool().clone();
    sqlx::query("CREATE TABLE bench_raw (id UUID PRIMARY KEY, tenant_id TEXT NOT NULL, action TEXT NOT NULL, context_json JSONB NOT NULL, occurred_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .execute(&pool)
        .await?;
    // Raw: one autocommit INSERT per row, one at a time.
    let t = Instant::now();
    for i in 0..n {
        sqlx::query(
            "INSERT INTO bench_raw (id, tenant_id, action, context_json) VALUES ($1, $2, $3, $4)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind("bench")
        .bind("bench.append")
        .bind(json!({"i": i, "note": "benchmark event"}))
        .execute(&pool)
        .await?;
    }
    let raw = n as f64 / t.elapsed().as_secs_f64();

    // Chained, one at a time (each its own transaction with the head lock).
    let tenant = TenantId::parse("bench-seq")?;
    let t = Instant::now();
    for i in 0..n {
        let mut tx = pool.begin().await?;
        carapulse_core::audit::append_in_tx(&mut tx, entry(&tenant, i)).await?;
        tx.commit().await?;
    }
    let chained_seq = n as f64 / t.elapsed().as_secs_f64();

    // Raw, 32 concurrent writers.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(32) {
                sqlx::query("INSERT INTO bench_raw (id, tenant_id, action, context_json) VALUES ($1, $2, $3, $4)")
                    .bind(uuid::Uuid::now_v7())
                    .bind("bench")
                    .bind("bench.append")
                    .bind(json!({"i": i}))
                    .execute(&pool)
                    .await?;
            }
            Ok::<_, sqlx::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let raw_conc = n as f64 / t.elapsed().as_secs_f64();

    // Chained, 32 concurrent writers through the batching writer.
    let writer = AuditWriter::spawn(db.store.clone());
    let tenant = TenantId::parse("bench-batch")?;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let writer = writer.clone();
        let tenant = tenant.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(32) {
                writer.append(entry(&tenant, i)).await?;
            }
            Ok::<_, carapulse_core::audit::AuditError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let chained_batch = n as f64 / t.elapsed().as_secs_f64();
    let report = carapulse_core::audit::verify_chain(&db.store, &tenant).await?;
    anyhow::ensure!(
        report.ok && report.events_checked == n as i64,
        "chain broken: {report:?}"
    );
    rows.push(Row {
        what: format!("raw single-row INSERT, sequential ({n} rows)"),
        figure: format!("{raw:.0} rows/s"),
    });
    rows.push(Row {
        what: "audit append with chain, sequential (own tx each)".into(),
        figure: format!(
            "{chained_seq:.0} events/s (ratio to raw {:.2})",
            chained_seq / raw
        ),
    });
    rows.push(Row {
        what: "raw single-row INSERT, 32 concurrent writers".into(),
        figure: format!("{raw_conc:.0} rows/s"),
    });
    rows.push(Row {
        what: "audit append with chain, 32 concurrent via batching writer".into(),
        figure: format!(
            "{chained_batch:.0} events/s (ratio to raw concurrent {:.2}); chain verified",
            chained_batch / raw_conc
        ),
    });
    Ok(())
}

/// `runs` timed calls of `f`, back to back; the samples sorted.
fn time_runs(runs: usize, f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Vec<Duration>> {
    time_runs_paced(runs, Duration::ZERO, f)
}

/// [`time_runs`] with `gap` (not timed) after each run: calls arriving at a rate, not back to
/// back, so work a call leaves for later (a warm helper's preparation, the kernel's teardown of
/// the last sandbox's namespaces) happens between calls, as in a router that is not saturated.
fn time_runs_paced(
    runs: usize,
    gap: Duration,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed());
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
    }
    samples.sort();
    Ok(samples)
}

/// Busy time of all cores since boot, in milliseconds (`/proc/stat`: user, nice, system, irq,
/// softirq and steal ticks; 100 ticks a second).
fn busy_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|line| {
                line.split_whitespace()
                    .skip(1)
                    .enumerate()
                    .filter(|(i, _)| ![3, 4].contains(i))
                    .take(6)
                    .filter_map(|(_, v)| v.parse::<f64>().ok())
                    .sum::<f64>()
            })
        })
        .map_or(0.0, |ticks| ticks * 10.0)
}

/// This process's resident memory, in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Sandbox spawn cost against the caller's size: bare spawn, the sandbox built in this process
/// (`sandbox_exec::run`, which forks it) and through the `sandbox-exec` helper (what the router
/// does), at this process's own size and with 150 MiB and 1 GiB of touched ballast. Run it in a
/// fresh process (`--suite sandbox`; `tools` and `all` start one).
fn bench_sandbox(runs: usize, helper: Option<&Path>, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use std::process::{Command, Stdio};
    let redactor = carapulse_core::redact::Redactor::default();
    let policy = sandbox_exec::SandboxPolicy::default();
    let helper = match helper {
        Some(path) => sandbox_exec::Helper::new(path),
        None => sandbox_exec::Helper::locate().ok_or_else(|| {
            anyhow::anyhow!("no sandbox-exec binary beside carapulse-bench or on PATH (build it: cargo build --release -p sandbox-exec)")
        })?,
    };
    let true_argv = vec!["/bin/true".to_owned()];
    let bare_true = || -> anyhow::Result<()> {
        let status = Command::new("/bin/true").stdin(Stdio::null()).status()?;
        anyhow::ensure!(status.success());
        Ok(())
    };
    let mut ballast: Vec<Vec<u8>> = Vec::new();
    for extra_mib in [0usize, 150, 1024] {
        let have: usize = ballast.iter().map(Vec::len).sum::<usize>() >> 20;
        if extra_mib > have {
            // Touched, so it is resident and a fork has to copy its page tables.
            ballast.push(vec![1u8; (extra_mib - have) << 20]);
        }
        let rss = rss_mib();
        let bare = time_runs(runs, bare_true)?;
        // Forking a large parent is slow: fewer in-process runs there.
        let in_process = time_runs(if extra_mib == 0 { runs } else { runs.min(40) }, || {
            let report = sandbox_exec::run(&true_argv, &policy, &redactor, None)?;
            anyhow::ensure!(report.succeeded(), "{report:?}");
            Ok(())
        })?;
        let busy_before = busy_cpu_ms();
        let mut built_ahead = 0usize;
        let helped = time_runs(runs, || {
            let report = helper.run(&true_argv, &policy, &redactor, None)?;
            anyhow::ensure!(report.succeeded(), "{report:?}");
            built_ahead += usize::from(report.built_ahead);
            Ok(())
        })?;
        // All cores' busy time over the helper runs (the helpers' preparation, the kernel's
        // teardown of namespaces, this process): what a call costs the machine, beside its
        // latency.
        let cpu_per_call = (busy_cpu_ms() - busy_before) / runs as f64;
        let overhead =
            |d: &[Duration]| millis(percentile(d, 0.5).saturating_sub(percentile(&bare, 0.5)));
        rows.push(Row {
            what: format!("spawn /bin/true sandboxed, parent RSS {rss:.0} MiB ({runs} runs)"),
            figure: format!(
                "bare median {}; in-process sandbox median {} (overhead {}); helper median {} p99 {} (overhead {}; {built_ahead}/{runs} built ahead; {cpu_per_call:.2} ms of CPU per call, all cores)",
                millis(percentile(&bare, 0.5)),
                millis(percentile(&in_process, 0.5)),
                overhead(&in_process),
                millis(percentile(&helped, 0.5)),
                millis(percentile(&helped, 0.99)),
                overhead(&helped),
            ),
        });
    }
    drop(ballast);
    // The same call arriving 20 ms apart (50 calls/s): what a router that is not saturated sees.
    let gap = Duration::from_millis(20);
    let bare = time_runs_paced(runs, gap, bare_true)?;
    let helped = time_runs_paced(runs, gap, || {
        let report = helper.run(&true_argv, &policy, &redactor, None)?;
        anyhow::ensure!(report.succeeded(), "{report:?}");
        Ok(())
    })?;
    rows.push(Row {
        what: format!(
            "spawn /bin/true sandboxed, calls 20 ms apart, parent RSS {:.0} MiB ({runs} runs)",
            rss_mib()
        ),
        figure: format!(
            "bare median {}; helper median {} p99 {} (overhead {})",
            millis(percentile(&bare, 0.5)),
            millis(percentile(&helped, 0.5)),
            millis(percentile(&helped, 0.99)),
            millis(percentile(&helped, 0.5).saturating_sub(percentile(&bare, 0.5))),
        ),
    });
    let mb: Vec<String> = ["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' 'a'"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let bare = time_runs(runs, || {
        let out = Command::new(&mb[0])
            .args(&mb[1..])
            .stdin(Stdio::null())
            .output()?;
        anyhow::ensure!(out.status.success());
        Ok(())
    })?;
    let helped = time_runs(runs, || {
        let report = helper.run(&mb, &policy, &redactor, None)?;
        anyhow::ensure!(report.succeeded(), "{report:?}");
        Ok(())
    })?;
    rows.push(Row {
        what: format!("spawn a 1 MiB-output command: bare vs helper ({runs} runs)"),
        figure: format!(
            "bare median {} p99 {}; helper median {} p99 {} (overhead {})",
            millis(percentile(&bare, 0.5)),
            millis(percentile(&bare, 0.99)),
            millis(percentile(&helped, 0.5)),
            millis(percentile(&helped, 0.99)),
            millis(percentile(&helped, 0.5).saturating_sub(percentile(&bare, 0.5))),
        ),
    });
    Ok(())
}

/// Runs `--suite sandbox` in a fresh process (so the figures do not depend on what this one
/// allocated before) and adds its rows.
fn bench_sandbox_in_own_process(runs: usize, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["--suite", "sandbox", "--rows-json", "--sandbox-runs"])
        .arg(runs.to_string())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "sandbox suite failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Ok(row) = serde_json::from_str::<serde_json::Value>(line) {
            if let (Some(what), Some(figure)) = (row["what"].as_str(), row["figure"].as_str()) {
                rows.push(Row {
                    what: what.to_owned(),
                    figure: figure.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// A keep-alive HTTP server answering every request with a tiny Prometheus-style body.
fn tiny_http_server() -> anyhow::Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(match conn.try_clone() {
                    Ok(c) => c,
                    Err(_) => return,
                });
                let mut writer = conn;
                loop {
                    let mut line = String::new();
                    let mut saw_request = false;
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" && saw_request => break,
                            Ok(_) => saw_request = true,
                        }
                    }
                    let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
                    // One write per response: two small writes would meet Nagle + delayed ACK.
                    let response = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    if writer.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(format!("http://{addr}"))
}

async fn bench_router(calls: usize, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let objects =
        std::env::temp_dir().join(format!("carapulse-bench-objects-{}", std::process::id()));
    let mut config = carapulse_core::config::Config::default();
    config.tool_router.http_addr = "127.0.0.1:0".into();
    config.tool_router.auth_token = Some("bench-token-0123456789".into());
    config.tool_router.grant_key = Some(TEST_GRANT_KEY.into());
    config.policy.policy_dir = policies_dir();
    config.storage.object_store.fs_root = objects.to_string_lossy().into_owned();
    config.connectors.prometheus.addr = Some(tiny_http_server()?);
    let app = tool_router::Application::build(config).await?;
    let url = format!("http://127.0.0.1:{}/v1/tools/execute", app.port());
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    // kubectl get with an unreachable cluster: the full validate -> sandbox -> kubectl path, a read.
    let cli = json!({"tool_name": "kubectl", "action": "get", "input": {"resource": "pods", "namespace": "web"},
                      "context": {"tenant_id": "bench"}});
    let api = json!({"tool_name": "prometheus", "action": "query", "input": {"query": "up"},
                      "context": {"tenant_id": "bench"}});
    for (label, body) in [
        ("kubectl get through the sandbox (CLI path)", cli),
        (
            "prometheus query against a local HTTP server (API path)",
            api,
        ),
    ] {
        let mut samples = Vec::with_capacity(calls);
        for i in 0..calls + 10 {
            let t = Instant::now();
            let resp = http
                .post(&url)
                .bearer_auth("bench-token-0123456789")
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(
                resp.status().is_success(),
                "router answered {}",
                resp.status()
            );
            let _ = resp.bytes().await?;
            if i >= 10 {
                samples.push(t.elapsed());
            }
        }
        rows.push(latency_row(
            format!("router round trip, {label} ({calls} calls)"),
            samples,
        ));
    }
    shutdown.cancel();
    std::fs::remove_dir_all(&objects).ok();
    Ok(())
}

/// Execute -> workflow started, and a 3-step plan's end-to-end time, on a Temporal dev server with
/// the real gateway, tool router (fake `helm` on PATH) and worker.
/// The cost of judging one analysis sample as the orchestrator does it: parse the step's
/// expectations and evaluate them over a Prometheus answer of 20 series (one absolute bound over
/// every series, one relative to a captured baseline).
fn bench_verdicts(iterations: usize, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use carapulse_core::model::{ActionName, StepId, ToolName};
    use carapulse_core::pev::{CallChecks, CallKind, StepCall};
    let series: Vec<serde_json::Value> = (0..20)
        .map(|i| json!({"metric": {"pod": format!("web-{i}"), "service": "web"}, "value": [1_700_000_000.0, format!("0.0{}", i % 5)]}))
        .collect();
    let answer = json!({"status": "success", "data": {"resultType": "vector", "result": series}});
    let call = StepCall {
        step_id: StepId::new(),
        ordinal: 2,
        kind: CallKind::Verify,
        tool: ToolName::Prometheus,
        action: ActionName::parse("query")?,
        input: json!({"query": "error_ratio"}),
        checks: CallChecks {
            expect: vec![
                json!({"path": ".data.result[*].value[1]", "op": "<=", "value": 0.05}),
                json!({"path": ".data.result[*].value[1]", "op": "<=", "baseline": "before", "factor": 1.5, "any": true}),
            ],
            captured: [("before".to_owned(), json!("0.04"))].into(),
            ..CallChecks::default()
        },
    };
    for _ in 0..100 {
        std::hint::black_box(orchestrator::observe::judge(&call, Some(&answer)));
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        let judged = orchestrator::observe::judge(std::hint::black_box(&call), Some(&answer));
        samples.push(t.elapsed());
        anyhow::ensure!(
            judged.verdict == carapulse_core::verify::Verdict::Passed,
            "unexpected verdict: {}",
            judged.reason
        );
    }
    samples.sort();
    rows.push(Row {
        what: format!(
            "verdict of one analysis sample (2 expectations x 20 series, {iterations} runs)"
        ),
        figure: format!(
            "median {}, p99 {} (target under 50 µs)",
            micros(percentile(&samples, 0.5)),
            micros(percentile(&samples, 0.99))
        ),
    });
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

async fn bench_orchestrator(
    temporal: &str,
    runs: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        std::net::TcpStream::connect(temporal).is_ok(),
        "no Temporal server at {temporal}"
    );
    let fakes = std::env::temp_dir().join(format!("carapulse-bench-fakes-{}", std::process::id()));
    std::fs::create_dir_all(&fakes)?;
    {
        use std::os::unix::fs::PermissionsExt;
        let helm = fakes.join("helm");
        // JSON reads answer a deployed release at revision 2, for the analysis figure.
        std::fs::write(
            &helm,
            "#!/bin/sh\ncase \"$*\" in *--output=json*) echo '{\"version\":2,\"info\":{\"status\":\"deployed\"}}'; exit 0;; esac\necho \"helm ok: $*\"\n",
        )?;
        std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755))?;
    }
    let path = std::env::var("PATH").unwrap_or_default();
    // SAFETY: set before the router (the only reader) starts.
    unsafe { std::env::set_var("PATH", format!("{}:{path}", fakes.display())) };
    let db = TestDatabase::create().await;
    let mut config = db.config();
    config.gateway.rate_limit_per_second = 1e9;
    config.gateway.rate_limit_burst = u32::MAX;
    config.tool_router.http_addr = "127.0.0.1:0".into();
    config.tool_router.auth_token = Some("bench-token-0123456789".into());
    config.tool_router.grant_key = Some(TEST_GRANT_KEY.into());
    config.storage.object_store.fs_root = fakes.join("objects").to_string_lossy().into_owned();
    let router = tool_router::Application::build(config.clone()).await?;
    config.tool_router.base_url = Some(format!("http://127.0.0.1:{}", router.port()));
    tokio::spawn(router.run_until_stopped());
    config.orchestrator.temporal_addr = Some(temporal.to_owned());
    config.orchestrator.task_queue = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker_config = config.clone();
    let worker_store = db.store.clone();
    let worker = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let stop = async move {
                let _ = stop_rx.await;
            };
            if let Err(e) = orchestrator::worker::run(&worker_config, worker_store, stop).await {
                eprintln!("worker: {e}");
            }
        });
    });
    let gateway = gateway::Application::build(config.clone()).await?;
    let base = format!("http://127.0.0.1:{}", gateway.port());
    let shutdown = gateway.shutdown_token();
    tokio::spawn(gateway.run_until_stopped());
    let roles = vec!["operator".to_owned()];
    let token = mint_dev_token(&DevTokenRequest {
        secret: TEST_JWT_SECRET,
        issuer: "carapulse-dev",
        audience: None,
        subject: "bench",
        tenant: "bench",
        roles: &roles,
        email: None,
        ttl_secs: 3600,
        tenant_claim: "tenant_id",
        roles_claim: "groups",
    })?;
    let http = reqwest::Client::new();
    let tenant = carapulse_core::model::TenantId::parse("bench")?;
    // Three read-only helm steps (two act, one verify) against the fake helm.
    let body = json!({
        "summary": "bench three steps",
        "trigger": "manual",
        "context": {"environment": "dev", "namespace": "web"},
        "steps": [
            {"tool": "helm", "action": "status", "input": {"release": "a", "namespace": "web"}},
            {"tool": "helm", "action": "history", "input": {"release": "b", "namespace": "web"}},
            {"stage": "verify", "tool": "helm", "action": "status", "input": {"release": "c", "namespace": "web"}}
        ]
    });
    let run_plan = |body: serde_json::Value| {
        let (http, base, token, store, tenant) = (
            http.clone(),
            base.clone(),
            token.clone(),
            db.store.clone(),
            tenant.clone(),
        );
        async move { run_to_success(&http, &base, &token, &store, &tenant, &body).await }
    };
    let mut start_lat = Vec::new();
    let mut total = Vec::new();
    for i in 0..runs + 3 {
        let (started, elapsed) = run_plan(body.clone()).await?;
        if i >= 3 {
            start_lat.push(started);
            total.push(elapsed);
        }
    }
    start_lat.sort();
    total.sort();
    rows.push(Row {
        what: format!("execute -> workflow started (gateway + Temporal, {runs} runs)"),
        figure: format!(
            "median {}, p95 {}",
            millis(percentile(&start_lat, 0.5)),
            millis(percentile(&start_lat, 0.95))
        ),
    });
    rows.push(Row {
        what: format!("3-step plan end to end (execute -> succeeded, {runs} runs)"),
        figure: format!(
            "median {}, p95 {}",
            millis(percentile(&total, 0.5)),
            millis(percentile(&total, 0.95))
        ),
    });
    // The same plan with its verify step sampled 5 times 1 s apart (durable timers), beside the
    // unsampled plan in the same run: the analysis should cost its 4 s of waiting plus the
    // tool time of 4 more samples, and little else.
    let mut analysed = body.clone();
    analysed["steps"][2]["expect"] = json!([{"path": ".version", "op": ">=", "value": 1}]);
    analysed["steps"][2]["analysis"] = json!({"interval": "1s", "count": 5});
    let mut single = body.clone();
    single["steps"][2]["expect"] = json!([{"path": ".version", "op": ">=", "value": 1}]);
    let analysis_runs = (runs / 10).clamp(3, 10);
    let mut with_analysis = Vec::new();
    let mut one_sample = Vec::new();
    for _ in 0..analysis_runs {
        with_analysis.push(run_plan(analysed.clone()).await?.1);
        one_sample.push(run_plan(single.clone()).await?.1);
    }
    with_analysis.sort();
    one_sample.sort();
    let analysis = percentile(&with_analysis, 0.5);
    let base_run = percentile(&one_sample, 0.5);
    let base_tool = percentile(&total, 0.5) / 3;
    // Expected: the one-sample run, 4 s of waiting, and 4 more samples' tool time.
    let expected = base_run + Duration::from_secs(4) + base_tool * 4;
    let over = analysis.as_secs_f64() / expected.as_secs_f64() - 1.0;
    rows.push(Row {
        what: format!("analysis of 5 samples at 1 s, end to end ({analysis_runs} runs)"),
        figure: format!(
            "median {} vs one-sample run {} + 4 s + 4 x {} tool time = {} ({:+.1} %; target within 10 %)",
            millis(analysis),
            millis(base_run),
            millis(base_tool),
            millis(expected),
            over * 100.0
        ),
    });
    shutdown.cancel();
    let _ = stop_tx.send(());
    let _ = worker.join();
    db.drop_now().await;
    std::fs::remove_dir_all(&fakes).ok();
    Ok(())
}

/// Creates and executes `body` as `token`, waits for success; returns (execute -> workflow
/// started, execute -> succeeded).
async fn run_to_success(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    store: &carapulse_core::store::Store,
    tenant: &carapulse_core::model::TenantId,
    body: &serde_json::Value,
) -> anyhow::Result<(Duration, Duration)> {
    {
        let created: serde_json::Value = http
            .post(format!("{base}/v1/plans"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?
            .json()
            .await?;
        let plan_id = created["plan_id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("create failed: {created}"))?
            .to_owned();
        let t = Instant::now();
        let exec: serde_json::Value = http
            .post(format!("{base}/v1/plans/{plan_id}/execute"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let started = t.elapsed();
        anyhow::ensure!(exec["workflow_id"].is_string(), "not started: {exec}");
        let exec_id = carapulse_core::model::ExecutionId::parse(
            exec["execution_id"].as_str().unwrap_or_default(),
        )?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let e = store.get_execution(tenant, exec_id).await?;
            if !e.status.is_active() {
                anyhow::ensure!(
                    e.status == carapulse_core::model::ExecutionStatus::Succeeded,
                    "run ended {:?}: {:?}",
                    e.status,
                    e.error
                );
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "run did not finish");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok((started, t.elapsed()))
    }
}

fn main() -> anyhow::Result<()> {
    carapulse_core::cli::library_backtraces_off();
    main_async()
}

#[tokio::main]
async fn main_async() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rows = Vec::new();
    let load_before = load_average();
    if args.suite == "all" || args.suite == "orchestrator" {
        bench_orchestrator(&args.temporal, args.workflow_runs, &mut rows).await?;
    }
    let load_settings = load::LoadSettings {
        duration: Duration::from_secs(args.load_secs.max(1)),
        warmup: Duration::from_secs(args.load_warmup_secs),
        workers: args.load_workers.max(1),
        subscribers: args.load_subscribers,
        sample: Duration::from_secs(args.load_sample_secs.max(1)),
    };
    if args.suite == "load" {
        load::run(&load_settings, &mut rows).await?;
    }
    if args.suite == "year" {
        let settings = year::YearSettings {
            scale: args.year_scale,
            samples: args.list_samples,
            database: args.year_database.clone(),
            temporal: args.temporal.clone(),
            load: load_settings,
        };
        year::run(&settings, &mut rows).await?;
    }
    if args.suite == "all" || args.suite == "core" || args.suite == "verify" {
        bench_verdicts(args.verdict_iterations, &mut rows)?;
    }
    if args.suite == "policy" {
        bench_policy(args.policy_iterations, &mut rows)?;
    }
    if args.suite == "all" || args.suite == "core" {
        bench_policy(args.policy_iterations, &mut rows)?;
        let db = TestDatabase::create().await;
        let result = async {
            for &tenants in &args.plan_tenants {
                for &concurrency in &args.concurrency {
                    bench_plans(&db, args.plans, concurrency.max(1), tenants, &mut rows).await?;
                }
            }
            approvals::bench_approvals(&db, args.approvals, 32, &mut rows).await?;
            bench_audit(&db, args.audit_events, &mut rows).await
        }
        .await;
        db.drop_now().await;
        result?;
    }
    if args.suite == "all" || args.suite == "events" {
        let db = TestDatabase::create().await;
        let result = async {
            events::bench_ingest(&db, args.webhooks, 8, &mut rows).await?;
            events::bench_fanout(&db, args.subscribers, args.fanout_events, &mut rows).await
        }
        .await;
        db.drop_now().await;
        result?;
    }
    if args.suite == "review" {
        let db = TestDatabase::create().await;
        let result = review::run(&db, args.whatif_requests, args.impact_decisions, &mut rows).await;
        db.drop_now().await;
        result?;
    }
    if args.suite == "replay" {
        let db = TestDatabase::create().await;
        let result = replay::run(&db, 500, 5, &mut rows).await;
        db.drop_now().await;
        result?;
    }
    if args.suite == "blast" {
        let db = TestDatabase::create().await;
        let result = blast::run(&db, 300, &mut rows).await;
        db.drop_now().await;
        result?;
    }
    if args.suite == "lists" {
        let db = TestDatabase::create().await;
        let result = lists::bench_lists(
            &db,
            args.list_rows.max(20_000),
            args.list_samples,
            &mut rows,
        )
        .await;
        db.drop_now().await;
        result?;
    }
    if args.suite == "sandbox" {
        bench_sandbox(args.sandbox_runs, args.sandbox_helper.as_deref(), &mut rows)?;
    }
    if args.suite == "all" || args.suite == "tools" {
        bench_sandbox_in_own_process(args.sandbox_runs, &mut rows)?;
        bench_router(args.router_calls, &mut rows).await?;
    }
    if args.rows_json {
        for row in &rows {
            println!("{}", json!({"what": row.what, "figure": row.figure}));
        }
        return Ok(());
    }
    let width = rows.iter().map(|r| r.what.len()).max().unwrap_or(10);
    println!("{:<width$}  result", "benchmark");
    println!("{}", "-".repeat(width + 60));
    for row in &rows {
        println!("{:<width$}  {}", row.what, row.figure);
    }
    println!(
        "\nmachine: {} cores, 1-min load average {load_before} before and {} after, profile: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        load_average(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    Ok(())
}
