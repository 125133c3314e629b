//! The services of the load and year suites as their own processes (the release binaries built
//! beside this one), so each one's memory and descriptors can be read from /proc: one or more
//! gateways on one database and, when asked, a tool router (with a fake `kubectl` on its PATH:
//! there is no cluster) and orchestrator workers on a Temporal dev server.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use carapulse_core::testing::{policies_dir, TestDatabase};

/// The Alertmanager webhook's bearer token in the stack's config.
pub const HOOK_TOKEN: &str = "load-alertmanager-bearer-0123456789";
/// The tenant the webhook files alerts under (and the suites' tokens name).
pub const TENANT: &str = "load";

/// What to start.
pub struct StackOptions {
    pub gateways: usize,
    /// Orchestrator worker processes (and one tool router); 0 leaves executions pending.
    pub workers: usize,
    /// Temporal frontend for the workers.
    pub temporal: String,
    /// Whether the gateways prune with the default retention (false keeps every row, so a
    /// measurement sees still tables).
    pub retention: bool,
}

/// One service process.
pub struct Service {
    pub name: String,
    child: tokio::process::Child,
    pub pid: u32,
}

/// The running stack; dropping it kills every process.
pub struct Stack {
    /// `http://127.0.0.1:PORT` of each gateway.
    pub gateways: Vec<String>,
    pub services: Vec<Service>,
    dir: PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(probe.local_addr()?.port())
}

fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?
        .parent()
        .map(|d| d.join(name))
        .ok_or_else(|| anyhow::anyhow!("no directory for the {name} binary"))?;
    anyhow::ensure!(
        path.exists(),
        "{} not built: scripts/bench.sh builds it",
        path.display()
    );
    Ok(path)
}

/// A fake `kubectl` that answers like a healthy cluster: JSON reads get a ready deployment.
const FAKE_KUBECTL: &str = "#!/bin/sh\ncase \"$*\" in *--output=json*|*-o\\ json*) \
echo '{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"namespace\":\"web\"},\"spec\":{\"replicas\":2},\"status\":{\"replicas\":2,\"readyReplicas\":2,\"updatedReplicas\":2,\"availableReplicas\":2}}'; exit 0;; esac\n\
echo \"kubectl ok: $*\"\n";

impl Stack {
    pub async fn start(db: &TestDatabase, opts: &StackOptions) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "carapulse-stack-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut stack = Stack {
            gateways: Vec::new(),
            services: Vec::new(),
            dir,
        };
        let mut config = serde_json::to_value(db.config())?;
        config["gateway"]["ws_addr"] = Value::Null;
        config["gateway"]["rate_limit_per_second"] = json!(1e9);
        config["gateway"]["rate_limit_burst"] = json!(u32::MAX);
        config["policy"]["policy_dir"] = json!(policies_dir());
        if opts.retention {
            // Often enough that a run of minutes sees the job drain a backlog.
            config["gateway"]["retention_interval_secs"] = json!(30);
        } else {
            for key in [
                "event_retention_hours",
                "tool_log_retention_days",
                "resolved_alert_retention_days",
            ] {
                config["gateway"][key] = json!(0);
            }
        }
        config["webhooks"] = json!({"alertmanager": {"tenant_id": TENANT, "environment": "staging",
                                     "namespace": "web", "bearer_token": HOOK_TOKEN}});
        if opts.workers > 0 {
            anyhow::ensure!(
                std::net::TcpStream::connect(&opts.temporal).is_ok(),
                "no Temporal server at {}",
                opts.temporal
            );
            let fakes = stack.dir.join("fakes");
            std::fs::create_dir_all(&fakes)?;
            {
                use std::os::unix::fs::PermissionsExt;
                let kubectl = fakes.join("kubectl");
                std::fs::write(&kubectl, FAKE_KUBECTL)?;
                std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755))?;
            }
            let router_port = free_port()?;
            config["tool_router"]["http_addr"] = json!(format!("127.0.0.1:{router_port}"));
            config["tool_router"]["base_url"] = json!(format!("http://127.0.0.1:{router_port}"));
            config["tool_router"]["auth_token"] = json!("bench-token-0123456789");
            config["tool_router"]["grant_key"] = json!(crate::TEST_GRANT_KEY);
            config["orchestrator"]["temporal_addr"] = json!(opts.temporal);
            config["orchestrator"]["task_queue"] =
                json!(format!("bench-{}", uuid::Uuid::new_v4().simple()));
            let path = format!(
                "{}:{}",
                fakes.display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let file = stack.write_config("tool-router", &config)?;
            stack
                .spawn(
                    "tool-router",
                    "tool-router",
                    &file,
                    &[("PATH", &path)],
                    &format!("http://127.0.0.1:{router_port}/healthz"),
                )
                .await?;
            for n in 0..opts.workers {
                let health = free_port()?;
                let mut worker = config.clone();
                worker["orchestrator"]["health_addr"] = json!(format!("127.0.0.1:{health}"));
                let file = stack.write_config(&format!("orchestrator-{n}"), &worker)?;
                stack
                    .spawn(
                        &format!("orchestrator {}", n + 1),
                        "orchestrator",
                        &file,
                        &[],
                        &format!("http://127.0.0.1:{health}/readyz"),
                    )
                    .await?;
            }
        }
        for n in 0..opts.gateways.max(1) {
            let port = free_port()?;
            let mut gateway = config.clone();
            gateway["gateway"]["http_addr"] = json!(format!("127.0.0.1:{port}"));
            let file = stack.write_config(&format!("gateway-{n}"), &gateway)?;
            let base = format!("http://127.0.0.1:{port}");
            stack
                .spawn(
                    &format!("gateway {}", n + 1),
                    "gateway",
                    &file,
                    &[],
                    &format!("{base}/readyz"),
                )
                .await?;
            stack.gateways.push(base);
        }
        Ok(stack)
    }

    fn write_config(&self, name: &str, config: &Value) -> anyhow::Result<PathBuf> {
        let file = self.dir.join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec_pretty(config)?)?;
        Ok(file)
    }

    /// Starts `binary --config file` and waits until `ready_url` answers 2xx.
    async fn spawn(
        &mut self,
        name: &str,
        binary_name: &str,
        config: &Path,
        env: &[(&str, &str)],
        ready_url: &str,
    ) -> anyhow::Result<()> {
        let mut command = tokio::process::Command::new(binary(binary_name)?);
        command
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(
                self.dir.join(format!("{binary_name}.log")),
            )?)
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("{name} exited at once"))?;
        self.services.push(Service {
            name: name.to_owned(),
            child,
            pid,
        });
        let http = reqwest::Client::new();
        let ready_by = Instant::now() + Duration::from_secs(60);
        loop {
            if http
                .get(ready_url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < ready_by,
                "{name} not ready at {ready_url} (log: {})",
                self.dir.join(format!("{binary_name}.log")).display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The gateway processes' pids, in the order of [`Stack::gateways`].
    pub fn gateway_pids(&self) -> Vec<u32> {
        self.services
            .iter()
            .filter(|s| s.name.starts_with("gateway"))
            .map(|s| s.pid)
            .collect()
    }

    /// Stops every process (the gateways first) and removes the configs.
    pub async fn stop(mut self) {
        for service in self.services.iter_mut().rev() {
            let _ = service.child.start_kill();
            let _ = service.child.wait().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Memory and descriptors of one process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessStats {
    pub rss_mib: f64,
    /// Peak RSS since the process started (`VmHWM`).
    pub peak_rss_mib: f64,
    pub fds: usize,
    pub sockets: usize,
}

pub fn process_stats(pid: u32) -> ProcessStats {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (mut fds, mut sockets) = (0, 0);
    if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in entries.flatten() {
            fds += 1;
            if std::fs::read_link(e.path())
                .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
            {
                sockets += 1;
            }
        }
    }
    ProcessStats {
        rss_mib: kib("VmRSS:") / 1024.0,
        peak_rss_mib: kib("VmHWM:") / 1024.0,
        fds,
        sockets,
    }
}
