//! `assistantctl import-go`: reads a Go Carapulse database (its final schema is migrations
//! 0001-0021 of the Go original) and imports its history into this one.
//!
//! Each kind of record is read in pages ordered by its key and written one page per transaction,
//! each row inside its own savepoint, so a row Postgres refuses is reported and the rest of its
//! page still lands. A ledger (`go_import_ledger`: kind, Go id -> new id) commits with each page:
//! a second run imports nothing, and a run killed half way resumes where the last committed page
//! ended. Ids that are UUIDs are kept; others become a stable UUID derived from kind and Go id,
//! so children find their parents without lookups. Go's audit events are appended to each
//! tenant's chain between an `import.go.started` and an `import.go.finished` event, original
//! fields kept under `context.go`, so `audit verify` holds. Imported plans are history: they keep
//! their steps and decisions but can never be executed here (see [`rows`]).
//!
//! Nothing is dropped silently: a row that cannot be imported is reported with its reason; a row
//! imported with a value changed (an unknown status, a missing summary) is reported as fixed.

mod rows;

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Value};
use sqlx::{PgPool, Postgres, Transaction};

use crate::audit::{append_in_tx, AuditActor, AuditDecision, AuditEntry};
use crate::model::TenantId;
use crate::store::{Store, StoreError};

pub use rows::KINDS;

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The tenant of records that name none (Go kept most records without one).
    pub default_tenant: Option<TenantId>,
    /// Read and map everything, write nothing (all in one transaction, rolled back).
    pub dry_run: bool,
    /// Rows per page (one transaction each).
    pub batch_size: i64,
    /// Stop after this many committed pages (tests use it to stand in for a kill).
    pub stop_after_batches: Option<usize>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            default_tenant: None,
            dry_run: false,
            batch_size: 500,
            stop_after_batches: None,
        }
    }
}

/// Counts of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KindCounts {
    /// Rows in the Go database.
    pub total: u64,
    pub imported: u64,
    /// Imported by an earlier run (found in the ledger).
    pub already: u64,
    pub skipped: u64,
    /// Imported with a value changed (see the report's `fixed`).
    pub fixed: u64,
}

/// One row that was not imported, or was imported changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowNote {
    pub kind: &'static str,
    pub go_id: String,
    pub reason: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    pub counts: BTreeMap<&'static str, KindCounts>,
    pub skipped: Vec<RowNote>,
    pub fixed: Vec<RowNote>,
    /// True when the run stopped before the end (`stop_after_batches`).
    pub interrupted: bool,
}

impl ImportReport {
    pub fn imported(&self) -> u64 {
        self.counts.values().map(|c| c.imported).sum()
    }
}

/// Where progress goes (the CLI draws a bar; tests ignore it).
pub trait Progress: Send {
    fn kind_started(&mut self, kind: &str, total: u64);
    fn advanced(&mut self, kind: &str, done: u64, total: u64);
    fn kind_finished(&mut self, kind: &str, counts: &KindCounts);
}

/// Progress nobody watches.
pub struct Silent;

impl Progress for Silent {
    fn kind_started(&mut self, _: &str, _: u64) {}
    fn advanced(&mut self, _: &str, _: u64, _: u64) {}
    fn kind_finished(&mut self, _: &str, _: &KindCounts) {}
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading the Go database: {0}")]
    Source(sqlx::Error),
    #[error("the source is not a Go Carapulse database (migrations 0001-0021): {0}")]
    NotGoSchema(String),
    #[error("writing: {0}")]
    Target(#[from] StoreError),
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> Self {
        Self::Target(e.into())
    }
}

/// Why one row was not imported.
pub(crate) enum RowError {
    /// The row itself is unusable (reported, not ledgered: a later run reports it again).
    Bad(String),
    /// Postgres refused it (reported the same way).
    Db(sqlx::Error),
}

impl From<sqlx::Error> for RowError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

impl From<StoreError> for RowError {
    fn from(e: StoreError) -> Self {
        Self::Bad(e.to_string())
    }
}

/// A row mapped and written: its new id, and what had to be changed.
pub(crate) struct Written {
    pub new_id: String,
    pub fixes: Vec<String>,
}

/// What every row writer may consult.
pub(crate) struct Ctx<'a> {
    pub go: &'a PgPool,
    pub default_tenant: Option<&'a TenantId>,
    /// Tenants whose chains got Go events, with how many, for the closing events.
    pub audited: &'a mut BTreeMap<String, u64>,
}

impl Ctx<'_> {
    /// The tenant a row belongs to: the one it names, else the default.
    pub fn tenant(&self, named: Option<&str>) -> Result<TenantId, RowError> {
        match named.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => TenantId::parse(t)
                .map_err(|e| RowError::Bad(format!("tenant {t:?}: {}", e.message))),
            None => self.default_tenant.cloned().ok_or_else(|| {
                RowError::Bad("names no tenant; give --tenant for such records".into())
            }),
        }
    }
}

/// The importer's own actor in this project's records.
pub fn importer() -> AuditActor {
    AuditActor::person("go-import", None)
}

async fn ledgered(
    tx: &mut Transaction<'_, Postgres>,
    kind: &str,
    ids: &[String],
) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT go_id FROM go_import_ledger WHERE kind = $1 AND go_id = ANY($2)")
            .bind(kind)
            .bind(ids)
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// A small pool on the Go database (the importer reads one page at a time).
pub async fn connect_source(dsn: &str) -> Result<PgPool, ImportError> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(dsn)
        .await
        .map_err(ImportError::Source)
}

/// Imports everything `go` holds into `target`.
pub async fn import(
    go: &PgPool,
    target: &Store,
    options: &ImportOptions,
    progress: &mut dyn Progress,
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport {
        dry_run: options.dry_run,
        ..ImportReport::default()
    };
    for kind in KINDS {
        let (exists,): (Option<String>,) = sqlx::query_as("SELECT to_regclass($1)::text")
            .bind(kind.table)
            .fetch_one(go)
            .await
            .map_err(ImportError::Source)?;
        if exists.is_none() {
            return Err(ImportError::NotGoSchema(format!(
                "it has no table {}",
                kind.table
            )));
        }
    }
    // This project's schema has tables of the same names: Go's keys are text, ours UUIDs.
    let (plan_key,): (Option<String>,) = sqlx::query_as(
        "SELECT data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = 'plans' AND column_name = 'plan_id'",
    )
    .fetch_one(go)
    .await
    .map_err(ImportError::Source)?;
    if plan_key.as_deref() != Some("text") {
        return Err(ImportError::NotGoSchema(format!(
            "plans.plan_id is {}, not text (this looks like a Carapulse database of this version)",
            plan_key.as_deref().unwrap_or("missing")
        )));
    }
    // A dry run is one transaction, rolled back at the end; a real one commits page by page.
    let mut dry: Option<Transaction<'static, Postgres>> = if options.dry_run {
        Some(target.pool().begin().await?)
    } else {
        None
    };
    let mut audited: BTreeMap<String, u64> = BTreeMap::new();
    let mut batches = 0usize;
    'kinds: for kind in KINDS {
        let (total,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {}", kind.table))
            .fetch_one(go)
            .await
            .map_err(ImportError::Source)?;
        let total = u64::try_from(total).unwrap_or(0);
        let mut counts = KindCounts {
            total,
            ..KindCounts::default()
        };
        progress.kind_started(kind.name, total);
        let mut after: Option<String> = None;
        let mut done = 0u64;
        loop {
            let page: Vec<(String, Value)> = sqlx::query_as(&format!(
                "SELECT ({key})::text, row_to_json(t)::jsonb FROM {table} t \
                 WHERE $1::text IS NULL OR ({key})::text > $1 ORDER BY ({key})::text LIMIT $2",
                key = kind.key,
                table = kind.table
            ))
            .bind(after.as_deref())
            .bind(options.batch_size.max(1))
            .fetch_all(go)
            .await
            .map_err(ImportError::Source)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            let mut own: Option<Transaction<'static, Postgres>> = None;
            let tx = match dry.as_mut() {
                Some(outer) => outer,
                None => own.insert(target.pool().begin().await?),
            };
            let ids: Vec<String> = page.iter().map(|(id, _)| id.clone()).collect();
            let seen = ledgered(tx, kind.name, &ids).await?;
            for (go_id, row) in &page {
                done += 1;
                if seen.contains(go_id) {
                    counts.already += 1;
                    continue;
                }
                sqlx::query("SAVEPOINT go_row").execute(&mut **tx).await?;
                let mut ctx = Ctx {
                    go,
                    default_tenant: options.default_tenant.as_ref(),
                    audited: &mut audited,
                };
                let outcome = match (kind.write)(tx, &mut ctx, go_id, row).await {
                    Ok(written) => sqlx::query(
                        "INSERT INTO go_import_ledger (kind, go_id, new_id) VALUES ($1, $2, $3)",
                    )
                    .bind(kind.name)
                    .bind(go_id)
                    .bind(&written.new_id)
                    .execute(&mut **tx)
                    .await
                    .map(|_| written)
                    .map_err(RowError::Db),
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(written) => {
                        sqlx::query("RELEASE SAVEPOINT go_row")
                            .execute(&mut **tx)
                            .await?;
                        counts.imported += 1;
                        if !written.fixes.is_empty() {
                            counts.fixed += 1;
                            report.fixed.push(RowNote {
                                kind: kind.name,
                                go_id: go_id.clone(),
                                reason: written.fixes.join("; "),
                            });
                        }
                    }
                    Err(err) => {
                        sqlx::query("ROLLBACK TO SAVEPOINT go_row")
                            .execute(&mut **tx)
                            .await?;
                        counts.skipped += 1;
                        let reason = match err {
                            RowError::Bad(reason) => reason,
                            RowError::Db(e) => format!("refused by the database: {e}"),
                        };
                        report.skipped.push(RowNote {
                            kind: kind.name,
                            go_id: go_id.clone(),
                            reason,
                        });
                    }
                }
            }
            if let Some(own) = own {
                own.commit().await?;
            }
            batches += 1;
            progress.advanced(kind.name, done, total);
            if options.stop_after_batches.is_some_and(|max| batches >= max) {
                report.interrupted = true;
                report.counts.insert(kind.name, counts);
                break 'kinds;
            }
        }
        progress.kind_finished(kind.name, &counts);
        report.counts.insert(kind.name, counts);
    }
    let mut own: Option<Transaction<'static, Postgres>> = None;
    let tx = match dry.as_mut() {
        Some(outer) => outer,
        None => own.insert(target.pool().begin().await?),
    };
    close_audit_runs(tx, &audited, &report).await?;
    if let Some(own) = own {
        own.commit().await?;
    }
    if let Some(tx) = dry {
        tx.rollback().await?;
    }
    Ok(report)
}

/// Brackets each tenant's imported Go events: the run that imported them is itself audited.
async fn close_audit_runs(
    tx: &mut Transaction<'static, Postgres>,
    audited: &BTreeMap<String, u64>,
    report: &ImportReport,
) -> Result<(), ImportError> {
    for (tenant, events) in audited {
        let Ok(tenant) = TenantId::parse(tenant) else {
            continue;
        };
        let summary: BTreeMap<&str, &KindCounts> =
            report.counts.iter().map(|(k, v)| (*k, v)).collect();
        append_in_tx(
            tx,
            AuditEntry::new(
                tenant,
                importer(),
                "import.go.finished",
                AuditDecision::Info,
            )
            .resource("import", "go")
            .context(json!({
                "go_audit_events": events,
                "counts": summary,
                "skipped": report.skipped.len(),
                "interrupted": report.interrupted,
            })),
        )
        .await?;
    }
    Ok(())
}
