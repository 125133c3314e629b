//! `~/.carapulse/auth-profiles.json`: stored model credentials, and importers for the Codex CLI
//! (`~/.codex/auth.json`) and OpenClaw auth files.
//!
//! The file layout is the reference's (`defaults` map + `profiles` list, `expires_at` as
//! RFC 3339 with the Go zero time meaning "never"), so files written by either tool load in the
//! other. Saves are atomic (temp file + rename) with mode 0600 in a 0700 directory. The Codex
//! importer reads the real CLI layout (`tokens.access_token`, ...) as well as the flat one, and
//! takes the expiry from the token's `exp` claim; OpenClaw numeric expiries above 10^12 are
//! milliseconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Problems with profile files.
#[derive(Debug, thiserror::Error)]
pub enum AuthProfileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {message}")]
    Json { path: PathBuf, message: String },
    #[error("no home directory: set HOME or CARAPULSE_STATE_DIR")]
    NoHome,
    #[error("{0}")]
    Missing(String),
}

/// One stored credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthProfile {
    pub id: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "expiry_from_file"
    )]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub source: String,
}

impl AuthProfile {
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| now > t)
    }
}

/// `0001-01-01T00:00:00Z` (Go's zero time) means "no expiry".
fn expiry_from_file<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw: Option<DateTime<Utc>> = Option::deserialize(d)?;
    Ok(raw.filter(|t| t.timestamp() > 0))
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthProfiles {
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    #[serde(default)]
    pub profiles: Vec<AuthProfile>,
}

/// `$CARAPULSE_STATE_DIR`, else `~/.carapulse`.
pub fn default_state_dir() -> Result<PathBuf, AuthProfileError> {
    if let Some(dir) = std::env::var_os("CARAPULSE_STATE_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or(AuthProfileError::NoHome)?;
    Ok(PathBuf::from(home).join(".carapulse"))
}

/// `<state dir>/auth-profiles.json`.
pub fn default_auth_path() -> Result<PathBuf, AuthProfileError> {
    Ok(default_state_dir()?.join("auth-profiles.json"))
}

/// `$CODEX_HOME/auth.json`, else `~/.codex/auth.json`.
pub fn default_codex_auth_path() -> Result<PathBuf, AuthProfileError> {
    if let Some(dir) = std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir).join("auth.json"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or(AuthProfileError::NoHome)?;
    Ok(PathBuf::from(home).join(".codex").join("auth.json"))
}

fn read_json(path: &Path) -> Result<Option<Value>, AuthProfileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AuthProfileError::Read {
                path: path.into(),
                source,
            })
        }
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| AuthProfileError::Json {
            path: path.into(),
            message: e.to_string(),
        })
}

impl AuthProfiles {
    /// Loads the file; a missing or empty file is an empty set.
    pub fn load(path: &Path) -> Result<Self, AuthProfileError> {
        match read_json(path)? {
            None => Ok(Self::default()),
            Some(v) => serde_json::from_value(v).map_err(|e| AuthProfileError::Json {
                path: path.into(),
                message: e.to_string(),
            }),
        }
    }

    /// Writes the file atomically with mode 0600 (directory 0700).
    pub fn save(&self, path: &Path) -> Result<(), AuthProfileError> {
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let write_err = |source| AuthProfileError::Write {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(write_err)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| AuthProfileError::Json {
            path: path.into(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err)?;
        file.write_all(text.as_bytes()).map_err(write_err)?;
        file.write_all(b"\n").map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    /// Replaces the profile with the same id, or appends it.
    pub fn upsert(&mut self, profile: AuthProfile) {
        match self.profiles.iter_mut().find(|p| p.id == profile.id) {
            Some(existing) => *existing = profile,
            None => self.profiles.push(profile),
        }
    }

    /// The preferred id; else the provider's default; else the first of that provider.
    pub fn select(&self, provider: &str, preferred: Option<&str>) -> Option<&AuthProfile> {
        if let Some(id) = preferred.filter(|s| !s.trim().is_empty()) {
            return self.profiles.iter().find(|p| p.id == id.trim());
        }
        if let Some(id) = self.defaults.get(provider) {
            if let Some(p) = self.profiles.iter().find(|p| &p.id == id) {
                return Some(p);
            }
        }
        self.profiles.iter().find(|p| p.provider == provider)
    }
}

/// The claims of a JWT, without verifying it (only used to read `exp` and the account id).
fn jwt_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn str_at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// An expiry given as RFC 3339 text, Unix seconds, or Unix milliseconds (values above 10^12).
fn expiry_any(v: &Value) -> Option<DateTime<Utc>> {
    let from_number = |n: f64| {
        let secs = if n > 1e12 { n / 1000.0 } else { n };
        Utc.timestamp_opt(secs as i64, 0).single()
    };
    match v {
        Value::Number(n) => n.as_f64().and_then(from_number),
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| s.trim().parse::<f64>().ok().and_then(from_number)),
        _ => None,
    }
    .filter(|t| t.timestamp() > 0)
}

/// Imports the Codex CLI's `auth.json`.
pub fn import_codex_auth(path: &Path) -> Result<AuthProfile, AuthProfileError> {
    let doc = read_json(path)?.ok_or_else(|| {
        AuthProfileError::Missing(format!("{} is missing or empty", path.display()))
    })?;
    let tokens = doc.get("tokens").unwrap_or(&doc);
    let access = str_at(tokens, &["access_token", "accessToken"]).ok_or_else(|| {
        AuthProfileError::Missing(format!(
            "{} holds no access token (log in with `codex login` first)",
            path.display()
        ))
    })?;
    let claims = jwt_claims(access);
    let account_id = str_at(tokens, &["account_id", "accountId"])
        .map(str::to_owned)
        .or_else(|| {
            claims.as_ref().and_then(|c| {
                c.pointer("/https:~1~1api.openai.com~1auth/chatgpt_account_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
        });
    let expires_at = doc.get("expires_at").and_then(expiry_any).or_else(|| {
        claims
            .as_ref()
            .and_then(|c| c.get("exp"))
            .and_then(expiry_any)
    });
    Ok(AuthProfile {
        id: "openai-codex:default".into(),
        provider: "openai-codex".into(),
        account_id,
        access_token: Some(access.to_owned()),
        refresh_token: str_at(tokens, &["refresh_token", "refreshToken"]).map(str::to_owned),
        expires_at,
        source: "codex-auth".into(),
    })
}

/// Imports one profile from an OpenClaw auth file (profiles list, map, `authProfiles`, or a
/// single top-level profile).
pub fn import_openclaw_auth(
    path: &Path,
    provider: &str,
    preferred_id: Option<&str>,
) -> Result<AuthProfile, AuthProfileError> {
    let doc = read_json(path)?.ok_or_else(|| {
        AuthProfileError::Missing(format!("{} is missing or empty", path.display()))
    })?;
    let container = doc
        .get("profiles")
        .or_else(|| doc.get("authProfiles"))
        .cloned();
    let mut candidates: Vec<(Option<String>, Value)> = match container {
        Some(Value::Array(items)) => items.into_iter().map(|v| (None, v)).collect(),
        // Map keys are the ids; sorted so the choice does not depend on hash order.
        Some(Value::Object(map)) => map
            .into_iter()
            .filter(|(_, v)| v.is_object())
            .map(|(k, v)| (Some(k), v))
            .collect(),
        _ => vec![(None, doc.clone())],
    };
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    let provider_of = |v: &Value| str_at(v, &["provider"]).unwrap_or(provider).to_owned();
    let id_of = |key: &Option<String>, v: &Value| {
        key.clone()
            .or_else(|| str_at(v, &["id"]).map(str::to_owned))
            .unwrap_or_else(|| match str_at(v, &["email"]) {
                Some(email) => format!("{}:{email}", provider_of(v)),
                None => format!("{}:default", provider_of(v)),
            })
    };
    let chosen = candidates
        .iter()
        .find(|(key, v)| match preferred_id {
            Some(want) => id_of(key, v) == want,
            None => provider_of(v) == provider,
        })
        .ok_or_else(|| {
            AuthProfileError::Missing(match preferred_id {
                Some(id) => format!("{} has no profile {id:?}", path.display()),
                None => format!("{} has no {provider} profile", path.display()),
            })
        })?;
    let (key, v) = chosen;
    let access = str_at(
        v,
        &["access", "access_token", "accessToken", "key", "token"],
    );
    let refresh = str_at(v, &["refresh", "refresh_token", "refreshToken"]);
    if access.is_none() {
        return Err(AuthProfileError::Missing(format!(
            "profile {} in {} has no access token",
            id_of(key, v),
            path.display()
        )));
    }
    let expires_at = ["expires", "expires_at", "expiresAt"]
        .iter()
        .find_map(|k| v.get(*k).and_then(expiry_any))
        .or_else(|| {
            v.get("expires_in")
                .and_then(Value::as_i64)
                .map(|s| Utc::now() + chrono::Duration::seconds(s))
        });
    Ok(AuthProfile {
        id: id_of(key, v),
        provider: provider_of(v),
        account_id: str_at(v, &["account_id", "accountId"]).map(str::to_owned),
        access_token: access.map(str::to_owned),
        refresh_token: refresh.map(str::to_owned),
        expires_at,
        source: "openclaw-auth".into(),
    })
}

#[cfg(test)]
mod tests;
