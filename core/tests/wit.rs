//! `wit/registry.wit` and `src/ports.rs` describe the same ports: this test parses the WIT and
//! checks that each interface has exactly the functions of its trait, and that the records
//! have exactly the fields of the model's JSON shapes, so neither can drift silently.

use std::collections::BTreeSet;
use std::path::Path;

use artifact_store_core::model::{
    AuditEvent, AuditEventType, File, Hold, Package, PackageStatus, RetentionClass, RetentionEvent,
    RetentionEventType, StorageLocation,
};
use wit_parser::{FunctionKind, Resolve, TypeDefKind, TypeOwner};

const PORTS: &str = include_str!("../src/ports.rs");

/// `fn` names declared in `pub trait <name>`'s block of ports.rs, kebab-cased.
fn trait_methods(name: &str) -> BTreeSet<String> {
    let start = PORTS
        .find(&format!("pub trait {name}"))
        .unwrap_or_else(|| panic!("ports.rs declares {name}"));
    let body = &PORTS[start..];
    let end = body.find("\n}").expect("trait block ends");
    body[..end]
        .split("fn ")
        .skip(1)
        .map(|rest| {
            let n: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            n.replace('_', "-")
        })
        .collect()
}

fn resolve() -> (Resolve, wit_parser::PackageId) {
    let mut resolve = Resolve::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let (pkg, _) = resolve.push_dir(&dir).expect("wit/ parses");
    (resolve, pkg)
}

fn interface<'a>(
    r: &'a Resolve,
    pkg: wit_parser::PackageId,
    name: &str,
) -> &'a wit_parser::Interface {
    let id = r.packages[pkg].interfaces[name];
    &r.interfaces[id]
}

fn freestanding(i: &wit_parser::Interface) -> BTreeSet<String> {
    i.functions
        .values()
        .filter(|f| {
            matches!(
                f.kind,
                FunctionKind::Freestanding | FunctionKind::AsyncFreestanding
            )
        })
        .map(|f| f.name.clone())
        .collect()
}

fn record_fields(r: &Resolve, i: &wit_parser::Interface, name: &str) -> BTreeSet<String> {
    let id = i.types[name];
    match &r.types[id].kind {
        TypeDefKind::Record(rec) => rec.fields.iter().map(|f| f.name.clone()).collect(),
        other => panic!("{name} is not a record: {other:?}"),
    }
}

fn json_keys<T: serde::Serialize>(v: &T) -> BTreeSet<String> {
    serde_json::to_value(v)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.replace('_', "-"))
        .collect()
}

fn enum_cases(r: &Resolve, i: &wit_parser::Interface, name: &str) -> BTreeSet<String> {
    match &r.types[i.types[name]].kind {
        TypeDefKind::Enum(e) => e.cases.iter().map(|c| c.name.clone()).collect(),
        other => panic!("{name} is not an enum: {other:?}"),
    }
}

#[test]
fn package_and_world() {
    let (r, pkg) = resolve();
    let p = &r.packages[pkg];
    assert_eq!(p.name.to_string(), "artifact-store:registry@0.1.0");
    let world = &r.worlds[p.worlds["registry-handler"]];
    let imported: BTreeSet<String> = world.imports.keys().map(|k| r.name_world_key(k)).collect();
    assert!(
        imported.contains("artifact-store:registry/storage@0.1.0"),
        "{imported:?}"
    );
    assert!(
        imported.contains("artifact-store:registry/metadata@0.1.0"),
        "{imported:?}"
    );
    for (_, ty) in r.types.iter() {
        if let TypeOwner::Interface(i) = ty.owner {
            assert_eq!(r.interfaces[i].package, Some(pkg), "no foreign types");
        }
    }
}

#[test]
fn storage_mirrors_object_store() {
    let (r, pkg) = resolve();
    let storage = interface(&r, pkg, "storage");
    assert_eq!(freestanding(storage), trait_methods("ObjectStore"));
    // The reading side of streams mirrors `ByteStream`.
    let methods: BTreeSet<String> = storage
        .functions
        .values()
        .filter(|f| matches!(f.kind, FunctionKind::Method(_)))
        .map(|f| f.item_name().to_string())
        .collect();
    for m in trait_methods("ByteStream") {
        assert!(methods.contains(&m), "byte-source lacks {m}");
    }
    let loc = StorageLocation {
        backend_id: "kv".into(),
        object_key: "k".into(),
    };
    assert_eq!(
        record_fields(&r, storage, "storage-location"),
        json_keys(&loc)
    );
}

#[test]
fn metadata_mirrors_metadata_store() {
    let (r, pkg) = resolve();
    let meta = interface(&r, pkg, "metadata");
    let wit = freestanding(meta);
    let rust = trait_methods("MetadataStore");
    assert_eq!(
        wit,
        rust,
        "only in wit: {:?}; only in ports.rs: {:?}",
        wit.difference(&rust).collect::<Vec<_>>(),
        rust.difference(&wit).collect::<Vec<_>>()
    );
}

#[test]
fn records_and_enums_mirror_the_model() {
    let (r, pkg) = resolve();
    let meta = interface(&r, pkg, "metadata");
    let t = artifact_store_core::time::now();
    let hold = Hold {
        id: "h".into(),
        package_id: "p".into(),
        reason: "r".into(),
        created_by: "o".into(),
        created_at: t,
        released_at: None,
    };
    let package = Package {
        id: "p".into(),
        name: "n".into(),
        producer: "ci".into(),
        subject: "s".into(),
        retention_class: RetentionClass::Transient,
        status: PackageStatus::Open,
        created_at: t,
        finalized_at: None,
        expires_at: None,
        metadata: Default::default(),
        file_count: 0,
        total_bytes: 0,
        holds: vec![hold.clone()],
        deletion_eligible: false,
    };
    let file = File {
        id: "f".into(),
        package_id: "p".into(),
        relative_path: "a".into(),
        media_type: "text/plain".into(),
        size_bytes: 1,
        sha256: "0".repeat(64),
        created_at: t,
    };
    let event = RetentionEvent {
        id: "e".into(),
        package_id: "p".into(),
        event_type: RetentionEventType::Extended,
        reason: "r".into(),
        created_by: "o".into(),
        created_at: t,
        previous_expires_at: None,
        new_expires_at: None,
    };
    let audit = AuditEvent {
        id: "a".into(),
        seq: 1,
        event_type: AuditEventType::PackageCreated,
        package_id: Some("p".into()),
        file_id: Some("f".into()),
        actor: "o".into(),
        created_at: t,
        details: serde_json::json!({}),
        prev_hash: String::new(),
        hash: String::new(),
    };
    assert_eq!(record_fields(&r, meta, "package"), json_keys(&package));
    assert_eq!(record_fields(&r, meta, "hold"), json_keys(&hold));
    assert_eq!(record_fields(&r, meta, "file"), json_keys(&file));
    assert_eq!(
        record_fields(&r, meta, "retention-event"),
        json_keys(&event)
    );
    assert_eq!(record_fields(&r, meta, "audit-event"), json_keys(&audit));

    let kebab = |s: &str| s.replace('_', "-");
    let classes: BTreeSet<String> = RetentionClass::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    assert_eq!(enum_cases(&r, meta, "retention-class"), classes);
    let audits: BTreeSet<String> = AuditEventType::ALL
        .iter()
        .map(|c| kebab(c.as_str()))
        .collect();
    assert_eq!(enum_cases(&r, meta, "audit-event-type"), audits);
    let statuses: BTreeSet<String> = ["open", "finalized", "deleting", "deleted"]
        .iter()
        .filter(|s| PackageStatus::parse(s).is_some())
        .map(|s| s.to_string())
        .collect();
    assert_eq!(enum_cases(&r, meta, "package-status"), statuses);
    let rtypes: BTreeSet<String> = [
        "default_rule_applied",
        "extended",
        "hold_applied",
        "hold_released",
        "deletion_eligible",
        "deleted",
    ]
    .iter()
    .map(|s| kebab(RetentionEventType::parse(s).unwrap().as_str()))
    .collect();
    assert_eq!(enum_cases(&r, meta, "retention-event-type"), rtypes);
}
