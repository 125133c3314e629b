//! Profile file round trips and the Codex / OpenClaw importers on realistic files.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn jwt(claims: Value) -> String {
    let enc = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJlc2lnbmF0dXJl",
        enc(&serde_json::json!({"alg": "RS256"})),
        enc(&claims)
    )
}

#[test]
fn save_is_0600_atomic_and_round_trips_go_zero_time() {
    let dir = tempdir();
    let path = dir.join("nested/auth-profiles.json");
    assert_eq!(AuthProfiles::load(&path).unwrap(), AuthProfiles::default());
    let mut set = AuthProfiles::default();
    set.upsert(AuthProfile {
        id: "openai-codex:default".into(),
        provider: "openai-codex".into(),
        account_id: None,
        access_token: Some("tok-1".into()),
        refresh_token: None,
        expires_at: None,
        source: "manual".into(),
    });
    set.defaults
        .insert("openai-codex".into(), "openai-codex:default".into());
    set.save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    assert_eq!(AuthProfiles::load(&path).unwrap(), set);

    // A file written by the Go tool: zero time means no expiry.
    std::fs::write(
        &path,
        r#"{"profiles":[{"id":"a","provider":"openai-codex","access_token":"t","expires_at":"0001-01-01T00:00:00Z","source":"manual"}]}"#,
    )
    .unwrap();
    let loaded = AuthProfiles::load(&path).unwrap();
    assert_eq!(loaded.profiles[0].expires_at, None);
    assert!(!loaded.profiles[0].expired(Utc::now()));

    std::fs::write(&path, "{not json").unwrap();
    assert!(matches!(
        AuthProfiles::load(&path),
        Err(AuthProfileError::Json { .. })
    ));
}

#[test]
fn select_prefers_id_then_default_then_first() {
    let p = |id: &str, provider: &str| AuthProfile {
        id: id.into(),
        provider: provider.into(),
        account_id: None,
        access_token: Some("t".into()),
        refresh_token: None,
        expires_at: None,
        source: "manual".into(),
    };
    let mut set = AuthProfiles::default();
    set.upsert(p("a", "openai-codex"));
    set.upsert(p("b", "openai-codex"));
    set.upsert(p("c", "anthropic"));
    assert_eq!(set.select("openai-codex", None).unwrap().id, "a");
    set.defaults.insert("openai-codex".into(), "b".into());
    assert_eq!(set.select("openai-codex", None).unwrap().id, "b");
    assert_eq!(set.select("openai-codex", Some("c")).unwrap().id, "c");
    assert!(set.select("openai-codex", Some("zzz")).is_none());
    set.upsert(AuthProfile {
        access_token: Some("new".into()),
        ..p("a", "openai-codex")
    });
    assert_eq!(set.profiles.len(), 3);
    assert_eq!(set.profiles[0].access_token.as_deref(), Some("new"));
}

#[test]
fn codex_cli_auth_file_imports() {
    let dir = tempdir();
    let path = dir.join("auth.json");
    let access = jwt(serde_json::json!({
        "exp": 4_102_444_800_i64,
        "https://api.openai.com/auth": {"chatgpt_account_id": "acct-from-jwt"}
    }));
    // The real Codex CLI layout.
    std::fs::write(
        &path,
        serde_json::json!({
            "OPENAI_API_KEY": null,
            "tokens": {"id_token": "x", "access_token": access, "refresh_token": "r-1"},
            "last_refresh": "2026-11-01T00:00:00Z"
        })
        .to_string(),
    )
    .unwrap();
    let p = import_codex_auth(&path).unwrap();
    assert_eq!(p.id, "openai-codex:default");
    assert_eq!(p.access_token.as_deref(), Some(access.as_str()));
    assert_eq!(p.refresh_token.as_deref(), Some("r-1"));
    assert_eq!(p.account_id.as_deref(), Some("acct-from-jwt"));
    assert_eq!(p.expires_at.unwrap().timestamp(), 4_102_444_800);

    // The flat layout with an explicit account id.
    std::fs::write(&path, r#"{"access_token":"opaque","account_id":"acct-1"}"#).unwrap();
    let p = import_codex_auth(&path).unwrap();
    assert_eq!(
        (p.account_id.as_deref(), p.expires_at),
        (Some("acct-1"), None)
    );

    std::fs::write(&path, r#"{"tokens":{}}"#).unwrap();
    assert!(import_codex_auth(&path)
        .unwrap_err()
        .to_string()
        .contains("codex login"));
    assert!(import_codex_auth(&dir.join("missing.json")).is_err());
}

#[test]
fn openclaw_files_import_with_millisecond_expiry() {
    let dir = tempdir();
    let path = dir.join("auth-profiles.json");
    std::fs::write(
        &path,
        r#"{"profiles":{"openai-codex:me@example.com":{"provider":"openai-codex","access":"acc","refresh":"ref","expires":4102444800000},
                        "anthropic:work":{"provider":"anthropic","key":"sk-ant"}}}"#,
    )
    .unwrap();
    let p = import_openclaw_auth(&path, "openai-codex", None).unwrap();
    assert_eq!(p.id, "openai-codex:me@example.com");
    assert_eq!(
        p.expires_at.unwrap().timestamp(),
        4_102_444_800,
        "ms epoch read as ms"
    );
    assert_eq!(p.source, "openclaw-auth");
    let p = import_openclaw_auth(&path, "openai-codex", Some("anthropic:work")).unwrap();
    assert_eq!(p.access_token.as_deref(), Some("sk-ant"));
    assert!(import_openclaw_auth(&path, "openai-codex", Some("nope")).is_err());
    assert!(import_openclaw_auth(&path, "gemini", None).is_err());

    std::fs::write(
        &path,
        r#"{"provider":"openai-codex","accessToken":"a","email":"ops@example.com","expiresAt":"2020-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let p = import_openclaw_auth(&path, "openai-codex", None).unwrap();
    assert_eq!(p.id, "openai-codex:ops@example.com");
    assert!(p.expired(Utc::now()));

    std::fs::write(
        &path,
        r#"{"profiles":[{"provider":"openai-codex","refresh":"only"}]}"#,
    )
    .unwrap();
    assert!(import_openclaw_auth(&path, "openai-codex", None)
        .unwrap_err()
        .to_string()
        .contains("no access token"));
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("carapulse-auth-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
