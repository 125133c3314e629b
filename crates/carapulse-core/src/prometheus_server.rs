//! A real Prometheus for tests (the Debian package `prometheus`, installed by scripts/test.sh):
//! started on a free port with a 1 s scrape interval over the given targets (and itself),
//! killed on drop. `None` when the binary is missing and `CARAPULSE_SKIP_PROMETHEUS` is set;
//! a missing binary otherwise fails the test — the suite never passes without the real server.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Prometheus.
pub struct RealPrometheus {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for RealPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl RealPrometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, job `targets`) and itself (job
    /// `self`) every second; waits until it is ready.
    pub async fn start(targets: &[String]) -> Option<Self> {
        let Some(binary) = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
        else {
            assert!(
                std::env::var("CARAPULSE_SKIP_PROMETHEUS").is_ok(),
                "prometheus is not installed: run ./scripts/test.sh (it installs it) or set CARAPULSE_SKIP_PROMETHEUS=1"
            );
            eprintln!("skipping: prometheus not installed and CARAPULSE_SKIP_PROMETHEUS is set");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port().expect("free port");
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        );
        if !targets.is_empty() {
            let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
            config.push_str(&format!(
                "  - job_name: targets\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ));
        }
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).expect("write prometheus.yml");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let prom = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = http.get(format!("{}/-/ready", prom.url)).send().await {
                if r.status().is_success() {
                    return Some(prom);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("prometheus did not become ready");
    }
}
