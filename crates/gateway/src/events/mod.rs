//! Change events for subscribers: the hub that listens to Postgres (`LISTEN` on one channel per
//! kind, filled by triggers in every process's writes), the filters a subscriber asks for, and
//! the stream that replays from `event_log` and then follows live — the same for SSE and
//! WebSocket.

pub mod hub;
pub mod stream;

pub use hub::{Event, EventHub, KINDS};
pub use stream::{EventFilter, EventStream};
