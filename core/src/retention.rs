//! Retention: how long each class keeps its packages, extensions, and when a package may be
//! deleted.
//!
//! Decisions:
//! - `expires_at` is fixed at creation from the class rule (`RetentionRules`); only an
//!   extension moves it, and only later. `permanent-record` never expires, so it has nothing
//!   to extend and is never deletion eligible (not even while abandoned `open`).
//! - An active hold always wins: no package with an active hold is eligible, whatever its
//!   dates or status.
//! - A `deleting` package stays eligible (it is being deleted and the sweep that resumes it
//!   must see it), unless a hold was applied meanwhile; `deleted` is never eligible.
//! - An `open` package is abandoned once `created_at + open_package_ttl_seconds <= now` and
//!   is then eligible like an expired one.
//! - Overrides: `retention_<class>_seconds` (class with `_`), empty = default rule, otherwise
//!   a whole number of seconds in `0..=MAX_RULE_SECS`. Setting one for `permanent-record` is
//!   a configuration error: that class never expires by definition.

use crate::error::{DomainError, ErrorCode};
use crate::model::{Hold, Package, PackageStatus, RetentionClass, Timestamp};
use crate::time;

const DAY: i64 = 86_400;
/// The longest rule a deployment may configure: 100 years.
pub const MAX_RULE_SECS: i64 = 36_525 * DAY;
/// Default `open_package_ttl_seconds`.
pub const DEFAULT_OPEN_TTL_SECS: i64 = DAY;

/// Seconds each class keeps a package (`None` = forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionRules {
    secs: [Option<i64>; 5],
}

fn index(class: RetentionClass) -> usize {
    RetentionClass::ALL
        .iter()
        .position(|c| *c == class)
        .expect("ALL lists every class")
}

impl Default for RetentionRules {
    /// transient 7 days, raw-evidence 90, summary-evidence 365, release-evidence 2557,
    /// permanent-record forever.
    fn default() -> Self {
        RetentionRules {
            secs: [
                Some(7 * DAY),
                Some(90 * DAY),
                Some(365 * DAY),
                Some(2557 * DAY),
                None,
            ],
        }
    }
}

impl RetentionRules {
    /// The variable that overrides `class`: `retention_raw_evidence_seconds`.
    pub fn variable_name(class: RetentionClass) -> String {
        format!("retention_{}_seconds", class.as_str().replace('-', "_"))
    }

    /// Reads the overrides through `get` (a variable lookup; `None` or `""` = default).
    pub fn from_overrides(get: impl Fn(&str) -> Option<String>) -> Result<Self, DomainError> {
        let mut rules = RetentionRules::default();
        for class in RetentionClass::ALL {
            let var = Self::variable_name(class);
            let Some(raw) = get(&var) else { continue };
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let bad = |why: &str| {
                DomainError::new(
                    ErrorCode::Internal,
                    format!("variable {var}={raw:?}: {why}"),
                )
            };
            if class == RetentionClass::PermanentRecord {
                return Err(bad("permanent-record never expires; leave it empty"));
            }
            let secs: i64 = raw
                .parse()
                .map_err(|_| bad("not a whole number of seconds"))?;
            if !(0..=MAX_RULE_SECS).contains(&secs) {
                return Err(bad(&format!("must be in 0..={MAX_RULE_SECS}")));
            }
            rules.secs[index(class)] = Some(secs);
        }
        Ok(rules)
    }

    /// The rule of `class` in seconds (`None` = never expires).
    pub fn seconds(&self, class: RetentionClass) -> Option<i64> {
        self.secs[index(class)]
    }

    /// `created_at + rule`, `None` for classes that never expire.
    pub fn expires_at(&self, class: RetentionClass, created_at: Timestamp) -> Option<Timestamp> {
        // Rules are capped at 100 years, so only a date near chrono's limit could overflow;
        // saturate to "never" rather than panic.
        self.seconds(class)
            .and_then(|s| time::add_secs(time::truncate(created_at), s))
    }
}

/// An extension must move `expires_at` strictly later; `permanent-record` (or any package
/// without an expiry) has nothing to extend.
pub fn check_extension(
    current: Option<Timestamp>,
    new: Timestamp,
    class: RetentionClass,
) -> Result<(), DomainError> {
    let current = match (class, current) {
        (RetentionClass::PermanentRecord, _) | (_, None) => {
            return Err(DomainError::new(
                ErrorCode::InvalidExtension,
                "this package never expires; there is nothing to extend",
            ));
        }
        (_, Some(c)) => c,
    };
    if new <= current {
        return Err(DomainError::new(
            ErrorCode::InvalidExtension,
            format!(
                "new_expires_at {} must be later than the current expires_at {}",
                time::format(new),
                time::format(current)
            ),
        ));
    }
    Ok(())
}

/// What eligibility depends on, taken from a package row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionFacts {
    pub status: PackageStatus,
    pub retention_class: RetentionClass,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

impl From<&Package> for RetentionFacts {
    fn from(p: &Package) -> Self {
        RetentionFacts {
            status: p.status,
            retention_class: p.retention_class,
            created_at: p.created_at,
            expires_at: p.expires_at,
        }
    }
}

/// `true` when an `open` package outlived `open_ttl_secs` without being finalized.
pub fn is_abandoned(
    status: PackageStatus,
    created_at: Timestamp,
    now: Timestamp,
    open_ttl_secs: i64,
) -> bool {
    status == PackageStatus::Open
        && time::add_secs(created_at, open_ttl_secs).is_some_and(|deadline| deadline <= now)
}

/// Why a sweep keeps a package it looked at (a sweep dry run lists these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepReason {
    /// `permanent-record` never expires.
    Permanent,
    /// Would be deleted but for an active hold.
    Held,
    /// Finalized, and its `expires_at` is still ahead.
    NotExpired,
    /// Open, and not yet abandoned (its class rule does not count while it may receive
    /// uploads).
    NotAbandoned,
    /// Already deleted.
    Deleted,
}

/// May a sweep delete this package now? `None` when it may, else why not. The one place
/// the rules of the module doc are written down; the sweep's SQL mirrors it.
pub fn keep_reason(
    facts: &RetentionFacts,
    holds: &[Hold],
    now: Timestamp,
    open_ttl_secs: i64,
) -> Option<KeepReason> {
    if facts.status == PackageStatus::Deleted {
        return Some(KeepReason::Deleted);
    }
    if facts.retention_class == RetentionClass::PermanentRecord {
        return Some(KeepReason::Permanent);
    }
    // Dates before holds: `held` means "would go but for a hold" (the sweep report's
    // `held`), so releasing the hold is all that is left.
    match facts.status {
        PackageStatus::Open
            if !is_abandoned(facts.status, facts.created_at, now, open_ttl_secs) =>
        {
            Some(KeepReason::NotAbandoned)
        }
        PackageStatus::Finalized if facts.expires_at.is_none_or(|e| e > now) => {
            Some(KeepReason::NotExpired)
        }
        _ if holds.iter().any(Hold::is_active) => Some(KeepReason::Held),
        _ => None,
    }
}

/// May a sweep delete this package now? See `keep_reason`.
pub fn deletion_eligible(
    facts: &RetentionFacts,
    holds: &[Hold],
    now: Timestamp,
    open_ttl_secs: i64,
) -> bool {
    keep_reason(facts, holds, now, open_ttl_secs).is_none()
}

/// `deletion_eligible` for a loaded package, using its own holds.
pub fn package_deletion_eligible(p: &Package, now: Timestamp, open_ttl_secs: i64) -> bool {
    deletion_eligible(&RetentionFacts::from(p), &p.holds, now, open_ttl_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        time::parse(s).unwrap()
    }

    fn hold(released: bool) -> Hold {
        Hold {
            id: "h".into(),
            package_id: "p".into(),
            reason: "r".into(),
            created_by: "op".into(),
            created_at: t("2026-01-01T00:00:00Z"),
            released_at: released.then(|| t("2026-01-02T00:00:00Z")),
        }
    }

    #[test]
    fn defaults() {
        let r = RetentionRules::default();
        let c = t("2026-01-01T00:00:00Z");
        assert_eq!(
            r.expires_at(RetentionClass::Transient, c),
            Some(t("2026-01-08T00:00:00Z"))
        );
        assert_eq!(r.seconds(RetentionClass::RawEvidence), Some(90 * DAY));
        assert_eq!(r.seconds(RetentionClass::SummaryEvidence), Some(365 * DAY));
        assert_eq!(r.seconds(RetentionClass::ReleaseEvidence), Some(2557 * DAY));
        assert_eq!(r.expires_at(RetentionClass::PermanentRecord, c), None);
    }

    #[test]
    fn overrides() {
        let r = RetentionRules::from_overrides(|k| match k {
            "retention_raw_evidence_seconds" => Some("60".into()),
            "retention_transient_seconds" => Some("".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(r.seconds(RetentionClass::RawEvidence), Some(60));
        assert_eq!(r.seconds(RetentionClass::Transient), Some(7 * DAY));
        for (var, val) in [
            ("retention_transient_seconds", "7d"),
            ("retention_transient_seconds", "-1"),
            ("retention_summary_evidence_seconds", "99999999999999"),
            ("retention_permanent_record_seconds", "1"),
        ] {
            let e = RetentionRules::from_overrides(|k| (k == var).then(|| val.to_string()));
            assert!(e.unwrap_err().detail.contains(var), "{var}={val}");
        }
    }

    #[test]
    fn extensions() {
        let cur = t("2026-02-01T00:00:00Z");
        let raw = RetentionClass::RawEvidence;
        check_extension(Some(cur), t("2026-02-01T00:00:01Z"), raw).unwrap();
        for new in [cur, t("2026-01-31T00:00:00Z")] {
            assert_eq!(
                check_extension(Some(cur), new, raw).unwrap_err().code,
                ErrorCode::InvalidExtension
            );
        }
        let perm = RetentionClass::PermanentRecord;
        assert_eq!(
            check_extension(None, cur, perm).unwrap_err().code,
            ErrorCode::InvalidExtension
        );
    }

    #[test]
    fn eligibility() {
        let now = t("2026-03-01T00:00:00Z");
        let mut f = RetentionFacts {
            status: PackageStatus::Finalized,
            retention_class: RetentionClass::Transient,
            created_at: t("2026-01-01T00:00:00Z"),
            expires_at: Some(t("2026-03-01T00:00:00Z")),
        };
        assert!(deletion_eligible(&f, &[], now, DAY));
        assert!(deletion_eligible(&f, &[hold(true)], now, DAY));
        assert!(!deletion_eligible(&f, &[hold(true), hold(false)], now, DAY));
        f.expires_at = Some(t("2026-03-01T00:00:01Z"));
        assert!(!deletion_eligible(&f, &[], now, DAY));

        f.status = PackageStatus::Open; // created two months ago: abandoned
        assert!(deletion_eligible(&f, &[], now, DAY));
        assert!(!deletion_eligible(&f, &[], f.created_at, DAY));
        assert!(deletion_eligible(
            &f,
            &[],
            time::add_secs(f.created_at, DAY).unwrap(),
            DAY
        ));

        f.status = PackageStatus::Deleting;
        assert!(deletion_eligible(&f, &[], now, DAY));
        assert!(!deletion_eligible(&f, &[hold(false)], now, DAY));
        f.status = PackageStatus::Deleted;
        assert!(!deletion_eligible(&f, &[], now, DAY));

        f.status = PackageStatus::Open;
        f.retention_class = RetentionClass::PermanentRecord;
        f.expires_at = None;
        assert!(!deletion_eligible(&f, &[], now, DAY));
        assert!(is_abandoned(f.status, f.created_at, now, DAY));
    }

    #[test]
    fn keep_reasons() {
        let now = t("2026-03-01T00:00:00Z");
        let f = RetentionFacts {
            status: PackageStatus::Finalized,
            retention_class: RetentionClass::Transient,
            created_at: t("2026-01-01T00:00:00Z"),
            expires_at: Some(t("2026-03-02T00:00:00Z")),
        };
        let reason = |f: RetentionFacts, holds: &[Hold], now| keep_reason(&f, holds, now, DAY);
        assert_eq!(reason(f, &[], now), Some(KeepReason::NotExpired));
        assert_eq!(reason(f, &[hold(false)], now), Some(KeepReason::NotExpired));
        let later = t("2026-03-02T00:00:00Z");
        assert_eq!(reason(f, &[], later), None);
        assert_eq!(reason(f, &[hold(false)], later), Some(KeepReason::Held));
        let open = RetentionFacts {
            status: PackageStatus::Open,
            ..f
        };
        // Expired by its class rule, yet still within the open TTL: kept.
        assert_eq!(
            reason(open, &[], t("2026-01-01T12:00:00Z")),
            Some(KeepReason::NotAbandoned)
        );
        assert_eq!(reason(open, &[], now), None);
        let permanent = RetentionFacts {
            retention_class: RetentionClass::PermanentRecord,
            expires_at: None,
            ..open
        };
        // Permanent wins over a hold: it would be kept without one.
        assert_eq!(
            reason(permanent, &[hold(false)], now),
            Some(KeepReason::Permanent)
        );
        let deleted = RetentionFacts {
            status: PackageStatus::Deleted,
            ..f
        };
        assert_eq!(reason(deleted, &[], later), Some(KeepReason::Deleted));
        let deleting = RetentionFacts {
            status: PackageStatus::Deleting,
            ..f
        };
        assert_eq!(reason(deleting, &[], now), None);
    }
}
