//! The sandbox against a hostile tool: what it must not reach (the host network with egress
//! allowed, the host's files and processes, root, capabilities, namespaces) and what it must not
//! keep (daemons, pipes held past the deadline). Each test is one class of escape from the
//! security review; they run real processes under the real namespaces of this host.

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use carapulse_core::redact::Redactor;
use sandbox_exec::{isolation_available, SandboxError, SandboxPolicy};

mod common;
use common::{run, Via};

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn policy() -> SandboxPolicy {
    SandboxPolicy {
        timeout_ms: 10_000,
        require_isolation: true,
        require_seccomp: true,
        ..Default::default()
    }
}

/// Isolation is a requirement of this suite: on a host without it the suite fails loudly
/// rather than passing vacuously.
fn isolated() {
    if let Err(why) = isolation_available() {
        panic!("isolation unavailable on this host: {why}");
    }
}

/// A TCP listener on the host's loopback that answers one line; stands in for Postgres or the
/// gateway.
fn host_service() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 64];
            let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = conn.read(&mut buf);
            use std::io::Write;
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nreached",
            );
        }
    });
    port
}

fn with_egress_allowed_the_host_network_is_still_out_of_reach(via: Via) {
    isolated();
    let allowed = host_service();
    let forbidden = host_service();
    let mut p = policy();
    p.allow_egress = vec![format!("127.0.0.1:{allowed}")];
    // Direct connections (no proxy) to a host port that is not allow-listed, and to Postgres:
    // the namespace has no route to the host.
    for port in [forbidden, 5432] {
        let r = via
            .run(
                &sh(&format!(
                    "curl -sS --noproxy '*' --max-time 3 http://127.0.0.1:{port}/; echo rc=$?"
                )),
                &p,
                &Redactor::default(),
                None,
            )
            .unwrap();
        assert!(!r.stdout.contains("reached"), "port {port}: {r:?}");
        assert!(!r.stdout.contains("rc=0"), "port {port}: {r:?}");
    }
    // Through the proxy, the forbidden port is refused and recorded.
    let r = via
        .run(
            &sh(&format!(
                "curl -sS -f --max-time 3 http://127.0.0.1:{forbidden}/"
            )),
            &p,
            &Redactor::default(),
            None,
        )
        .unwrap();
    assert!(!r.succeeded(), "{r:?}");
    assert_eq!(r.egress_denied, vec![format!("127.0.0.1:{forbidden}")]);
    // The allow-listed destination works both through the proxy and directly (programs that
    // never proxy loopback, like Go's HTTP client, reach it through the in-namespace forwarder).
    for flags in ["", "--noproxy '*'"] {
        let r = via
            .run(
                &sh(&format!(
                    "curl -sS -f --max-time 5 {flags} http://127.0.0.1:{allowed}/"
                )),
                &p,
                &Redactor::default(),
                None,
            )
            .unwrap();
        assert_eq!(r.stdout, "reached", "flags {flags:?}: {r:?}");
    }
}

fn the_host_filesystem_and_processes_are_invisible(via: Via) {
    isolated();
    // A file standing in for the router's config (JWT secret, DSN).
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("config.json");
    std::fs::write(&secret, "{\"dev_jwt_secret\": \"s3cret-value\"}").unwrap();
    let script = format!(
        "cat /etc/shadow; echo shadow=$?; cat {}; echo config=$?; ls /root; echo root=$?; \
         touch /root/x; echo write_root=$?; touch /usr/x; echo write_usr=$?; touch /etc/x; echo write_etc=$?; \
         touch \"$HOME/ok\"; echo write_home=$?; touch /tmp/ok; echo write_tmp=$?; \
         echo procs=$(ls /proc | grep -c '^[0-9]'); cat /proc/1/cmdline | tr '\\0' ' '; echo",
        secret.display()
    );
    let r = via
        .run(&sh(&script), &policy(), &Redactor::default(), None)
        .unwrap();
    let out = &r.stdout;
    assert_eq!(r.root, "minimal");
    for failed in [
        "shadow=1",
        "config=1",
        "root=2",
        "write_root=1",
        "write_usr=1",
        "write_etc=1",
    ] {
        assert!(out.contains(failed), "{failed} expected: {r:?}");
    }
    assert!(!out.contains("s3cret-value"), "{r:?}");
    assert!(
        out.contains("write_home=0") && out.contains("write_tmp=0"),
        "{r:?}"
    );
    // Only the sandbox's own processes: sh, ls/grep of the pipeline (a handful, never the host's).
    let procs: usize = out
        .split("procs=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(procs <= 4, "saw {procs} processes: {r:?}");
    assert!(
        out.contains("sh -c cat /etc/shadow"),
        "PID 1 is the tool: {r:?}"
    );
}

fn the_tool_is_unprivileged_without_capabilities_and_filtered(via: Via) {
    isolated();
    let script = "id -u; id -g; grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|Seccomp|NoNewPrivs):' /proc/self/status; \
                  grep '^Seccomp_filters:' /proc/self/status; \
                  unshare -U true; echo unshare=$?; unshare -rn true; echo unshare_r=$?; \
                  perl -e 'syscall(435, 0, 0); print \"clone3_errno=\", $!+0, \"\\n\"'";
    let r = via
        .run(&sh(script), &policy(), &Redactor::default(), None)
        .unwrap();
    let out = &r.stdout;
    assert!(out.starts_with("65534\n65534\n"), "{r:?}");
    for line in [
        "CapEff:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapAmb:\t0000000000000000",
        "Seccomp:\t2",
        "NoNewPrivs:\t1",
    ] {
        assert!(out.contains(line), "{line}: {r:?}");
    }
    assert!(
        out.contains("unshare=1") && out.contains("unshare_r=1"),
        "{r:?}"
    );
    // One filter (clone3 answered inside it), and clone3 answered ENOSYS so libc falls back to
    // the clone the filter inspects (unfiltered, a null clone3 argument is EFAULT).
    assert!(out.contains("Seccomp_filters:\t1\n"), "{r:?}");
    assert!(
        out.contains(&format!("clone3_errno={}\n", libc::ENOSYS)),
        "{r:?}"
    );
    assert_eq!(r.uid, 65534);
    assert!(r.capabilities_dropped);
    assert_eq!(r.seccomp, "default");
}

/// Live processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry.file_name().to_string_lossy().parse::<i32>().is_err() {
            continue;
        }
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if cmd.contains(needle) && !stat.contains(") Z ") {
            found.push(cmd);
        }
    }
    found
}

fn a_daemon_holding_stdout_neither_outlives_nor_delays_the_run(via: Via) {
    isolated();
    let mut p = policy();
    p.timeout_ms = 1500;
    // Each way has its own sleeps, so the two runs of this test never see each other's.
    let (daemon, tool) = match via {
        Via::Ahead => ("sleep 47.5", "sleep 48.5"),
        Via::InProcess => ("sleep 47.25", "sleep 48.25"),
    };
    let started = Instant::now();
    let r = via
        .run(
            &sh(&format!(
                "setsid sh -c '{daemon}; echo late' & echo started; {tool}"
            )),
            &p,
            &Redactor::default(),
            None,
        )
        .unwrap();
    assert!(r.timed_out, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "returned after {:?}",
        started.elapsed()
    );
    assert!(r.stdout.contains("started"), "{r:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(processes_with(daemon).is_empty(), "the daemon survived");
    assert!(processes_with(tool).is_empty(), "the tool survived");
}

#[test]
fn without_namespaces_daemons_still_die_with_the_run() {
    let p = SandboxPolicy {
        timeout_ms: 1500,
        namespaces: false,
        ..Default::default()
    };
    // At the deadline: the tool and a daemon that left the process group and holds stdout.
    let started = Instant::now();
    let r = run(
        &sh("setsid sh -c 'sleep 46.5' & echo started; sleep 45.5"),
        &p,
        &Redactor::default(),
        None,
    )
    .unwrap();
    assert!(r.timed_out, "{r:?}");
    assert!(r.namespaces.is_empty(), "{r:?}");
    assert!(r.stdout.contains("started"), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a descendant holding the pipes kept the run for {:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(300));
    let survivors = processes_with("sleep 46.5");
    let _ = std::process::Command::new("pkill")
        .args(["-f", "sleep 46.5"])
        .status();
    assert!(survivors.is_empty(), "the daemon survived: {survivors:?}");
    assert!(processes_with("sleep 45.5").is_empty(), "the tool survived");
    // A tool that ends at once, leaving a double-forked daemon behind: the run ends with the
    // tool (its exit code kept) and the daemon goes too.
    let started = Instant::now();
    let r = run(
        &sh("(setsid sh -c 'sleep 44.5' &) ; echo done; exit 3"),
        &p,
        &Redactor::default(),
        None,
    )
    .unwrap();
    assert!(!r.timed_out, "{r:?}");
    assert_eq!(r.exit_code, Some(3), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "returned after {:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(300));
    let survivors = processes_with("sleep 44.5");
    let _ = std::process::Command::new("pkill")
        .args(["-f", "sleep 44.5"])
        .status();
    assert!(survivors.is_empty(), "the daemon survived: {survivors:?}");
}

fn process_limits_hold_for_the_mapped_uid(via: Via) {
    isolated();
    // As root RLIMIT_NPROC is void; the tool runs as an unprivileged uid, so it holds.
    let script =
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do sleep 1 & done; wait; echo all-forked";
    let mut p = policy();
    p.max_processes = Some(8);
    let limited = via
        .run(&sh(script), &p, &Redactor::default(), None)
        .unwrap();
    assert!(
        !limited.stdout.contains("all-forked"),
        "RLIMIT_NPROC did not hold: {limited:?}"
    );
    assert!(
        limited.stderr.to_lowercase().contains("fork"),
        "{limited:?}"
    );
    p.max_processes = Some(256);
    let control = via
        .run(&sh(script), &p, &Redactor::default(), None)
        .unwrap();
    assert!(control.stdout.contains("all-forked"), "{control:?}");
}

#[test]
fn requirements_refuse_to_run_instead_of_degrading() {
    let p = SandboxPolicy {
        namespaces: false,
        require_isolation: true,
        ..Default::default()
    };
    let err = run(&sh("true"), &p, &Redactor::default(), None).unwrap_err();
    assert!(matches!(err, SandboxError::Unavailable(_)), "{err}");
    let p = SandboxPolicy {
        seccomp: Some("none".into()),
        require_seccomp: true,
        ..Default::default()
    };
    let err = run(&sh("true"), &p, &Redactor::default(), None).unwrap_err();
    assert!(matches!(err, SandboxError::Unavailable(_)), "{err}");
    let p = SandboxPolicy {
        user: Some("0".into()),
        ..Default::default()
    };
    assert!(
        run(&sh("true"), &p, &Redactor::default(), None).is_err(),
        "uid 0 refused"
    );
}

fn extra_mounts_and_credential_files_are_visible_as_configured(via: Via) {
    isolated();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("in.txt"), "hello").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut p = policy();
    p.mounts = vec![
        format!("{}:/data", data.display()),
        format!("{}:/out:rw", out.display()),
    ];
    p.env
        .insert("KUBECONFIG".into(), kubeconfig.display().to_string());
    let r = via.run(
        &sh("cat /data/in.txt; echo; touch /data/x; echo ro=$?; echo done > /out/result; echo rw=$?; \
             echo kube=$KUBECONFIG; cat \"$KUBECONFIG\""),
        &p,
        &Redactor::default(),
        None,
    )
    .unwrap();
    assert!(r.stdout.starts_with("hello\n"), "{r:?}");
    assert!(
        r.stdout.contains("ro=1") && r.stdout.contains("rw=0"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("result")).unwrap(),
        "done\n"
    );
    // A 0600 credential file of the caller is copied for the tool, never bound in place.
    assert!(
        r.stdout.contains("kube=/run/credentials/KUBECONFIG"),
        "{r:?}"
    );
    assert!(r.stdout.contains("apiVersion: v1"), "{r:?}");
}

/// A warm helper makes a run's directories ahead for the default uid; a run under another uid
/// makes its own: either way the tool is that uid, its generated `/etc/passwd` names it, and
/// its working directory is its own to write.
#[test]
fn staged_and_fresh_directories_serve_the_uid_the_run_asks_for() {
    isolated();
    let script = "id -u; grep -c \"^sandbox:x:$(id -u):\" /etc/passwd; touch \"$HOME/mine\" && ls -n \"$HOME/mine\" | awk '{print $3}'";
    for (user, uid) in [
        (None, "65534"),
        (Some("4242:4243"), "4242"),
        (None, "65534"),
    ] {
        let p = SandboxPolicy {
            user: user.map(str::to_owned),
            ..policy()
        };
        let r = run(&sh(script), &p, &Redactor::default(), None).unwrap();
        assert!(r.succeeded(), "{user:?}: {r:?}");
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines, vec![uid, "1", uid], "{user:?}: {r:?}");
    }
}

/// Each escape test above, both ways a sandbox is built: ahead, in a warm helper (what the
/// router's default-uid runs get), and from nothing in this process (what every other run gets).
macro_rules! both_ways {
    ($($name:ident),* $(,)?) => {
        mod built_ahead {
            $(#[test] fn $name() { super::$name(super::Via::Ahead) })*
        }
        mod built_in_process {
            $(#[test] fn $name() { super::$name(super::Via::InProcess) })*
        }
    };
}

both_ways!(
    with_egress_allowed_the_host_network_is_still_out_of_reach,
    the_host_filesystem_and_processes_are_invisible,
    the_tool_is_unprivileged_without_capabilities_and_filtered,
    a_daemon_holding_stdout_neither_outlives_nor_delays_the_run,
    process_limits_hold_for_the_mapped_uid,
    extra_mounts_and_credential_files_are_visible_as_configured,
);
