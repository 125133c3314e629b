//! Object storage for evidence blobs and large tool outputs, behind a small trait.
//!
//! The filesystem backend is the default; references look like `fs://<key>` and keys are
//! validated relative paths, so a reference can never point outside the store's root.

use std::path::{Path, PathBuf};

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
    #[error("object store backend {0:?} is not supported yet")]
    Unsupported(String),
}

/// Where blobs go.
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `key`; returns the reference to keep in the database.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<String, ObjectError>;
    /// Reads a reference returned by [`ObjectStore::put`].
    fn get(&self, reference: &str) -> Result<Vec<u8>, ObjectError>;
}

fn valid_key(key: &str) -> bool {
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
    fn put(&self, key: &str, bytes: &[u8]) -> Result<String, ObjectError> {
        if !valid_key(key) {
            return Err(ObjectError::InvalidKey(key.to_owned()));
        }
        let path = self.root.join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Write then rename, so readers never see half an object.
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(format!("fs://{key}"))
    }

    fn get(&self, reference: &str) -> Result<Vec<u8>, ObjectError> {
        let key = reference
            .strip_prefix("fs://")
            .ok_or_else(|| ObjectError::InvalidRef(reference.to_owned()))?;
        if !valid_key(key) {
            return Err(ObjectError::InvalidRef(reference.to_owned()));
        }
        match std::fs::read(self.root.join(key)) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ObjectError::NotFound(reference.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The store configured in `storage.object_store`.
pub fn from_config(
    cfg: &crate::config::ObjectStoreConfig,
) -> Result<Box<dyn ObjectStore>, ObjectError> {
    match cfg.backend.as_str() {
        "fs" => Ok(Box::new(FsObjectStore::new(&cfg.fs_root))),
        other => Err(ObjectError::Unsupported(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_key_safety() {
        let dir = std::env::temp_dir().join(format!(
            "carapulse-objects-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let store = FsObjectStore::new(&dir);
        let r = store.put("tool-output/exec-1/call-1.json", b"{}").unwrap();
        assert_eq!(r, "fs://tool-output/exec-1/call-1.json");
        assert_eq!(store.get(&r).unwrap(), b"{}");
        assert!(store.put("../escape", b"x").is_err());
        assert!(store.put("/abs", b"x").is_err());
        assert!(store.get("fs://../etc/passwd").is_err());
        assert!(store.get("s3://bucket/key").is_err());
        assert!(matches!(
            store.get("fs://missing.json"),
            Err(ObjectError::NotFound(_))
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
