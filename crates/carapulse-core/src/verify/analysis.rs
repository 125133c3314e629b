//! Analysis windows: a verify step that samples repeatedly, and the state machine that turns
//! the verdicts of its samples into one result.
//!
//! ```json
//! {"initial_delay": "30s", "interval": "1m", "count": 5, "failure_limit": 1, "inconclusive_limit": 1}
//! ```
//!
//! Semantics follow Argo Rollouts' analysis runs: the run fails once more than `failure_limit`
//! samples failed, turns inconclusive once more than `inconclusive_limit` were inconclusive,
//! and passes when `count` samples were taken without either. The machine is pure; the workflow
//! waits between samples with durable timers.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::expect::Verdict;
use super::SpecError;

/// Longest initial delay and interval.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Most samples in one analysis.
pub const MAX_COUNT: u32 = 100;
/// Longest whole analysis (initial delay + count x interval).
pub const MAX_TOTAL: Duration = Duration::from_secs(6 * 3600);

/// A validated analysis window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analysis {
    pub initial_delay_secs: u64,
    pub interval_secs: u64,
    pub count: u32,
    pub failure_limit: u32,
    pub inconclusive_limit: u32,
}

/// Parses `30`, `"30s"`, `"5m"`, `"1h"` (whole units only) into a duration.
fn duration(v: &Value, field: &str) -> Result<Duration, SpecError> {
    let err = || SpecError::new(field, "a duration: seconds, or \"30s\", \"5m\", \"1h\"");
    let secs = match v {
        Value::Number(n) => n.as_u64().ok_or_else(err)?,
        Value::String(s) => {
            let s = s.trim();
            let (digits, unit) =
                s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let n: u64 = digits.parse().map_err(|_| err())?;
            let scale = match unit {
                "" | "s" => 1,
                "m" => 60,
                "h" => 3600,
                _ => return Err(err()),
            };
            n.checked_mul(scale).ok_or_else(err)?
        }
        _ => return Err(err()),
    };
    Ok(Duration::from_secs(secs))
}

impl Analysis {
    /// Validates `doc`; errors name the field under `field` (e.g. `steps[3].analysis`).
    pub fn parse(doc: &Value, field: &str) -> Result<Self, SpecError> {
        let at = |k: &str| format!("{field}.{k}");
        let obj = doc.as_object().ok_or_else(|| {
            SpecError::new(field, "must be an object {initial_delay, interval, count, failure_limit, inconclusive_limit}")
        })?;
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "initial_delay" | "interval" | "count" | "failure_limit" | "inconclusive_limit"
            ) {
                return Err(SpecError::new(at(key), "unknown field"));
            }
        }
        let initial_delay = match obj.get("initial_delay") {
            Some(v) => duration(v, &at("initial_delay"))?,
            None => Duration::ZERO,
        };
        if initial_delay > MAX_WAIT {
            return Err(SpecError::new(at("initial_delay"), "at most 1h"));
        }
        let interval = obj
            .get("interval")
            .ok_or_else(|| SpecError::new(at("interval"), "required"))
            .and_then(|v| duration(v, &at("interval")))?;
        if interval < Duration::from_secs(1) || interval > MAX_WAIT {
            return Err(SpecError::new(at("interval"), "between 1s and 1h"));
        }
        let small = |k: &str, default: u32, max: u32| -> Result<u32, SpecError> {
            match obj.get(k) {
                None => Ok(default),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n <= max)
                    .ok_or_else(|| SpecError::new(at(k), format!("a whole number, at most {max}"))),
            }
        };
        let count = small("count", 1, MAX_COUNT)?;
        if count == 0 {
            return Err(SpecError::new(at("count"), "at least 1"));
        }
        let failure_limit = small("failure_limit", 0, MAX_COUNT)?;
        let inconclusive_limit = small("inconclusive_limit", 0, MAX_COUNT)?;
        if failure_limit >= count {
            return Err(SpecError::new(
                at("failure_limit"),
                "below count (otherwise the analysis can never fail)",
            ));
        }
        let total = initial_delay + interval * count.saturating_sub(1);
        if total > MAX_TOTAL {
            return Err(SpecError::new(
                field,
                format!("the whole analysis takes {}s; at most 6h", total.as_secs()),
            ));
        }
        Ok(Self {
            initial_delay_secs: initial_delay.as_secs(),
            interval_secs: interval.as_secs(),
            count,
            failure_limit,
            inconclusive_limit,
        })
    }

    /// The window of a verify step that declares expectations but no analysis: one sample,
    /// taken at once, that must pass.
    pub fn single() -> Self {
        Self {
            initial_delay_secs: 0,
            interval_secs: 0,
            count: 1,
            failure_limit: 0,
            inconclusive_limit: 0,
        }
    }

    pub fn initial_delay(&self) -> Duration {
        Duration::from_secs(self.initial_delay_secs)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }
}

/// What to do after recording a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalysisNext {
    /// Take another sample after this long.
    SampleAfter(Duration),
    /// The analysis is over with this verdict.
    Done(Verdict),
}

/// Counts of one analysis in progress; serialisable so it can live in workflow state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisState {
    pub samples: u32,
    pub failures: u32,
    pub inconclusives: u32,
}

impl AnalysisState {
    /// Records one sample's verdict and says what comes next.
    pub fn record(&mut self, window: &Analysis, verdict: Verdict) -> AnalysisNext {
        self.samples += 1;
        match verdict {
            Verdict::Passed => {}
            Verdict::Failed => self.failures += 1,
            Verdict::Inconclusive => self.inconclusives += 1,
        }
        if self.failures > window.failure_limit {
            return AnalysisNext::Done(Verdict::Failed);
        }
        if self.inconclusives > window.inconclusive_limit {
            return AnalysisNext::Done(Verdict::Inconclusive);
        }
        if self.samples >= window.count {
            return AnalysisNext::Done(Verdict::Passed);
        }
        AnalysisNext::SampleAfter(window.interval())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use Verdict::{Failed as F, Inconclusive as I, Passed as P};

    fn window(doc: Value) -> Analysis {
        Analysis::parse(&doc, "analysis").unwrap()
    }

    fn run(window: &Analysis, samples: &[Verdict]) -> (Option<Verdict>, u32) {
        let mut state = AnalysisState::default();
        for v in samples {
            if let AnalysisNext::Done(result) = state.record(window, *v) {
                return (Some(result), state.samples);
            }
        }
        (None, state.samples)
    }

    #[test]
    fn sample_sequences_become_verdicts() {
        let w = window(
            json!({"initial_delay": "30s", "interval": "1m", "count": 5, "failure_limit": 1, "inconclusive_limit": 1}),
        );
        assert_eq!(w.initial_delay(), Duration::from_secs(30));
        assert_eq!(w.interval(), Duration::from_secs(60));
        assert_eq!(run(&w, &[P, P, P, P, P]), (Some(P), 5));
        assert_eq!(
            run(&w, &[P, F, P, P, P]),
            (Some(P), 5),
            "one failure is within the limit"
        );
        assert_eq!(
            run(&w, &[P, F, F]),
            (Some(F), 3),
            "the second failure ends it at once"
        );
        assert_eq!(run(&w, &[I, P, I]), (Some(I), 3));
        assert_eq!(run(&w, &[P, P]), (None, 2), "still sampling");
        let mut state = AnalysisState::default();
        assert_eq!(
            state.record(&w, P),
            AnalysisNext::SampleAfter(Duration::from_secs(60))
        );
        let strict = window(json!({"interval": 5, "count": 3}));
        assert_eq!(run(&strict, &[P, F]), (Some(F), 2));
        assert_eq!(run(&strict, &[I]), (Some(I), 1));
        let single = window(json!({"interval": "1s"}));
        assert_eq!(run(&single, &[P]), (Some(P), 1));
    }

    #[test]
    fn windows_are_validated_and_capped() {
        let cases = [
            (json!([]), "analysis"),
            (json!({"count": 3}), "analysis.interval"),
            (json!({"interval": "0s"}), "analysis.interval"),
            (json!({"interval": "2h"}), "analysis.interval"),
            (json!({"interval": "1x"}), "analysis.interval"),
            (json!({"interval": "-5"}), "analysis.interval"),
            (
                json!({"interval": 10, "initial_delay": "3h"}),
                "analysis.initial_delay",
            ),
            (json!({"interval": 10, "count": 0}), "analysis.count"),
            (json!({"interval": 10, "count": 101}), "analysis.count"),
            (
                json!({"interval": 10, "count": 3, "failure_limit": 3}),
                "analysis.failure_limit",
            ),
            (json!({"interval": "1h", "count": 8}), "analysis"),
            (json!({"interval": 10, "sleep": 1}), "analysis.sleep"),
        ];
        for (doc, field) in cases {
            let err = Analysis::parse(&doc, "analysis").unwrap_err();
            assert_eq!(err.field, field, "{doc}: {err}");
        }
    }
}
