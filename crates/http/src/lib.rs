//! HTTP pieces every Carapulse service shares, so errors look the same everywhere:
//! [`error::ApiError`] renders `{"error": {"code", "message"}}`, and the extractors in
//! [`extract`] turn malformed bodies and queries into precise 4xx errors.

pub mod error;
pub mod extract;
pub mod serve;
pub mod text;

pub use error::{ApiError, ApiResult};
