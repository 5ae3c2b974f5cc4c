//! Time at the contract's precision: whole seconds, UTC, RFC 3339 with `Z`.
//!
//! Decision: every timestamp that enters the domain is truncated to whole seconds here, so
//! that the serde form of `model::Timestamp` (chrono's RFC 3339 with `Z`, fraction only when
//! non-zero) is always `2026-11-28T12:00:00Z`, and string order equals time order in SQL.
//! Parsing accepts any RFC 3339 offset and fraction, converts to UTC and truncates: a client
//! sending `+02:00` or `.5` gets the same instant the server would have stored.

use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};

use crate::error::{DomainError, ErrorCode};
use crate::model::Timestamp;

/// The current time, truncated to whole seconds.
pub fn now() -> Timestamp {
    truncate(Utc::now())
}

/// Drops any sub-second part.
pub fn truncate(t: Timestamp) -> Timestamp {
    t.trunc_subsecs(0)
}

/// `2026-11-28T12:00:00Z` (sub-seconds are dropped).
pub fn format(t: Timestamp) -> String {
    truncate(t).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses RFC 3339 (any offset), returning UTC truncated to seconds; errors are
/// `invalid_query` (query parameters such as `created_after`).
pub fn parse(s: &str) -> Result<Timestamp, DomainError> {
    parse_with(s, ErrorCode::InvalidQuery)
}

/// `parse` with the error code of the field being parsed (e.g. `invalid_extension` for
/// `new_expires_at`).
pub fn parse_with(s: &str, code: ErrorCode) -> Result<Timestamp, DomainError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| truncate(t.with_timezone(&Utc)))
        .map_err(|e| DomainError::new(code, format!("not an RFC 3339 timestamp ({e}): {s:?}")))
}

/// Seconds since the Unix epoch (the integer SQL columns used for range queries).
pub fn epoch(t: Timestamp) -> i64 {
    t.timestamp()
}

/// The inverse of `epoch`; `None` outside chrono's range.
pub fn from_epoch(secs: i64) -> Option<Timestamp> {
    DateTime::from_timestamp(secs, 0)
}

/// `t + secs`, or `None` on overflow (never panics, unlike `t + TimeDelta`).
pub fn add_secs(t: Timestamp, secs: i64) -> Option<Timestamp> {
    t.checked_add_signed(TimeDelta::try_seconds(secs)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_z_and_no_fraction() {
        let t = parse("2026-11-28T12:00:00.999+02:00").unwrap();
        assert_eq!(format(t), "2026-11-28T10:00:00Z");
        // The serde form (what every JSON response uses) is the same string.
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-11-28T10:00:00Z\""
        );
    }

    #[test]
    fn now_has_no_fraction() {
        let n = now();
        assert_eq!(n.timestamp_subsec_nanos(), 0);
        assert!(!serde_json::to_string(&n).unwrap().contains('.'));
        assert!(serde_json::to_string(&n).unwrap().ends_with("Z\""));
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let t = parse("2026-11-28T12:00:00Z").unwrap();
        assert_eq!(parse(&format(t)).unwrap(), t);
        assert_eq!(from_epoch(epoch(t)), Some(t));
        assert_eq!(
            parse_with("x", ErrorCode::InvalidExtension)
                .unwrap_err()
                .code,
            ErrorCode::InvalidExtension
        );
        for bad in [
            "",
            "2026-11-28",
            "2026-11-28 12:00:00",
            "yesterday",
            "2026-13-01T00:00:00Z",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().code,
                ErrorCode::InvalidQuery,
                "{bad}"
            );
        }
    }

    #[test]
    fn add_secs_never_panics() {
        let t = parse("2026-11-28T12:00:00Z").unwrap();
        assert_eq!(format(add_secs(t, 60).unwrap()), "2026-11-28T12:01:00Z");
        assert_eq!(add_secs(t, i64::MAX), None);
    }
}
