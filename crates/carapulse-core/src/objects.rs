//! Object storage for evidence blobs, large tool outputs, helm values and audit checkpoints,
//! behind a small async trait with two backends: files under a root directory (`fs`, the
//! default) and any S3-compatible service (`s3`, through the `object_store` crate: signing,
//! retries with backoff, path or virtual-hosted style).
//!
//! Callers address objects by key (`tool-output/<id>.json`); a key is a validated relative path,
//! so it can never name something outside the store. `put` answers a reference to keep in the
//! database (`fs://<key>`, `s3://<bucket>/<key>`), and [`ObjectStore::key_of`] turns such a
//! reference back into a key of the same store (a reference of another store is refused rather
//! than guessed at).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::config::ObjectStoreConfig;

/// Object store failures.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    #[error("invalid object reference {0:?}")]
    InvalidRef(String),
    #[error("object {0} not found")]
    NotFound(String),
    #[error("object store i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("object store: {0}")]
    Backend(String),
    #[error("storage.object_store: {0}")]
    Config(String),
}

/// Where blobs go.
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `key` (replacing what was there); returns the reference to keep.
    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, ObjectError>>;
    /// Reads the object stored under `key`.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, ObjectError>>;
    /// The key a reference returned by this store's `put` names; `None` for anything else.
    fn key_of<'r>(&self, reference: &'r str) -> Option<&'r str>;
    /// Where objects go, for logs and diagnostics (`fs:/var/lib/...`, `s3://bucket`).
    fn describe(&self) -> String;
}

/// Reads a reference returned by `store.put`.
pub async fn get_reference(
    store: &dyn ObjectStore,
    reference: &str,
) -> Result<Vec<u8>, ObjectError> {
    let key = store
        .key_of(reference)
        .ok_or_else(|| ObjectError::InvalidRef(reference.to_owned()))?;
    store.get(key).await
}

/// A key: 1..=512 characters of `[A-Za-z0-9-_./]`, relative, no empty, `.` or `..` parts.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn checked(key: &str) -> Result<&str, ObjectError> {
    if valid_key(key) {
        Ok(key)
    } else {
        Err(ObjectError::InvalidKey(key.to_owned()))
    }
}

/// Files under a root directory.
#[derive(Debug, Clone)]
pub struct FsObjectStore {
    root: PathBuf,
}

impl FsObjectStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl ObjectStore for FsObjectStore {
    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, ObjectError>> {
        Box::pin(async move {
            let key = checked(key)?;
            let path = self.root.join(key);
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            // Write then rename, so readers never see half an object.
            let tmp = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
            tokio::fs::write(&tmp, bytes).await?;
            tokio::fs::rename(&tmp, &path).await?;
            Ok(format!("fs://{key}"))
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, ObjectError>> {
        Box::pin(async move {
            let key = checked(key)?;
            match tokio::fs::read(self.root.join(key)).await {
                Ok(bytes) => Ok(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(ObjectError::NotFound(key.to_owned()))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn key_of<'r>(&self, reference: &'r str) -> Option<&'r str> {
        reference.strip_prefix("fs://").filter(|k| valid_key(k))
    }

    fn describe(&self) -> String {
        format!("fs:{}", self.root.display())
    }
}

/// A bucket of an S3-compatible service.
#[derive(Debug)]
pub struct S3ObjectStore {
    bucket: String,
    /// `s3://<bucket>/`: what references start with.
    prefix: String,
    inner: object_store::aws::AmazonS3,
}

impl S3ObjectStore {
    /// Builds the client from `storage.object_store` (credentials from the config, else the
    /// usual AWS environment: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, web identity, ...).
    pub fn from_config(cfg: &ObjectStoreConfig) -> Result<Self, ObjectError> {
        let bucket = cfg
            .bucket
            .as_deref()
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| ObjectError::Config("bucket is required by the s3 backend".into()))?;
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(cfg.region.as_deref().unwrap_or("us-east-1"))
            .with_virtual_hosted_style_request(!cfg.path_style)
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: 5,
                retry_timeout: Duration::from_secs(60),
            });
        if let Some(endpoint) = cfg.endpoint.as_deref().filter(|e| !e.trim().is_empty()) {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        let inner = builder
            .build()
            .map_err(|e| ObjectError::Config(e.to_string()))?;
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: format!("s3://{bucket}/"),
            inner,
        })
    }
}

fn backend_error(key: &str, e: object_store::Error) -> ObjectError {
    match e {
        object_store::Error::NotFound { .. } => ObjectError::NotFound(key.to_owned()),
        other => ObjectError::Backend(other.to_string()),
    }
}

impl ObjectStore for S3ObjectStore {
    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, ObjectError>> {
        use object_store::ObjectStore as _;
        Box::pin(async move {
            let key = checked(key)?;
            self.inner
                .put(&object_store::path::Path::from(key), bytes.into())
                .await
                .map_err(|e| backend_error(key, e))?;
            Ok(format!("{}{key}", self.prefix))
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, ObjectError>> {
        use object_store::ObjectStore as _;
        Box::pin(async move {
            let key = checked(key)?;
            let found = self
                .inner
                .get(&object_store::path::Path::from(key))
                .await
                .map_err(|e| backend_error(key, e))?;
            let bytes = found.bytes().await.map_err(|e| backend_error(key, e))?;
            Ok(bytes.to_vec())
        })
    }

    fn key_of<'r>(&self, reference: &'r str) -> Option<&'r str> {
        reference
            .strip_prefix(self.prefix.as_str())
            .filter(|k| valid_key(k))
    }

    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }
}

/// The store configured in `storage.object_store`.
pub fn from_config(cfg: &ObjectStoreConfig) -> Result<Arc<dyn ObjectStore>, ObjectError> {
    match cfg.backend.as_str() {
        "fs" => Ok(Arc::new(FsObjectStore::new(&cfg.fs_root))),
        "s3" => Ok(Arc::new(S3ObjectStore::from_config(cfg)?)),
        other => Err(ObjectError::Config(format!(
            "backend {other:?} is not fs or s3"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_and_key_safety() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::new(dir.path());
        let r = store
            .put("tool-output/exec-1/call-1.json", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(r, "fs://tool-output/exec-1/call-1.json");
        assert_eq!(get_reference(&store, &r).await.unwrap(), b"{}");
        assert!(store.put("../escape", b"x".to_vec()).await.is_err());
        assert!(store.put("/abs", b"x".to_vec()).await.is_err());
        assert!(get_reference(&store, "fs://../etc/passwd").await.is_err());
        assert!(matches!(
            get_reference(&store, "s3://bucket/key").await,
            Err(ObjectError::InvalidRef(_))
        ));
        assert!(matches!(
            store.get("missing.json").await,
            Err(ObjectError::NotFound(_))
        ));
        // Nothing is left behind by the write-then-rename.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("tool-output/exec-1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["call-1.json"]);
    }

    #[test]
    fn s3_needs_a_bucket_and_backends_are_named() {
        let cfg = ObjectStoreConfig {
            backend: "s3".into(),
            ..ObjectStoreConfig::default()
        };
        let err = from_config(&cfg).unwrap_err().to_string();
        assert!(err.contains("bucket"), "{err}");
        let cfg = ObjectStoreConfig {
            backend: "gcs".into(),
            ..ObjectStoreConfig::default()
        };
        assert!(from_config(&cfg).unwrap_err().to_string().contains("gcs"));
    }
}
