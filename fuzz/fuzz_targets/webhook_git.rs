//! The git webhook parser never panics and keeps its invariants, whatever the body.
#![no_main]

#[path = "webhook_common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::check("git", data));
