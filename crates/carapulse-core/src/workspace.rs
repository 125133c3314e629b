//! The workspace folder's layout (`storage.workspace_dir`), read by the gateway (loading the
//! library) and the tool router (listing and resolving resources): `playbooks/<name>.yaml|yml|
//! json`, `runbooks/<service>/<name>.md`, `memory/*.json`. Listings are sorted, so every reader
//! sees the same order; unreadable folders list as empty.

use std::path::{Path, PathBuf};

/// Extensions of playbook files.
pub const PLAYBOOK_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];
/// Extensions of runbook files.
pub const RUNBOOK_EXTENSIONS: &[&str] = &["md", "markdown"];

/// The files directly in `dir` with one of `exts`, sorted.
pub fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| exts.contains(&e))
        })
        .collect();
    out.sort();
    out
}

/// The folders directly in `dir` (the runbook services), sorted.
pub fn folders(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// A file's name without its extension ("" when it has none that is UTF-8).
pub fn stem(path: &Path) -> &str {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
}

/// A folder's own name ("" when not UTF-8).
pub fn name(path: &Path) -> &str {
    path.file_name()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
}
