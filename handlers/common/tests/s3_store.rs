//! `S3Store` (the `ObjectStore` the components use) against a real Ceph RGW, with a plain
//! HTTP client as its transport: single and multipart puts, aborts on failure, copy, get,
//! delete (unfinished uploads at the key included), health.

mod s3_support;

use artifact_store_core::ports::{ByteRange, HealthStatus, ObjectStore, PutMetadata, StorageError};
use artifact_store_handlers::storage::s3::S3Store;
use artifact_store_handlers::storage::s3::request::{
    CompletedPart, parse_multipart_uploads, parse_upload_id,
};
use futures::executor::block_on;
use s3_support::{ReqwestHttp, TestBody, collect, config, pattern, send, server, unique_prefix};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

fn store(extra: &[(&str, &str)]) -> Option<S3Store<ReqwestHttp>> {
    let s = server()?;
    Some(S3Store::with_transport(config(&s, extra), ReqwestHttp))
}

fn meta(max_bytes: u64) -> PutMetadata {
    PutMetadata {
        media_type: "application/octet-stream".into(),
        max_bytes,
    }
}

/// The keys of unfinished uploads under `prefix`, listed by an independent client (curl's
/// SigV4, `artifact_store_tests::s3`), not by the store's own requests and parser.
fn uploads_at(prefix: &str) -> Vec<String> {
    let env = artifact_store_tests::s3_env()
        .unwrap()
        .expect("an S3 server (the store tests found one)");
    artifact_store_tests::s3::list_multipart_uploads(&env, prefix).unwrap()
}

fn no_uploads_left(prefix: &str) {
    assert_eq!(uploads_at(prefix), Vec::<String>::new());
}

#[test]
fn small_put_get_head_delete() {
    let Some(store) = store(&[]) else { return };
    let key = format!("{}small", unique_prefix("store-small"));
    let mut body = TestBody::new(300_000, 64 * 1024);
    let receipt = block_on(store.put(&key, &mut body, &meta(1 << 30))).unwrap();
    let bytes = pattern(300_000);
    assert_eq!(receipt.size_bytes, 300_000);
    assert_eq!(receipt.sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(receipt.location.backend_id, "s3");
    assert_eq!(receipt.location.object_key, key);

    let info = block_on(store.head(&key)).unwrap().unwrap();
    assert_eq!(info.size_bytes, 300_000);
    let got = block_on(async { collect(&mut store.get(&key, None).await.unwrap()).await });
    assert_eq!(got, bytes);
    let range = ByteRange {
        start: 5,
        end_inclusive: 9,
    };
    let got = block_on(async { collect(&mut store.get(&key, Some(range)).await.unwrap()).await });
    assert_eq!(got, &bytes[5..10]);

    block_on(store.delete(&key)).unwrap();
    block_on(store.delete(&key)).unwrap(); // idempotent
    assert_eq!(block_on(store.head(&key)).unwrap(), None);
    assert!(matches!(
        block_on(store.get(&key, None)),
        Err(StorageError::NotFound(_))
    ));
}

#[test]
fn empty_body_is_one_empty_object() {
    let Some(store) = store(&[]) else { return };
    let key = format!("{}empty", unique_prefix("store-empty"));
    let receipt = block_on(store.put(&key, &mut TestBody::new(0, 1), &meta(10))).unwrap();
    assert_eq!(receipt.size_bytes, 0);
    assert_eq!(
        receipt.sha256,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(block_on(store.head(&key)).unwrap().unwrap().size_bytes, 0);
}

#[test]
fn large_put_goes_multipart_and_streams_back() {
    // Threshold 1 MiB, parts of 5 MiB: 12 MiB + 3 bytes -> parts of 5, 5, 2 MiB + 3.
    let Some(store) = store(&[
        ("s3_multipart_threshold", "1048576"),
        ("s3_part_size", "5242880"),
    ]) else {
        return;
    };
    let prefix = unique_prefix("store-multipart");
    let key = format!("{prefix}big");
    let total = 12 * MIB + 3;
    let mut body = TestBody::new(total, 100_000);
    let receipt = block_on(store.put(&key, &mut body, &meta(1 << 30))).unwrap();
    let bytes = pattern(total);
    assert_eq!(receipt.size_bytes, total as u64);
    assert_eq!(receipt.sha256, hex::encode(Sha256::digest(&bytes)));

    let head = send(&store.requests().head_object(&key).unwrap());
    assert_eq!(head.header("content-length").unwrap(), total.to_string());
    assert!(
        head.header("etag").unwrap().ends_with("-3\""),
        "{:?}",
        head.header("etag")
    );
    let got = block_on(async { collect(&mut store.get(&key, None).await.unwrap()).await });
    assert!(got == bytes, "multipart object differs");
    no_uploads_left(&prefix);
    block_on(store.delete(&key)).unwrap();
}

#[test]
fn source_failure_mid_multipart_aborts_and_keeps_nothing() {
    let Some(store) = store(&[
        ("s3_multipart_threshold", "1048576"),
        ("s3_part_size", "5242880"),
    ]) else {
        return;
    };
    let prefix = unique_prefix("store-disconnect");
    let key = format!("{prefix}obj");
    let mut body = TestBody::new(20 * MIB, 256 * 1024);
    body.fail_after = Some(7 * MIB); // after part 1 was sent
    let err = block_on(store.put(&key, &mut body, &meta(1 << 30))).unwrap_err();
    assert!(matches!(err, StorageError::Source(_)), "{err:?}");
    assert_eq!(block_on(store.head(&key)).unwrap(), None);
    no_uploads_left(&prefix);
}

#[test]
fn too_large_mid_multipart_aborts_and_keeps_nothing() {
    let Some(store) = store(&[
        ("s3_multipart_threshold", "1048576"),
        ("s3_part_size", "5242880"),
    ]) else {
        return;
    };
    let prefix = unique_prefix("store-toolarge");
    let key = format!("{prefix}obj");
    let limit = 6 * MIB as u64;
    let mut body = TestBody::new(8 * MIB, 256 * 1024);
    let err = block_on(store.put(&key, &mut body, &meta(limit))).unwrap_err();
    assert_eq!(err, StorageError::TooLarge { limit });
    assert_eq!(block_on(store.head(&key)).unwrap(), None);
    no_uploads_left(&prefix);

    // Below the threshold nothing is even started.
    let mut small = TestBody::new(1000, 100);
    let err = block_on(store.put(&key, &mut small, &meta(999))).unwrap_err();
    assert_eq!(err, StorageError::TooLarge { limit: 999 });
    assert_eq!(block_on(store.head(&key)).unwrap(), None);
}

#[test]
fn delete_aborts_unfinished_uploads_at_exactly_the_key() {
    // An upload cut off by an outage: started, one part sent, never completed nor aborted.
    let Some(store) = store(&[]) else { return };
    let prefix = unique_prefix("store-delete-uploads");
    let key = format!("{prefix}staging/u");
    let sibling = format!("{key}-other");
    let r = store.requests();
    let mut started = Vec::new();
    for k in [&key, &key, &sibling] {
        let created = send(&r.create_multipart_upload(k).unwrap());
        assert_eq!(created.status, 200, "{}", created.text());
        let id = parse_upload_id(&created.body).unwrap();
        let part = send(&r.upload_part(k, &id, 1, pattern(1000)).unwrap());
        assert_eq!(part.status, 200, "{}", part.text());
        started.push(id);
    }

    block_on(store.delete(&key)).unwrap();
    // Only the upload at the longer key is left.
    assert_eq!(uploads_at(&key), vec![sibling.clone()]);
    // The store's own parser reads the same listing.
    let listed = send(&r.list_multipart_uploads(&key).unwrap());
    assert_eq!(listed.status, 200);
    assert_eq!(
        parse_multipart_uploads(&listed.body),
        vec![(sibling.clone(), started[2].clone())]
    );
    block_on(store.delete(&key)).unwrap(); // idempotent

    block_on(store.delete(&sibling)).unwrap();
    no_uploads_left(&prefix);
}

#[test]
fn copy_promotes_staging_and_missing_source_is_not_found() {
    let Some(store) = store(&[]) else { return };
    let prefix = unique_prefix("store-copy");
    let (staging, fin) = (
        format!("{prefix}staging/u"),
        format!("{prefix}sha256/aa/bb/c"),
    );
    block_on(store.put(&staging, &mut TestBody::new(5000, 1000), &meta(1 << 20))).unwrap();
    block_on(store.promote(&staging, &fin)).unwrap();
    let got = block_on(async { collect(&mut store.get(&fin, None).await.unwrap()).await });
    assert_eq!(got, pattern(5000));
    let err = block_on(store.promote(&format!("{prefix}missing"), &fin)).unwrap_err();
    assert!(matches!(err, StorageError::NotFound(_)), "{err:?}");
}

#[test]
fn presigned_url_from_the_store() {
    let Some(store) = store(&[]) else { return };
    let key = format!("{}p", unique_prefix("store-presign"));
    block_on(store.put(&key, &mut TestBody::new(10, 10), &meta(100))).unwrap();
    let url = block_on(store.presign_get(&key, 30)).unwrap().unwrap();
    let reply = s3_support::plain_get(&url);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, pattern(10));
}

#[test]
fn health_reports_ok_bad_credentials_and_unreachable() {
    let Some(store) = store(&[]) else { return };
    let ok = block_on(store.health());
    assert_eq!(ok.status, HealthStatus::Ok, "{}", ok.detail);

    let bad = self::store(&[("s3_secret_access_key", "wrong")]).unwrap();
    let h = block_on(bad.health());
    assert_eq!(h.status, HealthStatus::Unavailable);
    assert!(h.detail.contains("access refused"), "{}", h.detail);
    assert!(!h.detail.contains("wrong"));

    let missing = self::store(&[("s3_bucket", "no-such-bucket-here")]).unwrap();
    let h = block_on(missing.health());
    assert_eq!(h.status, HealthStatus::Unavailable);
    assert!(h.detail.contains("does not exist"), "{}", h.detail);

    let down = self::store(&[("s3_endpoint", "http://127.0.0.1:9")]).unwrap();
    let h = block_on(down.health());
    assert_eq!(h.status, HealthStatus::Unavailable);
    assert!(h.detail.contains("cannot reach"), "{}", h.detail);
    let err = block_on(down.head("k")).unwrap_err();
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err:?}");
}

#[test]
fn declared_put_is_checked_by_the_server_and_a_mismatch_keeps_nothing() {
    let Some(store) = store(&[]) else { return };
    let key = format!("{}declared", unique_prefix("store-declared"));
    let bytes = pattern(300_000);
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let size = bytes.len() as u64;

    let wrong = hex::encode(Sha256::digest(b"other bytes"));
    let err = block_on(store.put_declared(&key, &mut bytes.clone(), size, &wrong)).unwrap_err();
    assert!(matches!(err, StorageError::DigestMismatch(_)), "{err:?}");
    assert_eq!(block_on(store.head(&key)).unwrap(), None, "nothing kept");

    block_on(store.put_declared(&key, &mut bytes.clone(), size, &sha256)).unwrap();
    let got = block_on(async { collect(&mut store.get(&key, None).await.unwrap()).await });
    assert_eq!(got, bytes);

    // Other bytes of the same length under the same digest: refused, the stored ones stay.
    let mut other = bytes.clone();
    other[size as usize / 2] ^= 1;
    let err = block_on(store.put_declared(&key, &mut other, size, &sha256)).unwrap_err();
    assert!(matches!(err, StorageError::DigestMismatch(_)), "{err:?}");
    let got = block_on(async { collect(&mut store.get(&key, None).await.unwrap()).await });
    assert_eq!(
        got, bytes,
        "a refused overwrite leaves the object as it was"
    );
}

/// Parts of a staged upload travel with an unsigned payload and a signed `Content-MD5`:
/// the server must refuse a part whose bytes changed after signing, and keep nothing of it.
#[test]
fn a_part_altered_after_signing_is_refused() {
    let Some(store) = store(&[]) else { return };
    let prefix = unique_prefix("store-part-md5");
    let key = format!("{prefix}obj");
    let requests = store.requests();
    let created = send(&requests.create_multipart_upload(&key).unwrap());
    assert_eq!(created.status, 200, "{}", created.text());
    let upload_id = parse_upload_id(&created.body).unwrap();
    let part = pattern(5 * MIB);

    let mut altered = requests
        .upload_part(&key, &upload_id, 1, part.clone())
        .unwrap();
    let auth = altered.headers()["authorization"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        auth.contains("content-md5"),
        "Content-MD5 is signed: {auth}"
    );
    altered.body_mut()[MIB] ^= 1;
    let refused = send(&altered);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.text().contains("BadDigest"), "{}", refused.text());
    // Had the server kept the altered part, its ETag (the MD5 of its bytes) would complete.
    let etag = format!(
        "\"{}\"",
        hex::encode(<md5::Md5 as md5::Digest>::digest(altered.body()))
    );
    let parts = [CompletedPart {
        part_number: 1,
        etag,
    }];
    let completed = send(
        &requests
            .complete_multipart_upload(&key, &upload_id, &parts)
            .unwrap(),
    );
    assert!(
        completed.status == 400 && completed.text().contains("InvalidPart"),
        "nothing kept: {} {}",
        completed.status,
        completed.text()
    );

    let intact = send(&requests.upload_part(&key, &upload_id, 1, part).unwrap());
    assert_eq!(intact.status, 200, "{}", intact.text());
    let aborted = send(&requests.abort_multipart_upload(&key, &upload_id).unwrap());
    assert!(aborted.status < 300, "{}", aborted.text());
    no_uploads_left(&prefix);
}
