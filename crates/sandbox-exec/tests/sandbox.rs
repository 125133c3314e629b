//! sandbox-exec against real processes: environment scrubbing, timeouts that kill the whole
//! process group, memory limits, output caps, redaction, and the egress allow-list.

use std::io::{Read, Write};
use std::net::TcpListener;

use carapulse_core::redact::Redactor;
use sandbox_exec::{SandboxError, SandboxPolicy};

mod common;
use common::run;

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn policy() -> SandboxPolicy {
    SandboxPolicy {
        timeout_ms: 10_000,
        ..Default::default()
    }
}

#[test]
fn environment_is_scrubbed_unless_allowed() {
    // SAFETY: single-threaded at this point of the test; the variable is ours.
    unsafe { std::env::set_var("CARAPULSE_TEST_PARENT_SECRET", "parent-value-123") };
    let red = Redactor::default();
    let report = run(&argv(&["env"]), &policy(), &red, None).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert!(
        !report.stdout.contains("CARAPULSE_TEST_PARENT_SECRET"),
        "{}",
        report.stdout
    );
    assert!(report.stdout.contains("PATH="));
    let mut allowed = policy();
    allowed
        .env_allow
        .push("CARAPULSE_TEST_PARENT_SECRET".into());
    allowed.env.insert("INJECTED".into(), "yes".into());
    let report = run(&argv(&["env"]), &allowed, &red, None).unwrap();
    assert!(report
        .stdout
        .contains("CARAPULSE_TEST_PARENT_SECRET=parent-value-123"));
    assert!(report.stdout.contains("INJECTED=yes"));
}

/// Live processes (not zombies) whose command line is exactly `cmdline` (NUL-separated).
fn live_processes_with_cmdline(cmdline: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).replace('\0', " ").trim() != cmdline {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim()
            .chars()
            .next()
            .unwrap_or('X');
        if state != 'Z' && state != 'X' {
            found.push(pid);
        }
    }
    found
}

#[test]
fn timeout_kills_grandchildren() {
    // A unique sleep duration marks the grandchild so it can be found in the host's /proc
    // (inside the sandbox it may have its own PID numbering).
    let marker = format!("30.{}", std::process::id());
    let mut p = policy();
    p.timeout_ms = 500;
    let script = format!("sleep {marker} & wait");
    let report = run(
        &argv(&["sh", "-c", &script]),
        &p,
        &Redactor::default(),
        None,
    )
    .unwrap();
    assert!(report.timed_out, "{report:?}");
    assert_eq!(report.signal, Some(9));
    assert!(report.duration_ms < 5_000, "{report:?}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let survivors = live_processes_with_cmdline(&format!("sleep {marker}"));
    assert!(
        survivors.is_empty(),
        "grandchildren survived the timeout: {survivors:?}"
    );
}

#[test]
fn tool_is_pid_one_of_its_own_namespace_when_available() {
    if sandbox_exec::namespaces_available().is_err() {
        eprintln!("skipping: namespaces unavailable on this host");
        return;
    }
    let report = run(
        &argv(&["sh", "-c", "echo $$; exit 5"]),
        &policy(),
        &Redactor::default(),
        None,
    )
    .unwrap();
    assert_eq!(report.exit_code, Some(5), "exit status is forwarded");
    assert_eq!(report.stdout.trim(), "1");
    assert!(report.namespaces.contains(&"pid".to_owned()));
}

#[test]
fn memory_limit_trips() {
    let mut p = policy();
    p.memory_mb = Some(128);
    let report = run(
        &argv(&[
            "python3",
            "-c",
            "b = bytearray(512 * 1024 * 1024); print('allocated')",
        ]),
        &p,
        &Redactor::default(),
        None,
    )
    .unwrap();
    assert_ne!(report.exit_code, Some(0), "{report:?}");
    assert!(!report.stdout.contains("allocated"));
    assert!(report.stderr.contains("MemoryError"), "{report:?}");
    let mut roomy = policy();
    roomy.memory_mb = Some(2048);
    let ok = run(
        &argv(&[
            "python3",
            "-c",
            "b = bytearray(256 * 1024 * 1024); print('allocated')",
        ]),
        &roomy,
        &Redactor::default(),
        None,
    )
    .unwrap();
    assert!(ok.stdout.contains("allocated"), "{ok:?}");
    assert!(
        ok.max_rss_kb > 200 * 1024,
        "max RSS is measured: {}",
        ok.max_rss_kb
    );
}

#[test]
fn output_is_capped_and_counted() {
    let mut p = policy();
    p.max_output_bytes = 1000;
    let report = run(
        &argv(&["head", "-c", "1000000", "/dev/zero"]),
        &p,
        &Redactor::default(),
        None,
    )
    .unwrap();
    assert!(report.succeeded());
    assert!(report.stdout_truncated);
    assert_eq!(report.stdout_bytes, 1_000_000);
    assert!(report.stdout.len() <= 1000 * 3, "kept bytes are capped");
}

#[test]
fn output_and_argv_are_redacted() {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = lines.clone();
    let sink: sandbox_exec::LineSink =
        std::sync::Arc::new(move |_, line: &str| seen.lock().unwrap().push(line.to_owned()));
    let report = run(
        &argv(&[
            "sh",
            "-c",
            "echo key=AKIAIOSFODNN7EXAMPLE; echo 'Authorization: Bearer abcdefghijklmnop' >&2",
        ]),
        &policy(),
        &Redactor::default(),
        Some(sink),
    )
    .unwrap();
    assert!(
        !report.stdout.contains("AKIAIOSFODNN7EXAMPLE"),
        "{}",
        report.stdout
    );
    assert!(
        !report.stderr.contains("abcdefghijklmnop"),
        "{}",
        report.stderr
    );
    assert!(!report.argv.join(" ").contains("AKIAIOSFODNN7EXAMPLE"));
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines
        .iter()
        .all(|l| !l.contains("AKIA") && !l.contains("abcdefghijklmnop")));
}

#[test]
fn option_as_program_and_empty_argv_are_refused() {
    assert!(run(&[], &policy(), &Redactor::default(), None).is_err());
    assert!(run(&argv(&["--help"]), &policy(), &Redactor::default(), None).is_err());
    assert!(run(
        &argv(&["/nonexistent/tool"]),
        &policy(),
        &Redactor::default(),
        None
    )
    .is_err());
}

/// A one-shot-per-connection HTTP server answering `body`.
fn http_server(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn egress_only_to_allow_listed_destinations() {
    let allowed = http_server("allowed-body");
    let blocked = http_server("blocked-body");
    let mut p = policy();
    p.allow_egress = vec![format!("127.0.0.1:{allowed}")];
    let ok = run(
        &argv(&[
            "curl",
            "-sS",
            "-f",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{allowed}/"),
        ]),
        &p,
        &Redactor::default(),
        None,
    )
    .unwrap();
    assert!(ok.succeeded(), "{ok:?}");
    assert_eq!(ok.stdout, "allowed-body");
    assert!(ok.egress_proxy.is_some());
    let denied = run(
        &argv(&[
            "curl",
            "-sS",
            "-f",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{blocked}/"),
        ]),
        &p,
        &Redactor::default(),
        None,
    )
    .unwrap();
    assert!(!denied.succeeded(), "{denied:?}");
    assert!(!denied.stdout.contains("blocked-body"));
    assert_eq!(denied.egress_denied, vec![format!("127.0.0.1:{blocked}")]);
    // HTTPS-style tunnels are checked the same way.
    let tunnel = run(
        &argv(&[
            "curl",
            "-sS",
            "-f",
            "-p",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{blocked}/"),
        ]),
        &p,
        &Redactor::default(),
        None,
    )
    .unwrap();
    assert!(!tunnel.succeeded(), "{tunnel:?}");
}

#[test]
fn no_egress_means_no_network_when_namespaces_are_available() {
    if sandbox_exec::namespaces_available().is_err() {
        eprintln!("skipping: user/network namespaces are not available on this host");
        return;
    }
    let port = http_server("should-not-see");
    let report = run(
        &argv(&[
            "curl",
            "-sS",
            "--max-time",
            "3",
            &format!("http://127.0.0.1:{port}/"),
        ]),
        &policy(),
        &Redactor::default(),
        None,
    )
    .unwrap();
    assert!(!report.succeeded(), "{report:?}");
    assert!(report.namespaces.contains(&"net".to_owned()));
    assert!(!report.stdout.contains("should-not-see"));
}

#[test]
fn binary_prints_a_json_report_and_mirrors_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_sandbox-exec");
    let out = std::process::Command::new(bin)
        .args(["--", "sh", "-c", "echo out; exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["exit_code"], 7);
    assert_eq!(report["stdout"], "out\n");
    let out = std::process::Command::new(bin)
        .args(["--timeout-ms", "200", "--", "sleep", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124));
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("p.json");
    std::fs::write(
        &policy_file,
        r#"{"timeout_ms": 5000, "env": {"FROM_POLICY": "1"}}"#,
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["--policy", policy_file.to_str().unwrap(), "--", "env"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["stdout"].as_str().unwrap().contains("FROM_POLICY=1"));
    std::fs::write(&policy_file, r#"{"bogus": 1}"#).unwrap();
    let out = std::process::Command::new(bin)
        .args(["--policy", policy_file.to_str().unwrap(), "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let out = std::process::Command::new(bin).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a command is required");
}

#[test]
fn a_missing_helper_is_a_clear_error_and_settings_are_checked() {
    let red = Redactor::default();
    let err = sandbox_exec::Helper::new("/nonexistent/sandbox-exec")
        .run(&argv(&["true"]), &policy(), &red, None)
        .unwrap_err();
    assert!(matches!(err, SandboxError::Unavailable(_)), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/sandbox-exec"),
        "{err}"
    );
    assert!(sandbox_exec::Runner::from_setting(Some("/nonexistent/sandbox-exec")).is_err());
    assert!(matches!(
        sandbox_exec::Runner::from_setting(Some("in-process")),
        Ok(sandbox_exec::Runner::InProcess)
    ));
    let helper = env!("CARGO_BIN_EXE_sandbox-exec");
    let runner = sandbox_exec::Runner::from_setting(Some(helper)).unwrap();
    assert_eq!(runner.describe(), format!("helper {helper}"));
    // Errors cross the process boundary as the same variants.
    let err = run(&argv(&["no-such-program-xyz"]), &policy(), &red, None).unwrap_err();
    assert!(matches!(err, SandboxError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("no-such-program-xyz"), "{err}");
    assert!(matches!(
        run(&[], &policy(), &red, None).unwrap_err(),
        SandboxError::EmptyArgv
    ));
}

/// Waits until `helper` has `n` warm helpers waiting, and returns their pids.
fn wait_for_warm(helper: &sandbox_exec::Helper, n: usize) -> Vec<u32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let pids = helper.warm_pids();
        if pids.len() == n {
            return pids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} warm helpers after 10 s, wanted {n}",
            pids.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn alive(pid: u32) -> bool {
    // Reaped children disappear from /proc; a zombie would still be listed but is not alive.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.split(") ").nth(1).unwrap_or("").starts_with('Z'))
}

#[test]
fn warm_helpers_serve_one_request_each_and_go_with_their_helper() {
    let red = Redactor::default();
    let helper = sandbox_exec::Helper::new(env!("CARGO_BIN_EXE_sandbox-exec"));
    assert!(
        helper.warm_pids().is_empty(),
        "nothing is started before use"
    );
    let first = helper.run(&argv(&["true"]), &policy(), &red, None).unwrap();
    assert!(first.succeeded(), "{first:?}");
    let warm = wait_for_warm(&helper, sandbox_exec::WARM_HELPERS);
    assert!(warm.iter().all(|pid| alive(*pid)), "{warm:?}");

    // A variable set after the warm helpers started still reaches the tool: the caller resolves
    // the allow-list at call time, not the helper at its start.
    let name = "CARAPULSE_TEST_WARM_LATE_VAR";
    // SAFETY: the variable is this test's own; nothing else reads or writes it.
    unsafe { std::env::set_var(name, "set-after-start") };
    let mut allowed = policy();
    allowed.env_allow.push(name.into());
    let report = helper
        .run(
            &argv(&["sh", "-c", &format!("echo ${name}")]),
            &allowed,
            &red,
            None,
        )
        .unwrap();
    assert_eq!(report.stdout.trim(), "set-after-start", "{report:?}");
    // It was served by one of the waiting helpers, which then ends (reaped in the background
    // once it has cleaned up): each serves one request.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while warm.iter().all(|pid| alive(*pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let served: Vec<&u32> = warm.iter().filter(|pid| !alive(**pid)).collect();
    assert_eq!(served.len(), 1, "exactly one warm helper served: {warm:?}");

    // A warm helper killed while waiting is skipped, not handed a request, and what it had
    // made is removed when it is reaped (it could not remove it itself).
    let warm = wait_for_warm(&helper, sandbox_exec::WARM_HELPERS);
    let killed: Vec<_> = warm.iter().map(|pid| built_sandbox(*pid)).collect();
    for pid in &warm {
        // SAFETY: signalling a helper process this test's Helper started.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while warm.iter().any(|pid| alive(*pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "killed helpers linger"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let after_kill = helper.run(&argv(&["true"]), &policy(), &red, None).unwrap();
    assert!(after_kill.succeeded(), "{after_kill:?}");
    for (_, _, staging) in killed {
        assert!(
            !staging.exists(),
            "{} was left behind by a killed helper",
            staging.display()
        );
    }

    // The waiting helpers go with the last clone of their Helper, and so do the sandboxes they
    // built ahead (both processes) and those sandboxes' directories.
    let warm = wait_for_warm(&helper, sandbox_exec::WARM_HELPERS);
    let mut built = Vec::new();
    for pid in &warm {
        built.push(built_sandbox(*pid));
    }
    let clone = helper.clone();
    drop(helper);
    assert!(warm.iter().all(|pid| alive(*pid)), "a clone keeps them");
    drop(clone);
    for pid in &warm {
        assert!(!alive(*pid), "warm helper {pid} outlived its Helper");
    }
    for (first, tool, staging) in built {
        assert!(
            !alive(first),
            "the built sandbox's first process {first} outlived it"
        );
        assert!(
            !alive(tool),
            "the built sandbox's tool process {tool} outlived it"
        );
        assert!(!staging.exists(), "{} was left behind", staging.display());
    }
}

/// Children of `pid` (its main thread's).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// The sandbox a waiting helper built ahead: its first process, the tool's process waiting
/// for the order, and the root's staging directory (where the first process mounted the new
/// root's tmpfs, read from its mount table).
fn built_sandbox(helper: u32) -> (u32, u32, std::path::PathBuf) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let first = children(helper);
        if let [first] = first.as_slice() {
            let tool = children(*first);
            let mounts =
                std::fs::read_to_string(format!("/proc/{first}/mountinfo")).unwrap_or_default();
            let root = mounts
                .lines()
                .filter_map(|line| line.split_whitespace().nth(4))
                .find(|point| point.contains("/sandbox-root-") && point.ends_with("/root"));
            if let ([tool], Some(root)) = (tool.as_slice(), root) {
                let staging = std::path::Path::new(root).parent().unwrap().to_path_buf();
                assert!(staging.exists(), "{}", staging.display());
                return (*first, *tool, staging);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "helper {helper} has no built sandbox after 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Set in the process [`helpers_clean_up_when_their_caller_dies`] starts as the caller.
const CALLER_ROLE: &str = "CARAPULSE_TEST_SANDBOX_DYING_CALLER";

/// A caller killed outright (a router crashing, OOM-killed) never drops its `Helper`. Its
/// waiting helpers see their request pipe close, and the helper that has just answered is
/// still removing its run's directories: all of them must kill what they built and remove
/// every directory, not be killed with the caller and leave them behind.
#[test]
fn helpers_clean_up_when_their_caller_dies() {
    if std::env::var_os(CALLER_ROLE).is_some() {
        // The caller: warm helpers up, say who they are, have one serve a call, be killed.
        let helper = sandbox_exec::Helper::new(env!("CARGO_BIN_EXE_sandbox-exec"));
        let red = Redactor::default();
        let report = helper.run(&argv(&["true"]), &policy(), &red, None).unwrap();
        assert!(report.succeeded(), "{report:?}");
        let warm = wait_for_warm(&helper, sandbox_exec::WARM_HELPERS);
        println!("warm {warm:?}");
        let report = helper.run(&argv(&["true"]), &policy(), &red, None).unwrap();
        assert!(report.succeeded(), "{report:?}");
        println!("served");
        std::thread::sleep(std::time::Duration::from_secs(60));
        return;
    }
    // The helpers' working directories go to this private temporary directory (they inherit
    // TMPDIR), so what they leave there is theirs alone.
    let tmp = tempfile::tempdir().unwrap();
    let mut caller = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helpers_clean_up_when_their_caller_dies",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CALLER_ROLE, "1")
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(caller.stdout.take().unwrap()));
    let mut next_line = |what: &str| loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the caller ended before {what}"))
            .unwrap();
        // libtest may have started the line ("test … ... ").
        if let Some((_, rest)) = line.split_once(what) {
            break rest.to_owned();
        }
    };
    let warm: Vec<u32> = next_line("warm [")
        .trim_end_matches(']')
        .split(", ")
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(warm.len(), sandbox_exec::WARM_HELPERS, "{warm:?}");
    let built: Vec<_> = warm.iter().map(|pid| built_sandbox(*pid)).collect();
    next_line("served");
    caller.kill().unwrap();
    caller.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let left_in_tmp = || {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("sandbox-"))
            .collect::<Vec<_>>()
    };
    for (helper, (first, tool, staging)) in warm.iter().zip(built) {
        while (alive(*helper) || alive(first) || alive(tool) || staging.exists())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!alive(*helper), "helper {helper} outlived its caller");
        assert!(!alive(first), "sandbox process {first} outlived its helper");
        assert!(!alive(tool), "sandbox process {tool} outlived its helper");
        assert!(
            !staging.exists(),
            "{} was left behind by a helper whose caller died",
            staging.display()
        );
    }
    // The helper that served the last call, and the one started to replace it, clean up too.
    while !left_in_tmp().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        left_in_tmp(),
        Vec::<String>::new(),
        "working directories left behind"
    );
}
