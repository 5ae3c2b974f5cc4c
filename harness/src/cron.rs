//! `[[trigger.cron]]`: 7-field schedules and the `fermyon:spin-cron@2.0.0` export.
//!
//! Decision: expressions are `sec min hour day-of-month month day-of-week year` (UTC), as the
//! spin-trigger-cron plugin reads them (it uses the `cron` crate: day-of-week 1-7 with 1 =
//! Sunday, names like `MON`/`JAN` allowed, `?` = `*`). Each field becomes a bit set; the scheduler
//! wakes on every second boundary and fires the triggers whose sets all contain that second, so
//! no "next time" arithmetic is needed. An invocation gets a fresh instance, like an HTTP request.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Datelike, Timelike, Utc};

const DOW_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// One field as the set of allowed values (`min..=max`, at most 0..=2100).
#[derive(Debug, Clone)]
struct Field {
    allowed: Vec<bool>,
    min: u32,
}

impl Field {
    fn parse(spec: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<Self> {
        let mut allowed = vec![false; (max - min + 1) as usize];
        let value = |s: &str| -> Result<u32> {
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
                return Ok(i as u32 + name_base);
            }
            let v: u32 = s
                .parse()
                .with_context(|| format!("`{s}` is not a number"))?;
            if v < min || v > max {
                bail!("{v} is outside {min}..={max}");
            }
            Ok(v)
        };
        for part in spec.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let s: u32 = s.parse().with_context(|| format!("bad step in `{part}`"))?;
                    if s == 0 {
                        bail!("step 0 in `{part}`");
                    }
                    (r, s)
                }
                None => (part, 1),
            };
            let (lo, hi) = if range == "*" || range == "?" {
                (min, max)
            } else if let Some((a, b)) = range.split_once('-') {
                (value(a)?, value(b)?)
            } else {
                let v = value(range)?;
                // `5/10` means "from 5 every 10".
                (v, if part.contains('/') { max } else { v })
            };
            if lo > hi {
                bail!("empty range `{range}`");
            }
            let mut v = lo;
            while v <= hi {
                allowed[(v - min) as usize] = true;
                v += step;
            }
        }
        Ok(Self { allowed, min })
    }

    fn contains(&self, v: u32) -> bool {
        v.checked_sub(self.min)
            .and_then(|i| self.allowed.get(i as usize))
            .copied()
            .unwrap_or(false)
    }
}

/// A parsed 7-field cron expression.
#[derive(Debug, Clone)]
pub struct Schedule {
    fields: [Field; 7],
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Self> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 7 {
            bail!(
                "`{expr}`: expected 7 fields (sec min hour day-of-month month day-of-week year), found {}",
                parts.len()
            );
        }
        let f = |i: usize, min, max, names: &[&str], base| {
            Field::parse(parts[i], min, max, names, base)
                .with_context(|| format!("`{expr}` field {}", i + 1))
        };
        Ok(Self {
            fields: [
                f(0, 0, 59, &[], 0)?,
                f(1, 0, 59, &[], 0)?,
                f(2, 0, 23, &[], 0)?,
                f(3, 1, 31, &[], 0)?,
                f(4, 1, 12, &MONTH_NAMES, 1)?,
                f(5, 1, 7, &DOW_NAMES, 1)?,
                f(6, 1970, 2100, &[], 0)?,
            ],
        })
    }

    /// Whether the schedule fires at this (whole) second.
    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        let values = [
            t.second(),
            t.minute(),
            t.hour(),
            t.day(),
            t.month(),
            t.weekday().number_from_sunday(),
            t.year().max(0) as u32,
        ];
        self.fields.iter().zip(values).all(|(f, v)| f.contains(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_and_matches() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 12, 30, 15).unwrap(); // a Saturday
        assert!(Schedule::parse("* * * * * * *").unwrap().matches(t));
        assert!(Schedule::parse("15 30 12 28 11 7 2026").unwrap().matches(t));
        assert!(Schedule::parse("*/5 */10 * * * * *").unwrap().matches(t));
        assert!(!Schedule::parse("*/4 * * * * * *").unwrap().matches(t));
        assert!(
            Schedule::parse("0,15,45 0-30 * * NOV SAT *")
                .unwrap()
                .matches(t)
        );
        assert!(!Schedule::parse("0 * * * * MON-FRI *").unwrap().matches(t));
        assert!(Schedule::parse("* * * * *").is_err());
        assert!(Schedule::parse("61 * * * * * *").is_err());
    }
}
