//! The real `gateway` binary: config errors, `--migrate-only`, serving, and graceful shutdown on
//! SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use carapulse_core::testing::TestDatabase;

fn write_config(
    dir: &std::path::Path,
    config: &carapulse_core::config::Config,
) -> std::path::PathBuf {
    let path = dir.join("gateway.json");
    std::fs::write(&path, serde_json::to_string(config).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn binary_migrates_serves_and_stops_gracefully() {
    let db = TestDatabase::create().await;
    let dir = std::env::temp_dir().join(format!("gateway-bin-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = env!("CARGO_BIN_EXE_gateway");

    // An invalid config names the field and exits 1.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"storage": {"postgres_dsn": "nope"}, "gateway": {"dev_mode": true, "dev_jwt_secret": "0123456789abcdef0123456789abcdef"}}"#).unwrap();
    let out = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(&bad)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("storage.postgres_dsn"));

    let mut config = db.config();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    config.gateway.http_addr = format!("127.0.0.1:{port}");
    let path = write_config(&dir, &config);

    let out = tokio::process::Command::new(bin)
        .args(["--migrate-only", "--config"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The Go binaries' `-config PATH` works too, with a notice naming --config.
    let out = tokio::process::Command::new(bin)
        .args(["--migrate-only", "-config"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("-config is deprecated; use --config"),
        "{stderr}"
    );

    let mut child = tokio::process::Command::new(bin)
        .env("CARAPULSE_CONFIG", &path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(&url).send().await {
            if r.status().is_success() {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "gateway binary did not become ready");
    let pid = child.id().unwrap() as i32;
    // SIGTERM -> graceful shutdown, exit 0.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits in time")
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("shutdown requested"), "{stderr}");
    assert!(stderr.contains("gateway stopped"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
    db.drop_now().await;
}
