//! The collectors: Kubernetes (watched), the tool-router-backed pollers, and static service
//! mappings.

pub mod kubernetes;
pub mod polled;
pub mod static_map;
