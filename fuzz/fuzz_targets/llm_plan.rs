//! The LLM plan parser: any model answer is either refused or yields steps that validate.
#![no_main]

use carapulse_core::planner::parse::parse_plan_output;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for break_glass in [false, true] {
        if let Ok(plan) = parse_plan_output(text, break_glass) {
            for step in &plan.steps {
                assert!(step.validate().is_ok(), "accepted an invalid step: {step:?}");
            }
        }
    }
});
