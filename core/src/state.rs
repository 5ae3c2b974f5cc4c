//! The package state machine: `open -> finalized -> deleting -> deleted`.
//!
//! Also `open -> deleting` (an abandoned package), and `deleting -> finalized | open` when a
//! hold stops a deletion: the package returns to the status it had, which is recoverable
//! from `finalized_at` (set iff it was finalized), so no extra column is needed.
//! Finalizing a finalized package is idempotent (`Ok(false)`: nothing changed). Every other
//! change is refused: uploads to a non-`open` package with `package_finalized`, anything
//! else with `invalid_state`.

use crate::error::{DomainError, ErrorCode};
use crate::model::{PackageStatus, Timestamp};

use PackageStatus::{Deleted, Deleting, Finalized, Open};

/// Checks `from -> to`. `Ok(true)` = a real change to record, `Ok(false)` = idempotent no-op.
pub fn transition(from: PackageStatus, to: PackageStatus) -> Result<bool, DomainError> {
    match (from, to) {
        (Open, Finalized)
        | (Open, Deleting)
        | (Finalized, Deleting)
        | (Deleting, Deleted)
        | (Deleting, Finalized)
        | (Deleting, Open) => Ok(true),
        (Finalized, Finalized) => Ok(false),
        _ => Err(DomainError::new(
            ErrorCode::InvalidState,
            format!("a {} package cannot become {}", from.as_str(), to.as_str()),
        )),
    }
}

/// `open -> finalized`; `Ok(false)` when it already was finalized.
pub fn finalize(status: PackageStatus) -> Result<bool, DomainError> {
    transition(status, Finalized)
}

/// Where a package whose deletion a hold stopped goes back to.
pub fn status_after_stopped_deletion(finalized_at: Option<Timestamp>) -> PackageStatus {
    if finalized_at.is_some() {
        Finalized
    } else {
        Open
    }
}

/// Only `open` packages accept files.
pub fn can_upload(status: PackageStatus) -> bool {
    status == Open
}

/// `can_upload` as an error: `package_finalized` (409) for any other status.
pub fn check_upload(status: PackageStatus) -> Result<(), DomainError> {
    if can_upload(status) {
        Ok(())
    } else {
        Err(DomainError::new(
            ErrorCode::PackageFinalized,
            format!(
                "the package is {}; files can only be added while it is open",
                status.as_str()
            ),
        ))
    }
}

/// A manifest exists once the package was finalized (tombstones keep theirs).
pub fn check_manifest(status: PackageStatus) -> Result<(), DomainError> {
    if status == Open {
        Err(DomainError::new(
            ErrorCode::PackageNotFinalized,
            "the package is still open; finalize it first",
        ))
    } else {
        Ok(())
    }
}

/// Extensions and holds apply to live packages; `deleted` ones have nothing left to keep.
pub fn check_retention_change(status: PackageStatus) -> Result<(), DomainError> {
    if status == Deleted {
        Err(DomainError::new(
            ErrorCode::InvalidState,
            "the package was deleted",
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [PackageStatus; 4] = [Open, Finalized, Deleting, Deleted];

    #[test]
    fn allowed_transitions() {
        let allowed = [
            (Open, Finalized),
            (Open, Deleting),
            (Finalized, Deleting),
            (Deleting, Deleted),
            (Deleting, Finalized),
            (Deleting, Open),
        ];
        for from in ALL {
            for to in ALL {
                let r = transition(from, to);
                if allowed.contains(&(from, to)) {
                    assert_eq!(r, Ok(true), "{from:?}->{to:?}");
                } else if (from, to) == (Finalized, Finalized) {
                    assert_eq!(r, Ok(false));
                } else {
                    assert_eq!(
                        r.unwrap_err().code,
                        ErrorCode::InvalidState,
                        "{from:?}->{to:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn finalize_is_idempotent() {
        assert_eq!(finalize(Open), Ok(true));
        assert_eq!(finalize(Finalized), Ok(false));
        assert_eq!(finalize(Deleted).unwrap_err().code, ErrorCode::InvalidState);
    }

    #[test]
    fn uploads_and_manifests() {
        assert!(can_upload(Open));
        check_upload(Open).unwrap();
        for s in [Finalized, Deleting, Deleted] {
            assert!(!can_upload(s));
            assert_eq!(
                check_upload(s).unwrap_err().code,
                ErrorCode::PackageFinalized
            );
            check_manifest(s).unwrap();
        }
        assert_eq!(
            check_manifest(Open).unwrap_err().code,
            ErrorCode::PackageNotFinalized
        );
        assert_eq!(
            check_retention_change(Deleted).unwrap_err().code,
            ErrorCode::InvalidState
        );
        check_retention_change(Deleting).unwrap();
    }

    #[test]
    fn stopped_deletion_returns_to_previous_status() {
        assert_eq!(status_after_stopped_deletion(None), Open);
        assert_eq!(
            status_after_stopped_deletion(Some(crate::time::now())),
            Finalized
        );
    }
}
