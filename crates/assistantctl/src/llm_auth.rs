//! `assistantctl llm auth import|login|list`: model credentials in
//! `~/.carapulse/auth-profiles.json` (0600), imported from the Codex CLI, OpenClaw, or given
//! directly. Tokens are never printed.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::json;

use carapulse_core::planner::auth_profiles::{
    default_auth_path, default_codex_auth_path, import_codex_auth, import_openclaw_auth,
    AuthProfile, AuthProfiles,
};

use crate::client::CliError;
use crate::output::{cell, details, table, OutputFormat};
use crate::{LlmAuthCommand, LlmImportArgs};

fn local(e: impl std::fmt::Display) -> CliError {
    CliError::Local(e.to_string())
}

fn target(path: &Option<PathBuf>) -> Result<PathBuf, CliError> {
    match path {
        Some(p) => Ok(p.clone()),
        None => default_auth_path().map_err(local),
    }
}

fn store(
    path: &Path,
    mut profile: AuthProfile,
    profile_id: &Option<String>,
    set_default: bool,
    fmt: OutputFormat,
) -> Result<(), CliError> {
    if let Some(id) = profile_id {
        profile.id = id.clone();
    }
    let mut profiles = AuthProfiles::load(path).map_err(local)?;
    if set_default {
        profiles
            .defaults
            .insert(profile.provider.clone(), profile.id.clone());
    }
    let id = profile.id.clone();
    let provider = profile.provider.clone();
    let expires = profile.expires_at;
    profiles.upsert(profile);
    profiles.save(path).map_err(local)?;
    let out = json!({
        "id": id,
        "provider": provider,
        "expires_at": expires,
        "default": set_default,
        "path": path.display().to_string(),
    });
    if fmt.structured() {
        crate::output::print_value(fmt, &out);
    } else {
        print!(
            "{}",
            details(&[
                ("profile", id),
                ("provider", provider),
                ("expires_at", cell(&out, &["expires_at"])),
                ("default", set_default.to_string()),
                ("file", path.display().to_string()),
            ])
        );
    }
    Ok(())
}

fn import(args: &LlmImportArgs, fmt: OutputFormat) -> Result<(), CliError> {
    let path = target(&args.auth_path)?;
    let profile = if let Some(token) = &args.access_token {
        let expires_at = match &args.expires_at {
            Some(raw) => Some(
                DateTime::parse_from_rfc3339(raw)
                    .map_err(|e| CliError::Usage(format!("--expires-at {raw:?}: {e}")))?
                    .with_timezone(&Utc),
            ),
            None => None,
        };
        AuthProfile {
            id: format!("{}:manual", args.provider),
            provider: args.provider.clone(),
            account_id: args.account_id.clone(),
            access_token: Some(token.trim().to_owned()),
            refresh_token: None,
            expires_at,
            source: "manual".into(),
        }
    } else if let Some(openclaw) = &args.openclaw_auth {
        import_openclaw_auth(openclaw, &args.provider, args.profile_id.as_deref()).map_err(local)?
    } else {
        if args.provider != "openai-codex" {
            return Err(CliError::Usage(
                "without --access-token or --openclaw-auth only the openai-codex provider can be imported (from the Codex CLI)".into(),
            ));
        }
        let source = match &args.codex_auth {
            Some(p) => p.clone(),
            None => default_codex_auth_path().map_err(local)?,
        };
        import_codex_auth(&source).map_err(local)?
    };
    store(&path, profile, &args.profile_id, !args.no_default, fmt)
}

fn login(
    codex_bin: &str,
    codex_auth: &Option<PathBuf>,
    auth_path: &Option<PathBuf>,
    profile_id: &Option<String>,
    no_default: bool,
    fmt: OutputFormat,
) -> Result<(), CliError> {
    let status = std::process::Command::new(codex_bin)
        .arg("login")
        .status()
        .map_err(|e| {
            CliError::Local(format!(
                "cannot run {codex_bin:?} (is the Codex CLI installed and on PATH?): {e}"
            ))
        })?;
    if !status.success() {
        return Err(CliError::Local(format!(
            "`{codex_bin} login` failed ({status})"
        )));
    }
    let source = match codex_auth {
        Some(p) => p.clone(),
        None => default_codex_auth_path().map_err(local)?,
    };
    let profile = import_codex_auth(&source).map_err(local)?;
    store(&target(auth_path)?, profile, profile_id, !no_default, fmt)
}

fn list(auth_path: &Option<PathBuf>, fmt: OutputFormat) -> Result<(), CliError> {
    let path = target(auth_path)?;
    let profiles = AuthProfiles::load(&path).map_err(local)?;
    let now = Utc::now();
    let rows: Vec<serde_json::Value> = profiles
        .profiles
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "provider": p.provider,
                "source": p.source,
                "expires_at": p.expires_at,
                "expired": p.expired(now),
                "default": profiles.defaults.get(&p.provider) == Some(&p.id),
                "has_refresh_token": p.refresh_token.is_some(),
            })
        })
        .collect();
    let doc = json!({"path": path.display().to_string(), "profiles": rows});
    if fmt.structured() {
        crate::output::print_value(fmt, &doc);
    } else {
        let table_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    cell(r, &["id"]),
                    cell(r, &["provider"]),
                    cell(r, &["source"]),
                    cell(r, &["expires_at"]),
                    if r["expired"] == true {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                    if r["default"] == true {
                        "*".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &["PROFILE", "PROVIDER", "SOURCE", "EXPIRES", "EXPIRED", "DEFAULT"],
                &table_rows
            )
        );
    }
    Ok(())
}

pub fn run(cmd: LlmAuthCommand, fmt: OutputFormat) -> Result<(), CliError> {
    match cmd {
        LlmAuthCommand::Import(args) => import(&args, fmt),
        LlmAuthCommand::Login {
            codex_bin,
            codex_auth,
            auth_path,
            profile_id,
            no_default,
        } => login(
            &codex_bin,
            &codex_auth,
            &auth_path,
            &profile_id,
            no_default,
            fmt,
        ),
        LlmAuthCommand::List { auth_path } => list(&auth_path, fmt),
    }
}
