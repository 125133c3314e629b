//! The web UI: three embedded files (`ui/index.html`, `app.js`, `app.css`) served on the UI
//! listener (`gateway.ws_addr`, or `gateway.canvas_addr`) next to the full API, so the pages
//! call the API on their own origin with the same authentication as every other client. The
//! assets hold no data; everything the UI shows comes from authenticated API calls.
//!
//! With `gateway.oidc_issuer` and `oidc_client_id` set, `/ui/config.json` tells the UI to offer
//! single sign-on (authorization code with PKCE, done in the browser), and the CSP lets the page
//! reach the provider's origin (plus `gateway.ui_connect_origins`, for providers whose token
//! endpoint lives on another origin).

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use carapulse_core::config::GatewayConfig;

const INDEX: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

/// Scopes the UI asks the provider for.
const SCOPES: &str = "openid email profile";

/// What the UI needs to know, computed once from the gateway config.
#[derive(Debug)]
struct UiSettings {
    /// Scripts and styles only from this origin, no framing, no inline code: values from the API
    /// are rendered as text, and this keeps it that way even if a bug tried otherwise.
    csp: String,
    config: serde_json::Value,
}

impl UiSettings {
    fn from_config(gw: &GatewayConfig) -> Self {
        let oidc = match (gw.oidc_issuer.as_deref(), gw.oidc_client_id.as_deref()) {
            (Some(issuer), Some(client_id)) if !issuer.is_empty() && !client_id.is_empty() => {
                Some((issuer.to_owned(), client_id.to_owned()))
            }
            _ => None,
        };
        let mut connect = vec!["'self'".to_owned()];
        if let Some(origin) = oidc.as_ref().and_then(|(issuer, _)| origin_of(issuer)) {
            connect.push(origin);
        }
        connect.extend(gw.ui_connect_origins.iter().filter_map(|o| origin_of(o)));
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src {}; \
             img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            connect.join(" ")
        );
        let config = match oidc {
            Some((issuer, client_id)) => {
                json!({"oidc": {"issuer": issuer, "client_id": client_id, "scopes": SCOPES}})
            }
            None => json!({"oidc": null}),
        };
        Self { csp, config }
    }
}

/// `scheme://host[:port]` of a URL; `None` when it is not an http(s) URL (so nothing odd can be
/// spliced into the CSP).
fn origin_of(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

/// Routes of the UI; merged with the API router on the UI listener.
pub fn router<S: Clone + Send + Sync + 'static>(gw: &GatewayConfig) -> Router<S> {
    let settings = Arc::new(UiSettings::from_config(gw));
    let asset = |content_type: &'static str, body: &'static str| {
        let settings = settings.clone();
        get(move || async move { respond(&settings.csp, content_type, body) })
    };
    let config = settings.clone();
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", asset("text/html; charset=utf-8", INDEX))
        .route(
            "/ui/app.js",
            asset("text/javascript; charset=utf-8", APP_JS),
        )
        .route("/ui/app.css", asset("text/css; charset=utf-8", APP_CSS))
        .route(
            "/ui/config.json",
            get(move || async move {
                (
                    [(header::CACHE_CONTROL, "no-cache")],
                    Json(config.config.clone()),
                )
            }),
        )
}

fn respond(csp: &str, content_type: &'static str, body: &'static str) -> Response {
    let mut resp = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            // Assets change with the binary; revalidating is cheap and avoids stale pages.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    if let Ok(value) = header::HeaderValue::from_str(csp) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_names_only_http_origins() {
        let mut gw = GatewayConfig {
            oidc_issuer: Some("https://idp.example.com/realms/sre/".into()),
            oidc_client_id: Some("ui".into()),
            ..Default::default()
        };
        gw.ui_connect_origins = vec![
            "https://oauth2.example.net/token".into(),
            "javascript:alert(1)".into(),
            "not a url; script-src *".into(),
        ];
        let s = UiSettings::from_config(&gw);
        assert!(s
            .csp
            .contains("connect-src 'self' https://idp.example.com https://oauth2.example.net;"));
        assert!(!s.csp.contains("javascript") && !s.csp.contains("script-src *"));
        assert_eq!(s.config["oidc"]["scopes"], SCOPES);
        let plain = UiSettings::from_config(&GatewayConfig::default());
        assert!(plain.csp.contains("connect-src 'self';"));
        assert!(plain.config["oidc"].is_null());
    }
}
