//! Verification documents from plans (paths, expectations, analysis windows, capture templates)
//! never panic when parsed, evaluated over arbitrary tool results, or substituted.
#![no_main]

use std::collections::BTreeMap;

use carapulse_core::verify::{template, Analysis, AnalysisState, Expectation, ValuePath};
use serde_json::Value;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ValuePath::parse(text, "path").map(|p| p.select(&Value::Null).len());
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let result = doc.get("result").cloned().unwrap_or(Value::Null);
    let captures: BTreeMap<String, Value> = doc
        .get("captures")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    if let Some(items) = doc.get("expect").and_then(Value::as_array) {
        for item in items {
            if let Ok(e) = Expectation::parse(item, "expect") {
                let _ = e.evaluate(&result, &captures);
            }
        }
    }
    if let Some(window) = doc.get("analysis") {
        if let Ok(w) = Analysis::parse(window, "analysis") {
            let mut state = AnalysisState::default();
            for _ in 0..w.count.min(200) {
                let _ = state.record(&w, carapulse_core::verify::Verdict::Inconclusive);
            }
        }
    }
    if let Some(input) = doc.get("input") {
        if template::references(input, "input").is_ok() {
            let _ = template::substitute(input, &captures);
        }
    }
});
