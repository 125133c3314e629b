//! The Carapulse Slack agent: `/assistant plan|approve|deny|status|audit` slash commands and
//! the Approve/Deny buttons, turned into gateway API calls made for the person who typed them.
//!
//! Order of work for every Slack request: bounded body read, signature check (HMAC v0 with a
//! timestamp tolerance) before anything else, Slack user -> Carapulse actor ([`identity`]),
//! then an immediate acknowledgement (Slack gives three seconds) while the gateway call runs in
//! the background and its Block Kit answer ([`blocks`]) goes to the request's `response_url`.
//! The gateway sees the agent's service token plus the person it acts for, so separation of
//! duties and audit apply to the person.

pub mod blocks;
pub mod command;
pub mod gateway_client;
pub mod handlers;
pub mod identity;
pub mod metrics;
pub mod signature;
pub mod startup;

pub use startup::{Application, StartupError};
