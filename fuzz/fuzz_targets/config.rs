//! Config parsing and validation never panic, for every component.
#![no_main]

use carapulse_core::config::{Component, Config};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_json_str(text) {
        for component in [
            Component::Gateway,
            Component::ToolRouter,
            Component::Orchestrator,
            Component::Agent,
            Component::Cli,
            Component::SandboxExec,
        ] {
            let _ = config.validate(component);
            let _ = config.warnings(component);
        }
    }
});
