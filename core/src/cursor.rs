//! Opaque list cursors.
//!
//! Decision: a cursor is base64url (no padding) of a small versioned text form, either
//! `t1|<created_at RFC 3339>|<id>` (package lists: the last item's sort key, newest first) or
//! `s1|<seq>` (audit lists). Clients must treat it as opaque; anything that does not decode
//! to one of these forms is `invalid_query` (422), never a 500.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{DomainError, ErrorCode};
use crate::model::Timestamp;
use crate::time;

fn invalid() -> DomainError {
    DomainError::new(
        ErrorCode::InvalidQuery,
        "cursor is not one this server issued",
    )
}

fn decode_text(cursor: &str) -> Result<String, DomainError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// The cursor after an item sorted by `(created_at, id)`.
pub fn encode_time(created_at: Timestamp, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("t1|{}|{id}", time::format(created_at)))
}

pub fn decode_time(cursor: &str) -> Result<(Timestamp, String), DomainError> {
    let text = decode_text(cursor)?;
    let rest = text.strip_prefix("t1|").ok_or_else(invalid)?;
    let (t, id) = rest.split_once('|').ok_or_else(invalid)?;
    if id.is_empty() {
        return Err(invalid());
    }
    Ok((time::parse(t).map_err(|_| invalid())?, id.to_string()))
}

/// The cursor after the audit event with `seq`.
pub fn encode_seq(seq: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("s1|{seq}"))
}

pub fn decode_seq(cursor: &str) -> Result<u64, DomainError> {
    let text = decode_text(cursor)?;
    let n = text.strip_prefix("s1|").ok_or_else(invalid)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    n.parse().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = time::parse("2026-11-28T12:00:00Z").unwrap();
        let id = "0193a2b4-0000-7000-8000-000000000000";
        let c = encode_time(t, id);
        assert!(!c.contains('=') && !c.contains('+') && !c.contains('/'));
        assert_eq!(decode_time(&c).unwrap(), (t, id.to_string()));
        assert_eq!(decode_seq(&encode_seq(u64::MAX)).unwrap(), u64::MAX);
    }

    #[test]
    fn garbage_is_invalid_query() {
        let t = time::parse("2026-11-28T12:00:00Z").unwrap();
        for bad in [
            "",
            "!!!",
            "dDF8",
            &encode_seq(3),
            &URL_SAFE_NO_PAD.encode("t1|yesterday|x"),
        ] {
            assert_eq!(
                decode_time(bad).unwrap_err().code,
                ErrorCode::InvalidQuery,
                "{bad}"
            );
        }
        for bad in [
            "",
            "czF8",
            &encode_time(t, "x"),
            &URL_SAFE_NO_PAD.encode("s1|-1"),
            &URL_SAFE_NO_PAD.encode("s1|99999999999999999999999"),
        ] {
            assert_eq!(
                decode_seq(bad).unwrap_err().code,
                ErrorCode::InvalidQuery,
                "{bad}"
            );
        }
    }
}
