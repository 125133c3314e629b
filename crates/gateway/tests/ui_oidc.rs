//! OIDC sign-in on the web UI in a real browser: a mock identity provider (axum, in this test)
//! serves discovery, the authorization endpoint, a token endpoint that checks the PKCE S256
//! verifier and signs an RS256 ID token with the nonce, and the JWKS. Headless Chromium clicks
//! "Sign in with SSO", goes through the provider and lands on the dashboard, where the gateway
//! accepts the ID token as the bearer token. A provider answer with the wrong nonce is refused.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::Digest;

const CLIENT_ID: &str = "carapulse-ui";

/// What an authorization code was issued for.
struct PendingCode {
    challenge: String,
    nonce: String,
    redirect_uri: String,
}

#[derive(Clone, Default)]
struct Idp {
    issuer: String,
    codes: Arc<Mutex<HashMap<String, PendingCode>>>,
    /// When set, ID tokens carry this nonce instead of the one asked for.
    forged_nonce: Arc<Mutex<Option<String>>>,
    tokens_issued: Arc<Mutex<u32>>,
}

fn cors(resp: impl IntoResponse) -> Response {
    let mut resp = resp.into_response();
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    resp
}

async fn discovery(State(idp): State<Idp>) -> Response {
    cors(Json(json!({
        "issuer": idp.issuer,
        "authorization_endpoint": format!("{}/authorize", idp.issuer),
        "token_endpoint": format!("{}/token", idp.issuer),
        "jwks_uri": format!("{}/jwks.json", idp.issuer),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    })))
}

async fn authorize(State(idp): State<Idp>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code"
        || get("client_id") != CLIENT_ID
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
        || get("nonce").is_empty()
        || !get("scope").split(' ').any(|s| s == "openid")
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("bad authorization request: {q:?}"),
        )
            .into_response();
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    idp.codes.lock().expect("lock").insert(
        code.clone(),
        PendingCode {
            challenge: get("code_challenge"),
            nonce: get("nonce"),
            redirect_uri: get("redirect_uri"),
        },
    );
    let sep = if get("redirect_uri").contains('?') {
        '&'
    } else {
        '?'
    };
    Redirect::to(&format!(
        "{}{sep}code={code}&state={}",
        get("redirect_uri"),
        get("state")
    ))
    .into_response()
}

async fn token(State(idp): State<Idp>, Form(f): Form<HashMap<String, String>>) -> Response {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let Some(PendingCode {
        challenge,
        nonce,
        redirect_uri: redirect,
    }) = idp.codes.lock().expect("lock").remove(&get("code"))
    else {
        return cors((
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        ));
    };
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
    if get("grant_type") != "authorization_code"
        || get("client_id") != CLIENT_ID
        || get("redirect_uri") != redirect
        || computed != challenge
    {
        return cors((
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "invalid_grant", "error_description": "PKCE or redirect mismatch"}),
            ),
        ));
    }
    let nonce = idp
        .forged_nonce
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or(nonce);
    let now = chrono::Utc::now().timestamp();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let claims = json!({"iss": idp.issuer, "aud": CLIENT_ID, "sub": "sso-user", "email": "sso@example.com",
                        "iat": now, "exp": now + 600, "nonce": nonce, "tenant_id": "acme", "groups": ["viewer"]});
    let key = EncodingKey::from_rsa_pem(include_bytes!("fixtures/oidc_rsa.pem")).expect("key");
    let id_token = encode(&header, &claims, &key).expect("sign");
    *idp.tokens_issued.lock().expect("lock") += 1;
    cors(Json(
        json!({"access_token": "opaque", "token_type": "Bearer", "expires_in": 600, "id_token": id_token}),
    ))
}

async fn jwks() -> Response {
    let jwks: Value = serde_json::from_str(include_str!("fixtures/jwks.json")).expect("jwks");
    cors(Json(jwks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_sign_in_through_the_identity_provider() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/browser");
    assert!(
        Path::new(&chromium).exists() && browser_dir.join("node_modules/playwright-core").exists(),
        "chromium or playwright-core missing: run ./scripts/test.sh"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let idp = Idp {
        issuer: issuer.clone(),
        ..Default::default()
    };
    let routes = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/jwks.json", get(jwks))
        .with_state(idp.clone());
    tokio::spawn(async move { axum::serve(listener, routes).await });

    let iss = issuer.clone();
    let app = spawn_app_with(move |c| {
        c.gateway.ws_addr = Some("127.0.0.1:0".into());
        c.gateway.oidc_issuer = Some(iss.clone());
        c.gateway.oidc_client_id = Some(CLIENT_ID.into());
        c.gateway.oidc_jwks_url = Some(format!("{iss}/jwks.json"));
    })
    .await;
    let ui_url = app.ui_url.clone().expect("UI listener");

    // What the UI learns about sign-in, and the CSP that lets it talk to the provider.
    let resp = app
        .http
        .get(format!("{ui_url}/ui/config.json"))
        .send()
        .await
        .expect("config");
    let csp = resp
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let config: Value = resp.json().await.expect("json");
    assert_eq!(config["oidc"]["issuer"], issuer.as_str());
    assert_eq!(config["oidc"]["client_id"], CLIENT_ID);
    let page = app
        .http
        .get(format!("{ui_url}/ui/"))
        .send()
        .await
        .expect("ui");
    let page_csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        page_csp.contains(&format!("connect-src 'self' {issuer}")),
        "{page_csp} / {csp}"
    );

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots/oidc");
    let _ = std::fs::remove_dir_all(&shots);
    let run = |expect: &'static str| {
        let (ui_url, shots, chromium, browser_dir) = (
            ui_url.clone(),
            shots.clone(),
            chromium.clone(),
            browser_dir.clone(),
        );
        async move {
            let out = tokio::process::Command::new("node")
                .arg("oidc.test.mjs")
                .current_dir(&browser_dir)
                .env("UI_URL", &ui_url)
                .env("EXPECT", expect)
                .env("SCREENSHOT_DIR", &shots)
                .env("CHROMIUM", &chromium)
                .kill_on_drop(true)
                .output();
            let out = tokio::time::timeout(std::time::Duration::from_secs(120), out)
                .await
                .expect("browser finished")
                .expect("node runs");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                out.status.success(),
                "{expect}: browser test failed:\n{stdout}\n{stderr}"
            );
            assert!(stdout.contains("all checks passed"), "{stdout}");
        }
    };
    run("signed-in").await;
    assert_eq!(*idp.tokens_issued.lock().expect("lock"), 1);

    // A provider answer whose nonce is not the one the UI sent is refused by the UI.
    *idp.forged_nonce.lock().expect("lock") = Some("someone-elses-nonce".into());
    run("nonce-refused").await;
    app.stop().await;
}
