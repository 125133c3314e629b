//! A JWKS cache: fetch on first use, refresh after the TTL, refetch once on an unknown `kid`
//! (rate limited), and keep serving the last good set if a refresh fails.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use tokio::sync::RwLock;

use super::AuthError;

/// Minimum time between two fetches triggered by unknown key ids.
const MIN_REFETCH: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Cached {
    set: JwkSet,
    fetched_at: Instant,
}

#[derive(Debug)]
pub(crate) struct JwksCache {
    url: String,
    ttl: Duration,
    http: reqwest::Client,
    cached: RwLock<Option<Cached>>,
}

impl JwksCache {
    pub(crate) fn new(url: String, ttl: Duration) -> Result<Self, AuthError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| AuthError::Jwks(e.to_string()))?;
        Ok(Self {
            url,
            ttl,
            http,
            cached: RwLock::new(None),
        })
    }

    /// The current key set, fetching if absent or older than the TTL.
    pub(crate) async fn get(&self) -> Result<JwkSet, AuthError> {
        {
            let guard = self.cached.read().await;
            if let Some(c) = guard.as_ref() {
                if c.fetched_at.elapsed() < self.ttl {
                    return Ok(c.set.clone());
                }
            }
        }
        self.refresh(false).await
    }

    /// Refetches; with `on_unknown_kid`, only if the last fetch is older than [`MIN_REFETCH`].
    pub(crate) async fn refresh(&self, on_unknown_kid: bool) -> Result<JwkSet, AuthError> {
        let mut guard = self.cached.write().await;
        if let Some(c) = guard.as_ref() {
            let fresh_enough = if on_unknown_kid {
                c.fetched_at.elapsed() < MIN_REFETCH
            } else {
                c.fetched_at.elapsed() < self.ttl
            };
            if fresh_enough {
                return Ok(c.set.clone());
            }
        }
        match self.fetch().await {
            Ok(set) => {
                *guard = Some(Cached {
                    set: set.clone(),
                    fetched_at: Instant::now(),
                });
                Ok(set)
            }
            Err(err) => match guard.as_ref() {
                Some(c) => {
                    tracing::warn!(error = %err, "JWKS refresh failed; using the cached key set");
                    Ok(c.set.clone())
                }
                None => Err(err),
            },
        }
    }

    async fn fetch(&self) -> Result<JwkSet, AuthError> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| AuthError::Jwks(format!("fetching {}: {e}", self.url)))?;
        if !response.status().is_success() {
            return Err(AuthError::Jwks(format!(
                "fetching {}: HTTP {}",
                self.url,
                response.status()
            )));
        }
        response
            .json::<JwkSet>()
            .await
            .map_err(|e| AuthError::Jwks(format!("decoding {}: {e}", self.url)))
    }
}
