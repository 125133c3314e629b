//! Throttling of audit rows for refused, unauthenticated requests (bad tokens, unsigned
//! webhooks), per peer.
//!
//! Why: such a refusal must be visible in the audit log, but an attacker who needs no token
//! could otherwise write one row per request and flood the chain. Per peer and kind, the first
//! refusal of a window is recorded; the ones after it are counted and the count rides on the
//! next recorded row (`suppressed`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One recorded row per peer and kind per window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Peers tracked before stale windows are pruned.
const PRUNE_THRESHOLD: usize = 10_000;

#[derive(Debug)]
struct Window {
    opened: Instant,
    suppressed: u64,
}

/// Decides which refusals are written.
#[derive(Debug, Default)]
pub struct AuditThrottle {
    windows: Mutex<HashMap<String, Window>>,
}

impl AuditThrottle {
    /// `Some(suppressed since the last recorded row)` when this refusal should be recorded.
    pub fn admit(&self, key: &str) -> Option<u64> {
        self.admit_at(key, Instant::now())
    }

    fn admit_at(&self, key: &str, now: Instant) -> Option<u64> {
        let mut windows = match self.windows.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if windows.len() > PRUNE_THRESHOLD {
            windows.retain(|_, w| now.duration_since(w.opened) < WINDOW);
        }
        match windows.get_mut(key) {
            Some(w) if now.duration_since(w.opened) < WINDOW => {
                w.suppressed += 1;
                None
            }
            Some(w) => {
                let suppressed = w.suppressed;
                *w = Window {
                    opened: now,
                    suppressed: 0,
                };
                Some(suppressed)
            }
            None => {
                windows.insert(
                    key.to_owned(),
                    Window {
                        opened: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_window_with_the_count_of_the_rest() {
        let t = AuditThrottle::default();
        let start = Instant::now();
        assert_eq!(t.admit_at("p", start), Some(0));
        for i in 1..1000 {
            assert_eq!(t.admit_at("p", start + Duration::from_millis(i)), None);
        }
        assert_eq!(t.admit_at("other", start), Some(0), "peers are separate");
        assert_eq!(t.admit_at("p", start + WINDOW), Some(999));
    }
}
