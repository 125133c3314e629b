//! What the tool router's test binaries share: the service token and grant key their routers
//! accept, and the configuration of a router on port 0 with the project's policies and an
//! object store in a directory the test owns.
#![allow(dead_code)]

use std::path::Path;

use carapulse_core::config::Config;

/// Signs execution grants in tests (the orchestrator mints, the tool router checks).
pub const TEST_GRANT_KEY: &str = "test-grant-key-0123456789abcdef0123456789";
pub const TOKEN: &str = "service-token-for-tests-0123456789";

/// A router configuration for tests; `objects` holds its object store.
pub fn router_config(objects: &Path) -> Config {
    let mut config = Config::default();
    config.tool_router.http_addr = "127.0.0.1:0".into();
    config.tool_router.auth_token = Some(TOKEN.into());
    config.tool_router.grant_key = Some(TEST_GRANT_KEY.into());
    config.policy.policy_dir = carapulse_core::testing::policies_dir();
    config.storage.object_store.fs_root = objects.to_string_lossy().into_owned();
    config
}
