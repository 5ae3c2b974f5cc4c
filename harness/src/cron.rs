//! `[[trigger.cron]]`: schedules and the `fermyon:spin-cron@2.0.0` export.
//!
//! Decision: expressions are parsed exactly as spin-trigger-cron 0.3.0 parses them (checked
//! against the real plugin): tokio-cron-scheduler 0.13.0 hands them to croner 2.1.0 as
//! `Cron::new(expr).with_seconds_required().with_dom_and_dow()`, so there are 6 fields
//! (`sec min hour day-of-month month day-of-week`, UTC), day-of-month and day-of-week must
//! both match, and anything else (a 7th "year" field included) fails start with
//! `ParseSchedule`, as `spin up` does. The same croner version is pinned here. The scheduler
//! wakes on every second boundary and fires the triggers whose schedule matches that second.
//! An invocation gets a fresh instance, like an HTTP request.

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use croner::Cron;

/// A parsed cron expression.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Self> {
        let cron = Cron::new(expr)
            .with_seconds_required()
            .with_dom_and_dow()
            .parse()
            .map_err(|e| anyhow!("ParseSchedule: cron_expression `{expr}`: {e}"))?;
        Ok(Self { cron })
    }

    /// Whether the schedule fires at this (whole) second.
    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        self.cron.is_time_matching(&t).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn six_fields_as_trigger_cron_parses_them() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 12, 30, 15).unwrap(); // a Saturday
        assert!(Schedule::parse("* * * * * *").unwrap().matches(t));
        assert!(Schedule::parse("15 30 12 28 11 6").unwrap().matches(t));
        assert!(Schedule::parse("15 30 12 28 11 SAT").unwrap().matches(t));
        assert!(Schedule::parse("*/5 */10 * * * *").unwrap().matches(t));
        assert!(!Schedule::parse("*/4 * * * * *").unwrap().matches(t));
        assert!(
            Schedule::parse("0,15,45 0-30 * * NOV SAT")
                .unwrap()
                .matches(t)
        );
        assert!(!Schedule::parse("15 30 12 * * MON-FRI").unwrap().matches(t));
        // Day-of-month AND day-of-week (with_dom_and_dow): the 28th that is not a Monday.
        assert!(!Schedule::parse("15 30 12 28 * MON").unwrap().matches(t));
        assert!(Schedule::parse("0 */10 * * * *").is_ok());
    }

    #[test]
    fn refuses_what_trigger_cron_refuses() {
        for bad in [
            "0 */10 * * * * *", // 7 fields (a year): spin up ends with ParseSchedule
            "*/10 * * * *",     // 5 fields: seconds are required
            "61 * * * * *",
            "",
        ] {
            let err = Schedule::parse(bad).unwrap_err().to_string();
            assert!(err.contains("ParseSchedule"), "{bad}: {err}");
        }
    }
}
