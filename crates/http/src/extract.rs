//! Request extractors that turn every malformed input into a precise JSON error: bodies
//! (syntax, unknown fields, size, content type) and query strings.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; an empty body is an error.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// A JSON body that may be absent (empty), e.g. for `execute`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let is_json = ct.starts_with("application/json") || ct.contains("+json");
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("expected Content-Type: application/json, got {ct:?}"),
            ));
        }
    }
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(inner)
                if inner.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body is larger than gateway.max_body_bytes",
                )
            }
            other => ApiError::bad_request("invalid_body", other.body_text()),
        })
}

/// Parses the body as JSON, refuses unreadable text anywhere in it (see [`crate::text`]), then
/// decodes it into `T`, naming the path of any field that does not fit.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let tree: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("malformed JSON: {e}")))?;
    crate::text::check_value("body", &tree)
        .map_err(|m| ApiError::bad_request("invalid_text", m))?;
    match serde_path_to_error::deserialize(tree) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Err(ApiError::bad_request(
                    "invalid_json",
                    format!("malformed JSON: {inner}"),
                ))
            } else {
                let message = if path == "." {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                };
                Err(ApiError::bad_request("invalid_request", message))
            }
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "invalid_json",
                "request body is empty",
            ));
        }
        decode(&bytes).map(ApiJson)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        // No body, or a JSON `null`, both mean "no options".
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(None));
        }
        decode(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

/// Query-string parameters; a bad value names the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(query) = parts.uri.query() {
            for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
                crate::text::check_text(&format!("query parameter {k:?}"), &v)
                    .and_then(|()| crate::text::check_text("query parameter name", &k))
                    .map_err(|m| ApiError::bad_request("invalid_text", m))?;
            }
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|rejection: QueryRejection| {
                ApiError::bad_request("invalid_query", rejection.body_text())
            })
    }
}
