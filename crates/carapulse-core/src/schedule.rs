//! Cron schedules with time zones: validation and the next run time. Five-field cron
//! (minute hour day-of-month month day-of-week), evaluated in the schedule's IANA time zone so
//! "every day at 09:00 Europe/Paris" follows daylight saving.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::model::ModelError;

/// A parsed schedule expression.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    tz: Tz,
}

impl CronSchedule {
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, ModelError> {
        let fields = expression.split_whitespace().count();
        if fields != 5 {
            return Err(ModelError::new(
                "cron",
                format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), got {fields}"
                ),
            ));
        }
        let cron =
            Cron::from_str(expression).map_err(|e| ModelError::new("cron", e.to_string()))?;
        let tz = Tz::from_str(timezone.trim()).map_err(|_| {
            ModelError::new("timezone", format!("{timezone:?} is not an IANA time zone"))
        })?;
        Ok(Self { cron, tz })
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>, ModelError> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| ModelError::new("cron", format!("no next run: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn next_runs_follow_the_time_zone() {
        let s = CronSchedule::parse("0 9 * * *", "Europe/Paris").unwrap();
        // 2026-03-28 09:00 CET = 08:00 UTC; after the DST switch (29 March) 09:00 CEST = 07:00 UTC.
        let before = Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap();
        assert_eq!(
            s.next_after(before).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 28, 8, 0, 0).unwrap()
        );
        let after = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
        assert_eq!(
            s.next_after(after).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 29, 7, 0, 0).unwrap()
        );
        let every5 = CronSchedule::parse("*/5 * * * *", "UTC").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 10, 2, 30).unwrap();
        assert_eq!(
            every5.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 10, 5, 0).unwrap()
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_refused() {
        assert_eq!(
            CronSchedule::parse("* * * *", "UTC").unwrap_err().field,
            "cron"
        );
        assert_eq!(
            CronSchedule::parse("0 0 * * * *", "UTC").unwrap_err().field,
            "cron"
        );
        assert_eq!(
            CronSchedule::parse("61 * * * *", "UTC").unwrap_err().field,
            "cron"
        );
        assert_eq!(
            CronSchedule::parse("0 9 * * *", "Mars/Olympus")
                .unwrap_err()
                .field,
            "timezone"
        );
    }
}
