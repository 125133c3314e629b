//! Until it is built, `sandbox-exec` must validate its config and refuse to pretend: exit 3 with a message.

#[test]
fn exits_3_and_says_what_is_missing() {
    let bin = env!("CARGO_BIN_EXE_sandbox-exec");
    let version = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("sandbox-exec "));
    let out = std::process::Command::new(bin)
        .env_remove("CARAPULSE_CONFIG")
        .env("CARAPULSE_SLACK_SIGNING_SECRET", "test-signing-secret")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not implemented yet"));
    let bad = std::process::Command::new(bin)
        .args(["--config", "/nonexistent/carapulse.json"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/carapulse.json"));
}
