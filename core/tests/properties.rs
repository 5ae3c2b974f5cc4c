//! Property tests of the rules whose failure would lose or expose evidence: retention,
//! relative paths, manifest determinism and the audit chain.

use std::collections::{BTreeMap, BTreeSet};

use artifact_store_core::audit::{self, ChainVerifier};
use artifact_store_core::error::ErrorCode;
use artifact_store_core::manifest;
use artifact_store_core::model::{
    AuditEvent, AuditEventType, File, Hold, Package, PackageStatus, RetentionClass, RetentionEvent,
    RetentionEventType, StorageLocation, Timestamp,
};
use artifact_store_core::ports::AuditDraft;
use artifact_store_core::retention::{self, RetentionFacts, RetentionRules};
use artifact_store_core::{content, time, validate};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

/// Whole-second timestamps between 1970 and 2100.
fn ts() -> impl Strategy<Value = Timestamp> {
    (0i64..4_102_444_800).prop_map(|s| time::from_epoch(s).unwrap())
}

fn class() -> impl Strategy<Value = RetentionClass> {
    select(RetentionClass::ALL.to_vec())
}

fn status() -> impl Strategy<Value = PackageStatus> {
    select(vec![
        PackageStatus::Open,
        PackageStatus::Finalized,
        PackageStatus::Deleting,
        PackageStatus::Deleted,
    ])
}

fn hold(active: bool) -> impl Strategy<Value = Hold> {
    (ts(), ts()).prop_map(move |(c, r)| Hold {
        id: "h".into(),
        package_id: "p".into(),
        reason: "r".into(),
        created_by: "op".into(),
        created_at: c,
        released_at: (!active).then_some(r),
    })
}

// ---------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn never_eligible_while_a_hold_is_active(
        status in status(),
        class in class(),
        created_at in ts(),
        expires_at in proptest::option::of(ts()),
        now in ts(),
        ttl in 0i64..10_000_000,
        released in proptest::collection::vec(hold(false), 0..3),
        active in proptest::collection::vec(hold(true), 1..3),
        split in any::<prop::sample::Index>(),
    ) {
        let facts = RetentionFacts { status, retention_class: class, created_at, expires_at };
        let mut holds = released.clone();
        let at = split.index(holds.len() + 1);
        holds.splice(at..at, active);
        prop_assert!(!retention::deletion_eligible(&facts, &holds, now, ttl));
        // And the rule is not vacuous: without the active ones, an expired finalized
        // package is eligible.
        let expired = RetentionFacts {
            status: PackageStatus::Finalized,
            retention_class: RetentionClass::Transient,
            created_at,
            expires_at: Some(now),
        };
        prop_assert!(retention::deletion_eligible(&expired, &released, now, ttl));
    }

    #[test]
    fn extensions_only_move_later(
        current in ts(),
        new in ts(),
        step in -2i64..=2,
        class in class(),
    ) {
        // Random pairs almost never meet the boundary: also try `current` itself and its
        // neighbours.
        let near = current + chrono::TimeDelta::seconds(step);
        for new in [new, near] {
            let r = retention::check_extension(Some(current), new, class);
            if class == RetentionClass::PermanentRecord {
                prop_assert!(r.is_err());
            } else {
                prop_assert_eq!(r.is_ok(), new > current, "{} -> {}", current, new);
            }
        }
    }

    #[test]
    fn expires_at_is_monotonic_in_created_at(
        a in ts(),
        b in ts(),
        class in class(),
        rule in proptest::option::of(0i64..=retention::MAX_RULE_SECS),
    ) {
        let rules = RetentionRules::from_overrides(|k| {
            (class != RetentionClass::PermanentRecord && k == RetentionRules::variable_name(class))
                .then(|| rule.map(|r| r.to_string()).unwrap_or_default())
        })
        .unwrap();
        let (early, late) = if a <= b { (a, b) } else { (b, a) };
        let (e1, e2) = (rules.expires_at(class, early), rules.expires_at(class, late));
        prop_assert!(e1 <= e2);
        if let Some(e) = e1 {
            prop_assert!(e >= early);
        }
        // The value itself: created + the configured rule; never for a permanent record.
        match (class, rule) {
            (RetentionClass::PermanentRecord, _) => prop_assert_eq!(e1, None),
            (_, Some(r)) => {
                prop_assert_eq!(e1, Some(early + chrono::TimeDelta::seconds(r)));
            }
            (_, None) => {
                let days = default_rule_days(class);
                prop_assert_eq!(e1, Some(early + chrono::TimeDelta::days(days)));
            }
        }
    }

    /// A package of an expiring class whose `expires_at` is unset has nothing to extend
    /// either: `check_extension` refuses it as it refuses a permanent record, whatever the
    /// new date.
    #[test]
    fn extension_without_a_current_expiry_is_refused(new in ts(), class in class()) {
        let r = retention::check_extension(None, new, class);
        prop_assert_eq!(r.map_err(|e| e.code), Err(ErrorCode::InvalidExtension));
    }
}

/// The default rules as the README's retention table states them, in days (not read from
/// `RetentionRules::default`, which is what is under test).
fn default_rule_days(class: RetentionClass) -> i64 {
    match class {
        RetentionClass::Transient => 7,
        RetentionClass::RawEvidence => 90,
        RetentionClass::SummaryEvidence => 365,
        RetentionClass::ReleaseEvidence => 2557,
        RetentionClass::PermanentRecord => unreachable!("never expires"),
    }
}

// ---------------------------------------------------------------------------------------
// Relative paths
// ---------------------------------------------------------------------------------------

/// A valid segment: never `.`/`..`, may contain dots, `%2e`, spaces, unicode.
fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._%~ éü-]{1,16}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

fn valid_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(segment(), 1..6)
        .prop_map(|segs| segs.join("/"))
        .prop_filter("no drive prefix", |p| {
            let b = p.as_bytes();
            !(b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
        })
}

/// A way to make a valid path dangerous.
fn trick() -> impl Strategy<Value = &'static str> {
    select(vec![
        "..",
        ".",
        "",
        "\\",
        "..\\..",
        "a\\b",
        "\0",
        "\n",
        "\r",
        "\t",
        "\u{7f}",
        "\u{85}",
        "\u{1b}[31m",
        "./",
        "//",
        "/../",
        "C:",
    ])
}

/// Every control character (`char::is_control`: C0, DEL and C1).
fn control_char() -> impl Strategy<Value = char> {
    let all: Vec<char> = (0..=0x10ffff)
        .filter_map(char::from_u32)
        .filter(|c| c.is_control())
        .collect();
    select(all)
}

/// Every character with Unicode's `Bidi_Control` property (ALM, LRM, RLM, the embeddings
/// and overrides U+202A..U+202E, the isolates U+2066..U+2069), listed from the standard.
fn bidi_control() -> impl Strategy<Value = char> {
    select(vec![
        '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
        '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    ])
}

/// `p` with `c` inserted before the character `at` picks (or at the end).
fn insert_char(p: &str, c: char, at: prop::sample::Index) -> String {
    let bounds: Vec<usize> = p.char_indices().map(|(i, _)| i).chain([p.len()]).collect();
    let mut out = p.to_string();
    out.insert(bounds[at.index(bounds.len())], c);
    out
}

proptest! {
    #[test]
    fn valid_paths_are_accepted_unchanged(p in valid_path()) {
        prop_assert!(validate::relative_path(&p).is_ok(), "{:?}", p);
    }

    #[test]
    fn over_long_and_lookalike_paths_are_rejected(
        p in valid_path(),
        pick in 0usize..6,
    ) {
        let bad = match pick {
            // Over the byte limit, by one.
            0 => "a".repeat(validate::MAX_PATH_BYTES + 1),
            // Bidi controls and other invisible format characters.
            1 => format!("{p}\u{202e}gpj.exe"),
            2 => format!("\u{2066}{p}"),
            // A URL-decoded traversal (the HTTP layer decodes once; this is what it makes).
            3 => format!("{p}/../x"),
            // A leading slash or a Windows drive.
            4 => format!("/{p}"),
            _ => format!("c:/{p}"),
        };
        prop_assert!(validate::relative_path(&bad).is_err(), "accepted {:?}", bad);
    }

    /// Any control or bidi control character, anywhere in an otherwise valid path.
    #[test]
    fn control_and_bidi_characters_anywhere_are_rejected(
        p in valid_path(),
        c in prop_oneof![control_char(), bidi_control()],
        at in any::<prop::sample::Index>(),
    ) {
        let bad = insert_char(&p, c, at);
        let r = validate::relative_path(&bad).map_err(|e| e.code);
        prop_assert_eq!(r, Err(ErrorCode::InvalidPath), "{:?}", bad);
    }

    #[test]
    fn traversal_tricks_are_rejected(
        segs in proptest::collection::vec(segment(), 1..5),
        t in trick(),
        at in any::<prop::sample::Index>(),
        leading_slash in any::<bool>(),
    ) {
        // Insert the trick as its own segment (or inside one for characters).
        let mut s = segs.clone();
        let i = at.index(s.len() + 1);
        if matches!(t, ".." | "." | "" | "./" | "//" | "/../" | "C:") {
            s.insert(i, t.to_string());
            if t == "C:" { s.insert(0, "C:".into()); }
        } else {
            let j = i.min(s.len() - 1);
            s[j] = format!("{}{t}", s[j]);
        }
        let mut p = s.join("/");
        if leading_slash { p.insert(0, '/'); }
        prop_assert!(validate::relative_path(&p).is_err(), "accepted {:?}", p);
    }

    #[test]
    fn percent_encoding_is_literal(segs in proptest::collection::vec(segment(), 0..3)) {
        let mut s = segs.clone();
        s.push("%2e%2e".into());
        prop_assert!(validate::relative_path(&s.join("/")).is_ok());
    }
}

/// The limit counts bytes (`MAX_PATH_BYTES`), not characters: a path of two-byte `ü` is
/// over it at 513 characters, far fewer than 1024.
#[test]
fn the_path_limit_counts_bytes() {
    let at_limit = "ü".repeat(validate::MAX_PATH_BYTES / 2);
    assert_eq!(at_limit.len(), validate::MAX_PATH_BYTES);
    assert!(validate::relative_path(&at_limit).is_ok());
    let over = "ü".repeat(validate::MAX_PATH_BYTES / 2 + 1);
    assert!(over.chars().count() < validate::MAX_PATH_BYTES);
    assert!(
        validate::relative_path(&over).is_err(),
        "{} bytes",
        over.len()
    );
}

/// Pinned decision: lookalikes of `/` and `.` are accepted as ordinary characters. They are
/// safe: no filesystem, archive tool or S3 treats U+2215 (∕), U+2024 (․) or U+FF0E (．) as a
/// separator or a dot, so `․․∕x` is one file name, not a traversal (keys are content
/// addresses anyway). Rejecting them would be a new rule; change this test with it.
#[test]
fn slash_and_dot_lookalikes_are_ordinary_characters() {
    for p in [
        "\u{2024}\u{2024}\u{2215}etc\u{2215}passwd",
        "a\u{2215}b",
        "\u{ff0e}\u{ff0e}/x",
        "\u{ff0e}",
        "\u{2024}/\u{2024}\u{2024}/f.bin",
    ] {
        assert!(validate::relative_path(p).is_ok(), "{p:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Manifest determinism and order
// ---------------------------------------------------------------------------------------

fn package(holds: Vec<Hold>) -> Package {
    let t = time::parse("2026-11-28T12:00:00Z").unwrap();
    Package {
        id: "p".into(),
        name: "n".into(),
        producer: "ci".into(),
        subject: "s".into(),
        retention_class: RetentionClass::SummaryEvidence,
        status: PackageStatus::Finalized,
        created_at: t,
        finalized_at: Some(t),
        expires_at: Some(t),
        metadata: serde_json::from_value(serde_json::json!({"b": 1, "a": {"y": 2, "x": 3}}))
            .unwrap(),
        file_count: 0,
        total_bytes: 0,
        holds,
        deletion_eligible: false,
    }
}

/// Mostly one of three instants a minute apart, so that holds, events and files often share
/// a timestamp and their order has to fall back to ids; sometimes any instant.
fn tied_ts() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        4 => (0i64..3).prop_map(|k| time::from_epoch(1_795_000_000 + 60 * k).unwrap()),
        1 => ts(),
    ]
}

/// Active and released holds, in any order. Ids are `h0`, `h1`, ...: up to twelve, so `h10`
/// sorts before `h2` and the expected order must compare ids as strings, like the manifest.
/// (Shuffled because ids come out in order, and sorted input would hide a missing sort.)
fn holds() -> impl Strategy<Value = Vec<Hold>> {
    let hold = (tied_ts(), proptest::option::of(0i64..86_400));
    proptest::collection::vec(hold, 0..12)
        .prop_map(|hs| {
            hs.into_iter()
                .enumerate()
                .map(|(i, (created_at, released_after))| Hold {
                    id: format!("h{i}"),
                    package_id: "p".into(),
                    reason: format!("r{}", i % 2),
                    created_by: "op".into(),
                    created_at,
                    released_at: released_after.map(|s| time::add_secs(created_at, s).unwrap()),
                })
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
}

/// Extensions (the only events the manifest keeps) half the time, any other type otherwise.
fn event_type() -> impl Strategy<Value = RetentionEventType> {
    prop_oneof![
        Just(RetentionEventType::Extended),
        select(vec![
            RetentionEventType::DefaultRuleApplied,
            RetentionEventType::HoldApplied,
            RetentionEventType::HoldReleased,
            RetentionEventType::DeletionEligible,
            RetentionEventType::Deleted,
        ]),
    ]
}

/// Retention events in any order, with ids `e0`, `e1`, ... (string order again differs from
/// numeric).
fn events() -> impl Strategy<Value = Vec<RetentionEvent>> {
    let event = (
        event_type(),
        tied_ts(),
        proptest::option::of(ts()),
        proptest::option::of(ts()),
    );
    proptest::collection::vec(event, 0..12)
        .prop_map(|es| {
            es.into_iter()
                .enumerate()
                .map(
                    |(i, (event_type, created_at, previous, new))| RetentionEvent {
                        id: format!("e{i}"),
                        package_id: "p".into(),
                        event_type,
                        reason: "r".into(),
                        created_by: "op".into(),
                        created_at,
                        previous_expires_at: previous,
                        new_expires_at: new,
                    },
                )
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
}

/// Usually distinct bytes, sometimes bytes shared with other files (one object for both).
fn digest() -> impl Strategy<Value = String> {
    prop_oneof![any::<[u8; 32]>(), (0u8..2).prop_map(|b| [b; 32])].prop_map(hex::encode)
}

/// Two backends and two prefixes: four possible locations for a file's bytes, so a file
/// drawn with up to four locations often repeats one.
fn location_choice() -> impl Strategy<Value = (&'static str, &'static str)> {
    (select(vec!["kv", "s3"]), select(vec!["", "mirror/"]))
}

/// The rows `MetadataStore::list_files` could return: one per (file, location), repeated
/// locations included. File ids start with a random tag, so their order is unrelated to path
/// order and sorting by id (or by `created_at`) instead of by path shows; the index after
/// the fixed-width tag keeps them unique.
fn file_rows() -> impl Strategy<Value = Vec<(File, StorageLocation)>> {
    let body = (
        any::<u16>(),
        digest(),
        0u64..1 << 40,
        tied_ts(),
        proptest::collection::vec(location_choice(), 1..5),
    );
    proptest::collection::btree_map(valid_path(), body, 0..8)
        .prop_map(|files| {
            let mut rows = Vec::new();
            for (i, (path, (tag, sha, size, created_at, locations))) in
                files.into_iter().enumerate()
            {
                let file = File {
                    id: format!("f{tag:04x}-{i}"),
                    package_id: "p".into(),
                    relative_path: path,
                    media_type: "application/octet-stream".into(),
                    size_bytes: size,
                    sha256: sha,
                    created_at,
                };
                for (backend, prefix) in locations {
                    let location = StorageLocation {
                        backend_id: backend.into(),
                        object_key: content::object_key(prefix, &file.sha256),
                    };
                    rows.push((file.clone(), location));
                }
            }
            rows
        })
        .prop_shuffle()
}

/// Everything `manifest::build` reads that comes as a list.
#[derive(Debug, Clone)]
struct ManifestInput {
    holds: Vec<Hold>,
    rows: Vec<(File, StorageLocation)>,
    events: Vec<RetentionEvent>,
}

type Swap = (prop::sample::Index, prop::sample::Index);

impl ManifestInput {
    fn build(&self) -> manifest::Manifest {
        manifest::build(&package(self.holds.clone()), &self.rows, &self.events)
    }

    /// The same input with every list reordered by `swaps`.
    fn reordered(&self, swaps: &[Swap]) -> ManifestInput {
        ManifestInput {
            holds: swapped(&self.holds, swaps),
            rows: swapped(&self.rows, swaps),
            events: swapped(&self.events, swaps),
        }
    }
}

/// `v` with the pairs `swaps` picks exchanged. Swaps drawn as indices (rather than a
/// shuffle flat-mapped on the input) shrink, so a failure comes down to a few rows.
fn swapped<T: Clone>(v: &[T], swaps: &[Swap]) -> Vec<T> {
    let mut out = v.to_vec();
    let n = out.len();
    if n > 1 {
        for (i, j) in swaps {
            out.swap(i.index(n), j.index(n));
        }
    }
    out
}

fn manifest_input() -> impl Strategy<Value = ManifestInput> {
    (holds(), file_rows(), events()).prop_map(|(holds, rows, events)| ManifestInput {
        holds,
        rows,
        events,
    })
}

// The expectations below restate the rules of `manifest`'s module doc; they do not call it.

/// Every path, in byte order, with the set of its (backend, object key) pairs in order.
fn expected_files(rows: &[(File, StorageLocation)]) -> Vec<(String, Vec<(String, String)>)> {
    let mut by_path: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for (file, loc) in rows {
        by_path
            .entry(file.relative_path.clone())
            .or_default()
            .insert((loc.backend_id.clone(), loc.object_key.clone()));
    }
    by_path
        .into_iter()
        .map(|(path, locs)| (path, locs.into_iter().collect()))
        .collect()
}

/// All holds, released ones too, by `(created_at, id)`.
fn expected_holds(holds: &[Hold]) -> Vec<Hold> {
    let mut out = holds.to_vec();
    out.sort_by_key(|h| (h.created_at, h.id.clone()));
    out
}

/// The `extended` events only, by `(created_at, id)`.
fn expected_extensions(events: &[RetentionEvent]) -> Vec<RetentionEvent> {
    let mut out: Vec<RetentionEvent> = events
        .iter()
        .filter(|e| e.event_type == RetentionEventType::Extended)
        .cloned()
        .collect();
    out.sort_by_key(|e| (e.created_at, e.id.clone()));
    out
}

/// The files of a built manifest in the shape of `expected_files`.
fn manifest_files(manifest: &Value) -> Vec<(String, Vec<(String, String)>)> {
    let text = |v: &Value| v.as_str().unwrap().to_string();
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let storage = f["storage"].as_array().unwrap();
            let locs = storage
                .iter()
                .map(|l| (text(&l["backend_id"]), text(&l["object_key"])))
                .collect();
            (text(&f["relative_path"]), locs)
        })
        .collect()
}

fn json_of<T: serde::Serialize>(items: &[T]) -> Value {
    serde_json::to_value(items).unwrap()
}

/// The ids of a list of holds or events, for failure messages that can be read.
fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect()
}

proptest! {
    /// Every list `build` reads (holds, file rows with their repeated locations, events) in
    /// two orders: the same bytes.
    #[test]
    fn manifest_bytes_do_not_depend_on_input_order(
        input in manifest_input(),
        swaps in proptest::collection::vec(any::<Swap>(), 1..64),
    ) {
        let (a, b) = (input.build(), input.reordered(&swaps).build());
        // As text, so that a failure shows where the two manifests part.
        let text = |m: &manifest::Manifest| String::from_utf8(m.bytes.clone()).unwrap();
        prop_assert_eq!(text(&a), text(&b));
        prop_assert_eq!(&a.sha256, &b.sha256);
        prop_assert!(manifest::verify(&a.value));
    }

    /// Rows are grouped into files, listed by path; a file's storage is the set of its
    /// (backend, key) pairs, in order, however often a row repeats one.
    #[test]
    fn manifest_files_are_sorted_by_path_with_each_location_once(input in manifest_input()) {
        let m = input.build();
        let got = manifest_files(&m.value);
        let want = expected_files(&input.rows);
        let got_paths: Vec<&String> = got.iter().map(|(p, _)| p).collect();
        let want_paths: Vec<&String> = want.iter().map(|(p, _)| p).collect();
        prop_assert_eq!(got_paths, want_paths, "files out of path order");
        for ((path, got_locs), (_, want_locs)) in got.iter().zip(&want) {
            prop_assert_eq!(got_locs, want_locs, "storage of {:?}: not once each, sorted", path);
        }
    }

    /// Both copies of the holds (`retention.holds`, `package.holds`) and the extensions
    /// follow `(created_at, id)`; the generators make equal timestamps common.
    #[test]
    fn manifest_holds_and_extensions_are_ordered_by_time_then_id(input in manifest_input()) {
        let m = &input.build().value;
        let holds = expected_holds(&input.holds);
        let extensions = expected_extensions(&input.events);
        let hold_ids: Vec<&str> = holds.iter().map(|h| h.id.as_str()).collect();
        let extension_ids: Vec<&str> = extensions.iter().map(|e| e.id.as_str()).collect();
        prop_assert_eq!(ids(&m["retention"]["holds"]), hold_ids.clone(), "retention.holds");
        prop_assert_eq!(ids(&m["package"]["holds"]), hold_ids, "package.holds");
        prop_assert_eq!(ids(&m["retention"]["extensions"]), extension_ids, "extensions");
        // Whole values too: each item is served as the API serves it, nothing dropped.
        let (holds, extensions) = (json_of(&holds), json_of(&extensions));
        prop_assert_eq!(&m["retention"]["holds"], &holds);
        prop_assert_eq!(&m["package"]["holds"], &holds);
        prop_assert_eq!(&m["retention"]["extensions"], &extensions);
    }
}

// ---------------------------------------------------------------------------------------
// Audit chain
// ---------------------------------------------------------------------------------------

fn ascii(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[ -~]{{1,{max}}}")).unwrap()
}

fn chain() -> impl Strategy<Value = Vec<AuditEvent>> {
    let draft = (
        select(AuditEventType::ALL.to_vec()),
        proptest::option::of(ascii(12)),
        proptest::option::of(ascii(12)),
        ascii(12),
        ascii(20),
    );
    proptest::collection::vec((draft, ts()), 1..12).prop_map(|drafts| {
        let mut out: Vec<AuditEvent> = Vec::new();
        for (i, ((event_type, package_id, file_id, actor, note), t)) in
            drafts.into_iter().enumerate()
        {
            let d = AuditDraft {
                event_type,
                package_id,
                file_id,
                actor,
                details: serde_json::json!({"note": note, "n": i}),
            };
            out.push(audit::chain_next(out.last(), &d, format!("e{i}"), t));
        }
        out
    })
}

/// Flips one bit (keeping ASCII valid UTF-8) of byte `at` of `s`.
fn flip(s: &mut String, at: prop::sample::Index) {
    let mut b = std::mem::take(s).into_bytes();
    if b.is_empty() {
        b.push(b'x');
    } else {
        let i = at.index(b.len());
        b[i] ^= if b[i] < 0x80 { 0x01 } else { 0x00 };
    }
    *s = String::from_utf8(b).expect("ASCII stays UTF-8");
}

fn tamper(e: &mut AuditEvent, field: usize, at: prop::sample::Index) {
    match field {
        0 => flip(&mut e.id, at),
        1 => e.seq ^= 1 << at.index(8),
        2 => {
            let i = AuditEventType::ALL
                .iter()
                .position(|t| *t == e.event_type)
                .unwrap();
            e.event_type = AuditEventType::ALL[(i + 1 + at.index(12)) % 13];
        }
        3 => match &mut e.package_id {
            Some(p) => flip(p, at),
            None => e.package_id = Some(String::new()),
        },
        4 => match &mut e.file_id {
            Some(p) => flip(p, at),
            None => e.file_id = Some("f".into()),
        },
        5 => flip(&mut e.actor, at),
        6 => e.created_at = time::add_secs(e.created_at, 1 + at.index(100) as i64).unwrap(),
        7 => {
            let mut note = e.details["note"].as_str().unwrap().to_string();
            flip(&mut note, at);
            e.details["note"] = serde_json::json!(note);
        }
        8 => flip(&mut e.prev_hash, at),
        _ => flip(&mut e.hash, at),
    }
}

proptest! {
    #[test]
    fn any_tampering_is_found_at_or_before_the_event(
        chain in chain(),
        which in any::<prop::sample::Index>(),
        field in 0usize..10,
        at in any::<prop::sample::Index>(),
    ) {
        let mut v = ChainVerifier::new();
        chain.iter().for_each(|e| v.feed(e));
        prop_assert!(v.report().valid);
        prop_assert_eq!(v.report().events_checked, chain.len() as u64);

        let i = which.index(chain.len());
        let mut bad = chain.clone();
        tamper(&mut bad[i], field, at);
        prop_assume!(bad[i] != chain[i]);
        // Feed one by one: the position where the verifier first objects.
        let mut v = ChainVerifier::new();
        let mut pos = None;
        for (k, e) in bad.iter().enumerate() {
            v.feed(e);
            if v.is_done() && pos.is_none() {
                pos = Some(k);
            }
        }
        let report = v.report();
        prop_assert!(!report.valid);
        let pos = pos.unwrap();
        prop_assert_eq!(report.first_invalid_id.as_deref(), Some(bad[pos].id.as_str()));
        prop_assert!(pos <= i, "tampered {} (field {}), reported {}", i, field, pos);
    }
}

proptest! {
    /// Structural edits, not only edited fields: an event removed from the middle, one
    /// repeated, two swapped. (Removing the newest ones is truncation, caught against the
    /// recorded head: `audit_chain_detects_tampering`.)
    #[test]
    fn removed_repeated_or_reordered_events_are_found(
        chain in chain(),
        which in any::<prop::sample::Index>(),
        edit in 0usize..3,
    ) {
        prop_assume!(chain.len() >= 2);
        let i = which.index(chain.len() - 1);
        let mut bad = chain.clone();
        match edit {
            0 => {
                bad.remove(i);
            }
            1 => bad.insert(i + 1, chain[i].clone()),
            _ => bad.swap(i, i + 1),
        }
        let mut v = ChainVerifier::new();
        bad.iter().for_each(|e| v.feed(e));
        prop_assert!(!v.report().valid, "edit {} at {} went unnoticed", edit, i);
    }
}
