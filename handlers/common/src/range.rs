//! `Range` request header (RFC 9110 §14) for downloads.
//!
//! Decision: only a single `bytes` range is honoured. A header we do not understand (other
//! unit, several ranges, bad syntax) is ignored and the whole object is served, as the RFC
//! allows; only a well-formed range that misses the object answers 416.

use artifact_store_core::ports::ByteRange;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No (usable) range: serve everything with 200.
    Full,
    /// Serve this slice with 206.
    Partial(ByteRange),
    /// 416 with `Content-Range: bytes */<size>`.
    Unsatisfiable,
}

/// Resolves a `Range` header value against an object of `size` bytes.
pub fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            // Longer than u64: treat as "past any end".
            Some(s.parse().unwrap_or(u64::MAX))
        }
    };
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(last) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Partial(ByteRange {
                start: size.saturating_sub(n),
                end_inclusive: size - 1,
            }),
            None => RangeRequest::Full,
        },
        // bytes=A-: from A to the end.
        (false, true) => match num(first) {
            Some(a) if a >= size => RangeRequest::Unsatisfiable,
            Some(a) => RangeRequest::Partial(ByteRange {
                start: a,
                end_inclusive: size - 1,
            }),
            None => RangeRequest::Full,
        },
        (false, false) => match (num(first), num(last)) {
            (Some(a), Some(b)) if b < a => RangeRequest::Full,
            (Some(a), Some(_)) if a >= size => RangeRequest::Unsatisfiable,
            (Some(a), Some(b)) => RangeRequest::Partial(ByteRange {
                start: a,
                end_inclusive: b.min(size - 1),
            }),
            _ => RangeRequest::Full,
        },
        (true, true) => RangeRequest::Full,
    }
}

impl RangeRequest {
    /// `Content-Range` for a 206 or 416 answer.
    pub fn content_range(&self, size: u64) -> Option<String> {
        match self {
            RangeRequest::Full => None,
            RangeRequest::Partial(r) => {
                Some(format!("bytes {}-{}/{size}", r.start, r.end_inclusive))
            }
            RangeRequest::Unsatisfiable => Some(format!("bytes */{size}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(start: u64, end_inclusive: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange {
            start,
            end_inclusive,
        })
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse(Some("bytes=0-9"), 100), p(0, 9));
        assert_eq!(parse(Some("bytes=90-200"), 100), p(90, 99));
        assert_eq!(parse(Some("bytes=10-"), 100), p(10, 99));
        assert_eq!(parse(Some("bytes=-10"), 100), p(90, 99));
        assert_eq!(parse(Some("bytes=-1000"), 100), p(0, 99));
        assert_eq!(parse(Some(" bytes= 5 - 5 "), 100), p(5, 5));
        assert_eq!(
            parse(Some("bytes=0-99999999999999999999999"), 100),
            p(0, 99)
        );
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse(Some("bytes=100-"), 100), RangeRequest::Unsatisfiable);
        assert_eq!(
            parse(Some("bytes=100-200"), 100),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse(Some("bytes=-0"), 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-5"), 0), RangeRequest::Unsatisfiable);
        assert_eq!(
            RangeRequest::Unsatisfiable.content_range(7).as_deref(),
            Some("bytes */7")
        );
    }

    #[test]
    fn ignored_headers_serve_everything() {
        for h in [
            None,
            Some("items=0-1"),
            Some("bytes=0-1,5-6"),
            Some("bytes=5-1"),
            Some("bytes=a-b"),
            Some("bytes=-"),
            Some("bytes=1"),
            Some("bytes=+1-2"),
        ] {
            assert_eq!(parse(h, 100), RangeRequest::Full, "{h:?}");
        }
    }

    #[test]
    fn content_range_of_partial() {
        assert_eq!(p(0, 9).content_range(100).as_deref(), Some("bytes 0-9/100"));
    }
}
