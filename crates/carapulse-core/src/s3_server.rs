//! Test support (feature `testing`): a real S3-compatible server (`s3s-fs`, installed from
//! crates.io by `scripts/lib.sh ensure_s3s`) on a free loopback port, serving a temporary
//! directory, with credentials it checks. Killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::ObjectStoreConfig;

pub const ACCESS_KEY: &str = "carapulse-test";
pub const SECRET_KEY: &str = "carapulse-test-secret-0123456789";

/// A running `s3s-fs` with one bucket.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    /// The directory it serves; `<root>/<bucket>/<key>` is each object's file.
    pub root: tempfile::TempDir,
    child: Child,
}

/// The `s3s-fs` binary: `CARAPULSE_S3S_FS`, else `.dev/s3s/bin/s3s-fs` of the workspace, else PATH.
pub fn s3s_fs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CARAPULSE_S3S_FS") {
        return PathBuf::from(path);
    }
    let dev = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.dev/s3s/bin/s3s-fs");
    if dev.exists() {
        return dev;
    }
    PathBuf::from("s3s-fs")
}

impl S3Server {
    /// Starts the server and creates `bucket` (a directory of the served root).
    pub fn start(bucket: &str) -> Self {
        let root = tempfile::tempdir().expect("temp dir for s3s-fs");
        std::fs::create_dir_all(root.path().join(bucket)).expect("bucket directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let binary = s3s_fs_binary();
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): run `source scripts/lib.sh; ensure_s3s` or set CARAPULSE_S3S_FS",
                    binary.display()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_owned(),
            root,
            child,
        }
    }

    /// `storage.object_store` pointing at this server with its credentials.
    pub fn config(&self) -> ObjectStoreConfig {
        ObjectStoreConfig {
            backend: "s3".into(),
            endpoint: Some(self.endpoint.clone()),
            bucket: Some(self.bucket.clone()),
            region: Some("us-east-1".into()),
            path_style: true,
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            ..ObjectStoreConfig::default()
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
