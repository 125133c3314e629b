//! Unit tests of config loading, overrides and validation.

use super::*;

fn dev_gateway_json() -> &'static str {
    r#"{"gateway": {"dev_mode": true, "dev_jwt_secret": "0123456789abcdef0123456789abcdef"}}"#
}

#[test]
fn defaults_are_complete_and_sandbox_enforced() {
    let cfg = Config::from_json_str("{}").unwrap();
    assert_eq!(cfg.gateway.http_addr, ":8080");
    assert_eq!(cfg.orchestrator.task_queue, "carapulse");
    assert_eq!(cfg.orchestrator.namespace, "default");
    assert!(cfg.sandbox.enforce, "enforcement must be on by default");
    assert_eq!(cfg.approvals.timeout_hours, 24);
    assert_eq!(cfg.policy.policy_package, "policy.assistant.v1");
}

#[test]
fn unknown_field_is_an_error_naming_its_path() {
    let err = Config::from_json_str(r#"{"gateway": {"htp_addr": ":1"}}"#).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("gateway"), "{text}");
    assert!(text.contains("htp_addr"), "{text}");
}

#[test]
fn wrong_type_names_the_field() {
    let err = Config::from_json_str(r#"{"storage": {"max_open_conns": "many"}}"#).unwrap_err();
    assert!(err.to_string().contains("storage.max_open_conns"), "{err}");
}

#[test]
fn invalid_dsn_names_the_field() {
    let cfg = Config::from_json_str(
        r#"{"storage": {"postgres_dsn": "not a url"}, "gateway": {"dev_mode": true, "dev_jwt_secret": "0123456789abcdef0123456789abcdef"}}"#,
    )
    .unwrap();
    let err = cfg.validate(Component::Gateway).unwrap_err().to_string();
    assert!(
        err.starts_with("storage.postgres_dsn: invalid URL"),
        "{err}"
    );
    let cfg = Config::from_json_str(r#"{"storage": {"postgres_dsn": "mysql://x/y"}}"#).unwrap();
    let err = cfg.validate(Component::Cli).unwrap_err().to_string();
    assert!(err.contains("scheme must be postgres"), "{err}");
}

#[test]
fn gateway_without_verifier_is_rejected() {
    let cfg = Config::from_json_str("{}").unwrap();
    let err = cfg.validate(Component::Gateway).unwrap_err().to_string();
    assert!(err.contains("no token verifier"), "{err}");
    let ok = Config::from_json_str(dev_gateway_json()).unwrap();
    ok.validate(Component::Gateway).unwrap();
}

#[test]
fn dev_mode_requires_long_secret() {
    let cfg =
        Config::from_json_str(r#"{"gateway": {"dev_mode": true, "dev_jwt_secret": "short"}}"#)
            .unwrap();
    let err = cfg.validate(Component::Gateway).unwrap_err().to_string();
    assert!(err.starts_with("gateway.dev_jwt_secret"), "{err}");
}

#[test]
fn partial_oidc_names_missing_field() {
    let cfg = Config::from_json_str(
        r#"{"gateway": {"oidc_issuer": "https://idp", "oidc_jwks_url": "https://idp/jwks"}}"#,
    )
    .unwrap();
    let err = cfg.validate(Component::Gateway).unwrap_err().to_string();
    assert!(err.starts_with("gateway.oidc_client_id"), "{err}");
}

#[test]
fn connector_token_without_addr_is_rejected() {
    let cfg = Config::from_json_str(
        r#"{"connectors": {"grafana": {"token": "t"}}, "gateway": {"dev_mode": true, "dev_jwt_secret": "0123456789abcdef0123456789abcdef"}}"#,
    )
    .unwrap();
    let err = cfg.validate(Component::Gateway).unwrap_err().to_string();
    assert!(err.starts_with("connectors.grafana.addr"), "{err}");
}

#[test]
fn bad_listen_addr_and_llm_provider() {
    let cfg = Config::from_json_str(r#"{"tool_router": {"http_addr": "nope"}}"#).unwrap();
    let err = cfg.validate(Component::ToolRouter).unwrap_err().to_string();
    assert!(err.starts_with("tool_router.http_addr"), "{err}");
    let cfg = Config::from_json_str(r#"{"llm": {"provider": "gemini", "model": "x"}}"#).unwrap();
    let err = cfg.validate(Component::ToolRouter).unwrap_err().to_string();
    assert!(err.starts_with("llm.provider"), "{err}");
    let cfg = Config::from_json_str(r#"{"llm": {"provider": "openai"}}"#).unwrap();
    let err = cfg.validate(Component::ToolRouter).unwrap_err().to_string();
    assert!(err.starts_with("llm.model"), "{err}");
}

#[test]
fn fail_open_reads_is_refused() {
    let cfg = Config::from_json_str(r#"{"policy": {"fail_open_reads": true}}"#).unwrap();
    let err = cfg.validate(Component::Cli).unwrap_err().to_string();
    assert!(err.starts_with("policy.fail_open_reads"), "{err}");
}

#[test]
fn demo_clis_need_dev_mode_and_an_existing_directory() {
    let fakes = env!("CARGO_MANIFEST_DIR").to_owned() + "/../../e2e/fakes";
    let with = |dev_mode: bool, dir: &str| {
        let mut cfg = Config::from_json_str("{}").unwrap();
        cfg.gateway.dev_mode = dev_mode;
        cfg.tool_router.demo_cli_dir = Some(dir.to_owned());
        cfg.validate(Component::ToolRouter)
            .map_err(|e| e.to_string())
    };
    assert_eq!(with(true, &fakes), Ok(()));
    let prod = with(false, &fakes).unwrap_err();
    assert!(
        prod.starts_with("tool_router.demo_cli_dir") && prod.contains("dev_mode"),
        "{prod}"
    );
    let missing = with(true, "/nonexistent/fakes").unwrap_err();
    assert!(missing.contains("is not a directory"), "{missing}");
}

#[test]
fn env_overrides_secrets_and_generic_keys() {
    let dir = std::env::temp_dir().join(format!("carapulse-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.json");
    std::fs::write(
        &path,
        r#"{"storage": {"postgres_dsn": "postgres://file/db"}}"#,
    )
    .unwrap();
    let env = vec![
        (
            "CARAPULSE_POSTGRES_DSN".to_owned(),
            "postgres://env/db".to_owned(),
        ),
        (
            "CARAPULSE__GATEWAY__RATE_LIMIT_BURST".to_owned(),
            "7".to_owned(),
        ),
        (
            "CARAPULSE__GATEWAY__HTTP_ADDR".to_owned(),
            "127.0.0.1:9999".to_owned(),
        ),
        (
            "CARAPULSE__CONTEXT__K8S_NAMESPACES".to_owned(),
            r#"["a","b"]"#.to_owned(),
        ),
        ("UNRELATED".to_owned(), "x".to_owned()),
    ];
    let cfg = Config::load_with_env(Some(&path), &env).unwrap();
    assert_eq!(cfg.storage.postgres_dsn, "postgres://env/db");
    assert_eq!(cfg.gateway.rate_limit_burst, 7);
    assert_eq!(cfg.gateway.http_addr, "127.0.0.1:9999");
    assert_eq!(cfg.context.k8s_namespaces, vec!["a", "b"]);

    let bad = vec![("CARAPULSE__GATEWAY__NOPE".to_owned(), "1".to_owned())];
    let err = Config::load_with_env(Some(&path), &bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gateway.nope") || err.contains("nope"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_file_and_bad_json_are_reported() {
    let err = Config::load_with_env(Some(Path::new("/nonexistent/c.json")), &[]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/c.json"));
    let err = Config::from_json_str("{ nope").unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn listen_addr_forms() {
    assert_eq!(parse_listen_addr("x", ":8080").unwrap().port(), 8080);
    assert!(parse_listen_addr("x", "127.0.0.1:0").is_ok());
    assert!(parse_listen_addr("x", "8080").is_err());
}

#[test]
fn shipped_config_files_parse_and_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (file, component) in [
        ("e2e/config.sample.json", Component::Gateway),
        ("deploy/config.dev.json", Component::Gateway),
        ("deploy/config.compose.json", Component::Gateway),
        ("deploy/config.compose.json", Component::ToolRouter),
        ("deploy/config.compose.json", Component::Orchestrator),
        ("deploy/config.compose.json", Component::Agent),
    ] {
        let cfg = Config::load_with_env(Some(&root.join(file)), &[])
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        cfg.validate(component)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}
