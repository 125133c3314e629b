//! `cli::library_backtraces_off`: with `RUST_BACKTRACE=1` in the environment, library errors
//! stop capturing stacks (regorus's parser makes one per backtracking step), unless the operator
//! asked for them with `RUST_LIB_BACKTRACE`. Each case runs in a fresh process of this test
//! binary, because the standard library reads the setting once per process.

use std::backtrace::BacktraceStatus;

/// Set in the child process: whether it turns library backtraces off first.
const CHILD: &str = "CARAPULSE_TEST_BACKTRACE_CHILD";

/// What a library error captures in a child started with `env`, after (or without) the call.
fn captured_in_child(turn_off: bool, env: &[(&str, &str)]) -> String {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, if turn_off { "off" } else { "on" })
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .split_once("captured=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no answer from the child: {stdout}"))
        .to_owned()
}

/// Not a test on its own: the process each case of the test below starts.
#[test]
#[ignore = "the child process of library_errors_capture_no_stack_unless_asked_for"]
fn child() {
    let mode = std::env::var(CHILD).expect("started by the test below, which sets the mode");
    if mode == "off" {
        carapulse_core::cli::library_backtraces_off();
    }
    // What anyhow does for every error it builds.
    let status = std::backtrace::Backtrace::capture().status();
    let error = anyhow::anyhow!("a library error");
    let anyhow_captured = format!("{error:?}").contains("Stack backtrace");
    println!(
        "captured={}",
        status == BacktraceStatus::Captured || anyhow_captured
    );
}

#[test]
fn library_errors_capture_no_stack_unless_asked_for() {
    let panics_wanted = [("RUST_BACKTRACE", "1")];
    // Without the call, RUST_BACKTRACE=1 makes every library error capture its stack.
    assert_eq!(captured_in_child(false, &panics_wanted), "true");
    // With it, none does.
    assert_eq!(captured_in_child(true, &panics_wanted), "false");
    // An operator who asks for library backtraces keeps them.
    assert_eq!(
        captured_in_child(
            true,
            &[("RUST_BACKTRACE", "1"), ("RUST_LIB_BACKTRACE", "1")]
        ),
        "true"
    );
}
