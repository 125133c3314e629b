//! Live and replayable log lines per tool call.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

/// Lines kept per call for late subscribers.
const HISTORY: usize = 1000;
/// Calls remembered before the oldest finished ones are dropped.
const MAX_CALLS: usize = 1000;

/// One line of a tool call's output.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub tool_call_id: String,
    pub seq: u64,
    pub stream: &'static str,
    pub level: &'static str,
    pub message: String,
    pub ts: chrono::DateTime<chrono::Utc>,
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum LogEvent {
    Line(LogLine),
    End { status: String },
}

#[derive(Debug)]
struct Call {
    tenant: String,
    history: VecDeque<LogLine>,
    next_seq: u64,
    ended: Option<String>,
    sender: broadcast::Sender<LogEvent>,
}

/// In-memory hub of tool call logs.
#[derive(Debug, Default)]
pub struct LogHub {
    calls: Mutex<(HashMap<String, Call>, VecDeque<String>)>,
}

impl LogHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Call>, VecDeque<String>)> {
        match self.calls.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Registers a call owned by `tenant`; `false` when the id is already known (an id is used
    /// once, so no caller can write into or end another call's stream).
    pub fn open(&self, id: &str, tenant: &str) -> bool {
        let mut guard = self.lock();
        let (calls, order) = &mut *guard;
        if calls.contains_key(id) {
            return false;
        }
        while order.len() >= MAX_CALLS {
            match order.pop_front() {
                Some(old) => {
                    calls.remove(&old);
                }
                None => break,
            }
        }
        let (sender, _) = broadcast::channel(1024);
        calls.insert(
            id.to_owned(),
            Call {
                tenant: tenant.to_owned(),
                history: VecDeque::new(),
                next_seq: 1,
                ended: None,
                sender,
            },
        );
        order.push_back(id.to_owned());
        true
    }

    pub fn push(&self, id: &str, stream: &'static str, message: &str) {
        let mut guard = self.lock();
        let Some(call) = guard.0.get_mut(id) else {
            return;
        };
        let line = LogLine {
            tool_call_id: id.to_owned(),
            seq: call.next_seq,
            stream,
            level: if stream == "stderr" { "warn" } else { "info" },
            message: message.to_owned(),
            ts: chrono::Utc::now(),
        };
        call.next_seq += 1;
        if call.history.len() >= HISTORY {
            call.history.pop_front();
        }
        call.history.push_back(line.clone());
        let _ = call.sender.send(LogEvent::Line(line));
    }

    pub fn end(&self, id: &str, status: &str) {
        let mut guard = self.lock();
        if let Some(call) = guard.0.get_mut(id) {
            call.ended = Some(status.to_owned());
            let _ = call.sender.send(LogEvent::End {
                status: status.to_owned(),
            });
        }
    }

    /// History, whether it ended, and a live receiver — taken atomically so nothing is missed.
    /// `None` when the call is unknown or belongs to another tenant.
    #[allow(clippy::type_complexity)]
    pub fn subscribe(
        &self,
        id: &str,
        tenant: Option<&str>,
    ) -> Option<(Vec<LogLine>, Option<String>, broadcast::Receiver<LogEvent>)> {
        let guard = self.lock();
        let call = guard.0.get(id)?;
        if tenant.is_some_and(|t| t != call.tenant) {
            return None;
        }
        Some((
            call.history.iter().cloned().collect(),
            call.ended.clone(),
            call.sender.subscribe(),
        ))
    }
}
