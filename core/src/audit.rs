//! The audit hash chain.
//!
//! Each event's `hash` is the sha256 (lower-case hex) of the canonical JSON (see `canonical`)
//! of the event serialized without `hash`; `prev_hash` is the previous event's `hash`
//! (`GENESIS_HASH` for `seq` 1) and `seq` increases by one. Decision: absent `package_id` /
//! `file_id` are hashed as explicit `null` members (the API omits them), so an event hashes
//! the same whichever way a store or client writes "absent". Every other field is included,
//! `id` and `seq` too, so no part of an event can change without breaking its hash.
//!
//! `ChainVerifier` is fed events in `seq` order, page by page, and keeps O(1) state, so a
//! chain of millions of events is verified without holding it in memory.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical;
use crate::model::{AuditEvent, Timestamp};
use crate::ports::AuditDraft;

/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The JSON that is hashed: the event without `hash`, absent ids as `null`.
pub fn hashed_value(event: &AuditEvent) -> Value {
    let mut v = serde_json::to_value(event).expect("an audit event serializes");
    let m = v.as_object_mut().expect("an audit event is an object");
    m.remove("hash");
    m.entry("package_id").or_insert(Value::Null);
    m.entry("file_id").or_insert(Value::Null);
    v
}

/// The `hash` an event must carry.
pub fn hash_event(event: &AuditEvent) -> String {
    hex::encode(Sha256::digest(canonical::to_vec(&hashed_value(event))))
}

/// The last event of a chain, as far as appending needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

impl From<&AuditEvent> for ChainHead {
    fn from(e: &AuditEvent) -> Self {
        ChainHead {
            seq: e.seq,
            hash: e.hash.clone(),
        }
    }
}

/// `seq` and `hash` of a chain's head, `(0, GENESIS_HASH)` for an empty chain.
pub fn head_or_genesis(head: Option<&ChainHead>) -> (u64, &str) {
    head.map_or((0, GENESIS_HASH), |h| (h.seq, h.hash.as_str()))
}

/// The event that follows `prev` (`None` = first event of the chain).
pub fn chain_next(
    prev: Option<&AuditEvent>,
    draft: &AuditDraft,
    id: String,
    created_at: Timestamp,
) -> AuditEvent {
    chain_after(prev.map(ChainHead::from).as_ref(), draft, id, created_at)
}

/// `chain_next` from a stored head (`None` = empty chain).
pub fn chain_after(
    head: Option<&ChainHead>,
    draft: &AuditDraft,
    id: String,
    created_at: Timestamp,
) -> AuditEvent {
    let mut event = AuditEvent {
        id,
        seq: head.map_or(1, |h| h.seq + 1),
        event_type: draft.event_type,
        package_id: draft.package_id.clone(),
        file_id: draft.file_id.clone(),
        actor: draft.actor.clone(),
        created_at: crate::time::truncate(created_at),
        details: draft.details.clone(),
        prev_hash: head.map_or_else(|| GENESIS_HASH.to_string(), |h| h.hash.clone()),
        hash: String::new(),
    };
    event.hash = hash_event(&event);
    event
}

/// `schema` of a signed audit checkpoint.
pub const CHECKPOINT_SCHEMA: &str = "artifact-store.audit-checkpoint/v1";

/// The bytes an audit checkpoint's Ed25519 signature covers: the canonical JSON of
/// `{schema, seq, hash, created_at}` (an empty chain: seq 0 and `GENESIS_HASH`).
pub fn checkpoint_message(head: Option<&ChainHead>, created_at: Timestamp) -> String {
    let (seq, hash) = head_or_genesis(head);
    canonical::to_string(&serde_json::json!({
        "schema": CHECKPOINT_SCHEMA,
        "seq": seq,
        "hash": hash,
        "created_at": crate::time::format(created_at),
    }))
}

/// The answer of `GET /audit/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub valid: bool,
    pub events_checked: u64,
    pub first_invalid_id: Option<String>,
    /// Why the chain is invalid when no single event is (events removed from its end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Verifies a chain fed in `seq` order from its start. After the first invalid event it
/// ignores the rest (`is_done()` tells the caller to stop paging).
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: u64,
    prev_hash: String,
    events_checked: u64,
    first_invalid_id: Option<String>,
    /// The chain's end does not match the recorded head, or the chain no longer agrees
    /// with the checkpoint it is held to.
    cut: Option<String>,
    /// A signed checkpoint (`GET /audit/checkpoint`) taken earlier: event `seq` must still
    /// carry `hash`.
    checkpoint: Option<ChainHead>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            events_checked: 0,
            first_invalid_id: None,
            cut: None,
            checkpoint: None,
        }
    }

    /// Also holds the chain to `checkpoint`: a log rewritten before it, however
    /// consistently (every hash recomputed), no longer ends in the checkpoint's hash at its
    /// `seq`.
    pub fn with_checkpoint(checkpoint: ChainHead) -> Self {
        ChainVerifier {
            checkpoint: Some(checkpoint),
            ..Self::new()
        }
    }

    /// Checks one event: `seq` continuity, `prev_hash` linkage and its own `hash`.
    pub fn feed(&mut self, event: &AuditEvent) {
        if self.is_done() {
            return;
        }
        self.events_checked += 1;
        let ok = event.seq == self.expected_seq
            && event.prev_hash == self.prev_hash
            && event.hash == hash_event(event);
        let rewritten = self
            .checkpoint
            .as_ref()
            .is_some_and(|c| c.seq == event.seq && c.hash != event.hash);
        if ok && !rewritten {
            self.expected_seq += 1;
            self.prev_hash.clone_from(&event.hash);
        } else {
            self.first_invalid_id = Some(event.id.clone());
        }
        if ok && rewritten {
            self.cut = Some(format!(
                "event seq {} no longer has the checkpoint's hash: the log was rewritten at \
                 or before it",
                event.seq
            ));
        }
    }

    /// `seq` of the last valid event (page with `audit_range(after_seq, ..)`).
    pub fn last_seq(&self) -> u64 {
        self.expected_seq - 1
    }

    /// `true` once an invalid event was seen.
    pub fn is_done(&self) -> bool {
        self.first_invalid_id.is_some()
    }

    /// After the last event: the chain must end where the store recorded its head (a
    /// chain whose newest events were deleted is still linked, only shorter).
    pub fn finish(&mut self, head: Option<&ChainHead>) {
        if self.is_done() {
            return;
        }
        let (seq, hash) = head_or_genesis(head);
        if self.last_seq() != seq || self.prev_hash != hash {
            self.cut = Some(format!(
                "the chain ends at seq {} but the recorded head is seq {seq}: events were \
                 removed from its end or the head was altered",
                self.last_seq()
            ));
        } else if let Some(c) = self.checkpoint.as_ref().filter(|c| c.seq > seq) {
            self.cut = Some(format!(
                "the chain ends at seq {seq}, before the checkpoint's seq {}: events were \
                 removed",
                c.seq
            ));
        }
    }

    pub fn report(&self) -> VerifyReport {
        VerifyReport {
            valid: self.first_invalid_id.is_none() && self.cut.is_none(),
            events_checked: self.events_checked,
            first_invalid_id: self.first_invalid_id.clone(),
            detail: self.cut.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AuditEventType;
    use serde_json::json;

    fn chain(n: usize) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let draft = AuditDraft {
                event_type: AuditEventType::FileUploaded,
                package_id: (i % 2 == 0).then(|| format!("p{i}")),
                file_id: None,
                actor: "ci".into(),
                details: json!({"i": i}),
            };
            let t = crate::time::parse("2026-11-28T12:00:00Z").unwrap();
            out.push(chain_next(out.last(), &draft, format!("e{i}"), t));
        }
        out
    }

    fn verify(events: &[AuditEvent]) -> VerifyReport {
        let mut v = ChainVerifier::new();
        events.iter().for_each(|e| v.feed(e));
        v.report()
    }

    #[test]
    fn genesis_and_linkage() {
        let c = chain(3);
        assert_eq!(c[0].seq, 1);
        assert_eq!(c[0].prev_hash, GENESIS_HASH);
        assert_eq!(c[1].prev_hash, c[0].hash);
        assert_eq!(c[2].seq, 3);
        assert_eq!(c[0].hash.len(), 64);
        assert_eq!(
            verify(&c),
            VerifyReport {
                valid: true,
                events_checked: 3,
                first_invalid_id: None,
                detail: None,
            }
        );
        assert!(verify(&[]).valid);
    }

    #[test]
    fn absent_ids_hash_as_null() {
        let c = chain(1);
        let v = hashed_value(&c[0]);
        assert_eq!(v["file_id"], Value::Null);
        assert!(v.get("hash").is_none());
        // A store that writes the null explicitly gets the same hash.
        let json = serde_json::to_value(&c[0]).unwrap();
        assert!(json.get("file_id").is_none());
        let mut with_null = json.clone();
        with_null["file_id"] = Value::Null;
        let back: AuditEvent = serde_json::from_value(with_null).unwrap();
        assert_eq!(hash_event(&back), c[0].hash);
    }

    #[test]
    fn detects_tampering_gaps_and_reordering() {
        let c = chain(4);
        let mut t = c.clone();
        t[2].actor = "mallory".into();
        assert_eq!(verify(&t).first_invalid_id.as_deref(), Some("e2"));
        assert_eq!(verify(&t).events_checked, 3);

        let gap = [c[0].clone(), c[2].clone()];
        assert_eq!(verify(&gap).first_invalid_id.as_deref(), Some("e2"));

        let swapped = [c[1].clone(), c[0].clone()];
        assert_eq!(verify(&swapped).first_invalid_id.as_deref(), Some("e1"));

        // Re-hashing a tampered event does not help: the next link breaks.
        let mut t = c.clone();
        t[1].details = json!({"i": 99});
        t[1].hash = hash_event(&t[1]);
        assert_eq!(verify(&t).first_invalid_id.as_deref(), Some("e2"));
    }

    /// Rewrites event `at` and re-links everything after it, as someone with write access
    /// to the database could: the links all hold again.
    fn rewrite(c: &[AuditEvent], at: usize) -> Vec<AuditEvent> {
        let mut t = c.to_vec();
        t[at].actor = "mallory".into();
        for i in at..t.len() {
            if i > 0 {
                t[i].prev_hash = t[i - 1].hash.clone();
            }
            t[i].hash = hash_event(&t[i]);
        }
        t
    }

    fn verify_against(events: &[AuditEvent], checkpoint: &AuditEvent) -> VerifyReport {
        let mut v = ChainVerifier::with_checkpoint(ChainHead::from(checkpoint));
        events.iter().for_each(|e| v.feed(e));
        v.finish(events.last().map(ChainHead::from).as_ref());
        v.report()
    }

    #[test]
    fn a_checkpoint_catches_a_consistent_rewrite_before_it() {
        let c = chain(5);
        let rewritten = rewrite(&c, 1);
        assert!(verify(&rewritten).valid, "links alone cannot tell");
        assert!(verify_against(&c, &c[2]).valid);
        let report = verify_against(&rewritten, &c[2]);
        assert!(!report.valid);
        assert_eq!(report.first_invalid_id.as_deref(), Some("e2"));
        assert!(report.detail.unwrap().contains("checkpoint"));
        // A rewrite after the checkpoint is not the checkpoint's to catch.
        assert!(verify_against(&rewrite(&c, 3), &c[2]).valid);
        // Events removed down to below the checkpoint: caught too, head rewritten or not.
        let report = verify_against(&c[..2], &c[2]);
        assert!(!report.valid);
        assert!(report.detail.unwrap().contains("before the checkpoint"));
    }

    #[test]
    fn checkpoint_message_is_canonical() {
        let c = chain(2);
        let at = crate::time::parse("2026-11-30T12:00:00Z").unwrap();
        let m = checkpoint_message(Some(&ChainHead::from(&c[1])), at);
        assert_eq!(
            m,
            format!(
                "{{\"created_at\":\"2026-11-30T12:00:00Z\",\"hash\":\"{}\",\"schema\":\"{CHECKPOINT_SCHEMA}\",\"seq\":2}}",
                c[1].hash
            )
        );
        assert!(checkpoint_message(None, at).contains(&format!("\"hash\":\"{GENESIS_HASH}\",")));
    }

    #[test]
    fn chain_after_a_stored_head() {
        let c = chain(2);
        let head = ChainHead::from(&c[1]);
        let d = AuditDraft {
            event_type: AuditEventType::PackageCreated,
            package_id: None,
            file_id: None,
            actor: "a".into(),
            details: json!({}),
        };
        let e = chain_after(Some(&head), &d, "e2".into(), c[1].created_at);
        let mut all = c.clone();
        all.push(e);
        assert!(verify(&all).valid);
    }

    #[test]
    fn a_chain_cut_at_its_end_is_invalid() {
        let events = chain(5);
        let head = ChainHead::from(events.last().unwrap());
        let mut whole = ChainVerifier::new();
        events.iter().for_each(|e| whole.feed(e));
        whole.finish(Some(&head));
        assert!(whole.report().valid);

        let mut cut = ChainVerifier::new();
        events[..3].iter().for_each(|e| cut.feed(e));
        cut.finish(Some(&head));
        let report = cut.report();
        assert!(!report.valid);
        assert_eq!(report.first_invalid_id, None);
        assert!(report.detail.unwrap().contains("seq 3"));

        let mut emptied = ChainVerifier::new();
        emptied.finish(Some(&head));
        assert!(!emptied.report().valid);
        let mut empty = ChainVerifier::new();
        empty.finish(None);
        assert!(empty.report().valid);
    }
}
