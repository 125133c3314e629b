//! `assistantctl import-go --from DSN [--dry-run] [--tenant T]`: imports a Go Carapulse
//! database into the one of `storage.postgres_dsn` (or `--dsn`), with a progress bar on a
//! terminal (a line per kind otherwise) and a final report of what was imported, skipped and
//! changed. The import itself is `carapulse_core::go_import`.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use carapulse_core::config::{Component, Config};
use carapulse_core::go_import::{self, ImportOptions, KindCounts, Progress};
use carapulse_core::model::TenantId;
use carapulse_core::store::Store;

use crate::client::CliError;
use crate::output::{print_value, OutputFormat};
use crate::progress::ProgressBar;
use crate::ImportGoArgs;

/// A bar per kind on a terminal; one line per finished kind otherwise.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn kind_started(&mut self, kind: &str, total: u64) {
        self.0.draw(kind, 0, total, "");
    }

    fn advanced(&mut self, kind: &str, done: u64, total: u64) {
        self.0.draw(kind, done, total, "");
    }

    fn kind_finished(&mut self, kind: &str, c: &KindCounts) {
        self.0.finish(&format!(
            "{kind:<17} {} imported, {} already, {} skipped, {} fixed (of {})",
            c.imported, c.already, c.skipped, c.fixed, c.total
        ));
    }
}

pub async fn run(
    config: Option<&Path>,
    fmt: OutputFormat,
    args: &ImportGoArgs,
) -> Result<(), CliError> {
    let mut cfg = Config::load(config).map_err(|e| CliError::Local(e.to_string()))?;
    if let Some(dsn) = &args.dsn {
        cfg.storage.postgres_dsn = dsn.clone();
    }
    cfg.validate(Component::Cli)
        .map_err(|e| CliError::Local(e.to_string()))?;
    let default_tenant = args
        .tenant
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--tenant: {}", e.message)))?;
    let store = Store::connect_lazy(&cfg.storage).map_err(|e| CliError::Local(e.to_string()))?;
    let go = go_import::connect_source(&args.from)
        .await
        .map_err(|e| CliError::Local(e.to_string()))?;
    let options = ImportOptions {
        default_tenant,
        dry_run: args.dry_run,
        batch_size: args.batch_size.clamp(1, 10_000),
        stop_after_batches: None,
    };
    let mut bar = Bar(ProgressBar::new());
    let report = go_import::import(&go, &store, &options, &mut bar)
        .await
        .map_err(|e| CliError::Local(e.to_string()))?;
    if fmt.structured() {
        print_value(fmt, &json!(report));
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<17} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "KIND", "TOTAL", "IMPORTED", "ALREADY", "SKIPPED", "FIXED"
    );
    for (kind, c) in &report.counts {
        let _ = writeln!(
            out,
            "{kind:<17} {:>8} {:>8} {:>8} {:>8} {:>8}",
            c.total, c.imported, c.already, c.skipped, c.fixed
        );
    }
    for note in &report.skipped {
        let _ = writeln!(out, "skipped {} {}: {}", note.kind, note.go_id, note.reason);
    }
    for note in &report.fixed {
        let _ = writeln!(out, "fixed   {} {}: {}", note.kind, note.go_id, note.reason);
    }
    let _ = writeln!(
        out,
        "{}{} rows imported, {} skipped, {} imported with a change{}",
        if report.dry_run { "dry run: " } else { "" },
        report.imported(),
        report.skipped.len(),
        report.fixed.len(),
        if report.dry_run {
            " (nothing was written)"
        } else {
            ""
        }
    );
    Ok(())
}
