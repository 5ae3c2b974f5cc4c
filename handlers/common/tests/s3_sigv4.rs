//! The signed requests of `storage::s3::request`, sent as built to a real Ceph RGW with a
//! plain HTTP client: what the server accepts, refuses, and how refusals are mapped.

mod s3_support;

use std::time::{Duration, SystemTime};

use artifact_store_core::ports::{ByteRange, Presigned, StorageError};
use artifact_store_handlers::storage::s3::S3Requests;
use artifact_store_handlers::storage::s3::error::map_reply;
use artifact_store_handlers::storage::s3::request::{
    CompletedPart, UploadsMarker, parse_listed_keys, parse_multipart_uploads, parse_upload_id,
};
use s3_support::{config, plain_get, send, server, unique_prefix};

const MIB: usize = 1024 * 1024;

fn requests(extra: &[(&str, &str)]) -> Option<S3Requests> {
    let s = server()?;
    Some(S3Requests::new(&config(&s, extra)))
}

#[test]
fn put_then_get_whole_and_range() {
    let Some(r) = requests(&[("s3_storage_class", "STANDARD")]) else {
        return;
    };
    let key = format!("{}a file+name.bin", unique_prefix("roundtrip"));
    let body: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let put = r.put_object(&key, body.clone()).unwrap();
    let reply = send(&put);
    assert_eq!(reply.status, 200, "{}", reply.text());

    let whole = send(&r.get_object(&key, None).unwrap());
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, body);

    let range = ByteRange {
        start: 100,
        end_inclusive: 1099,
    };
    let part = send(&r.get_object(&key, Some(range)).unwrap());
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &body[100..1100]);
    assert_eq!(
        part.header("content-range").unwrap(),
        "bytes 100-1099/10000"
    );

    let head = send(&r.head_object(&key).unwrap());
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length").unwrap(), "10000");

    assert_eq!(send(&r.delete_object(&key).unwrap()).status, 204);
    let gone = send(&r.get_object(&key, None).unwrap());
    assert_eq!(gone.status, 404);
    assert_eq!(
        map_reply("GetObject", &key, gone.status, None, &gone.body),
        StorageError::NotFound(key.clone())
    );
}

#[test]
fn wrong_secret_is_refused_and_mapped_to_unavailable() {
    let Some(r) = requests(&[("s3_secret_access_key", "not-the-secret")]) else {
        return;
    };
    let key = format!("{}x", unique_prefix("badsecret"));
    let reply = send(&r.put_object(&key, b"x".to_vec()).unwrap());
    assert_eq!(reply.status, 403, "{}", reply.text());
    // Ceph RGW says SignatureDoesNotMatch, Garage AccessDenied ("Invalid signature").
    assert!(
        ["SignatureDoesNotMatch", "AccessDenied"]
            .iter()
            .any(|code| reply.text().contains(code)),
        "{}",
        reply.text()
    );
    match map_reply("PutObject", &key, reply.status, None, &reply.body) {
        StorageError::Unavailable { detail, .. } => {
            assert!(detail.contains("credentials rejected"), "{detail}");
            assert!(detail.contains("SignatureDoesNotMatch"), "{detail}");
            assert!(!detail.contains("not-the-secret"));
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // A HEAD has no body: the status alone must still say "access refused".
    let head = send(&r.head_bucket().unwrap());
    assert_eq!(head.status, 403);
    assert!(matches!(
        map_reply("HeadBucket", "", head.status, None, &head.body),
        StorageError::Unavailable { .. }
    ));
}

#[test]
fn a_payload_other_than_the_signed_one_is_refused() {
    let Some(r) = requests(&[]) else { return };
    let key = format!("{}x", unique_prefix("tamper"));
    let mut put = r.put_object(&key, b"signed bytes".to_vec()).unwrap();
    *put.body_mut() = b"other  bytes".to_vec();
    let reply = send(&put);
    assert_eq!(reply.status, 400, "{}", reply.text());
    // Ceph RGW and Garage name the refusal differently.
    assert!(
        ["XAmzContentSHA256Mismatch", "InvalidDigest"]
            .iter()
            .any(|code| reply.text().contains(code)),
        "{}",
        reply.text()
    );
}

#[test]
fn multipart_create_parts_complete_then_head_shows_size() {
    let Some(r) = requests(&[]) else { return };
    let key = format!("{}big", unique_prefix("multipart"));
    let created = send(&r.create_multipart_upload(&key).unwrap());
    assert_eq!(created.status, 200, "{}", created.text());
    let upload_id = parse_upload_id(&created.body).expect("UploadId");

    let sizes = [5 * MIB, 5 * MIB, 1234];
    let mut parts = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let n = i as u32 + 1;
        let reply = send(
            &r.upload_part(&key, &upload_id, n, vec![n as u8; *size])
                .unwrap(),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        parts.push(CompletedPart {
            part_number: n,
            etag: reply.header("etag").expect("part ETag"),
        });
    }
    let done = send(
        &r.complete_multipart_upload(&key, &upload_id, &parts)
            .unwrap(),
    );
    assert_eq!(done.status, 200, "{}", done.text());
    eprintln!("CompleteMultipartUpload reply: {}", done.text());

    let head = send(&r.head_object(&key).unwrap());
    assert_eq!(head.status, 200);
    let total: usize = sizes.iter().sum();
    assert_eq!(head.header("content-length").unwrap(), total.to_string());
    assert!(
        head.header("etag").unwrap().ends_with("-3\""),
        "{:?}",
        head.header("etag")
    );
    let tail = send(
        &r.get_object(
            &key,
            Some(ByteRange {
                start: (total - 2) as u64,
                end_inclusive: (total - 1) as u64,
            }),
        )
        .unwrap(),
    );
    assert_eq!(tail.body, vec![3, 3]);
    send(&r.delete_object(&key).unwrap());
}

#[test]
fn abort_leaves_no_upload_behind() {
    let Some(r) = requests(&[]) else { return };
    let prefix = unique_prefix("abort");
    let key = format!("{prefix}obj");
    let created = send(&r.create_multipart_upload(&key).unwrap());
    let upload_id = parse_upload_id(&created.body).expect("UploadId");
    let part = send(
        &r.upload_part(&key, &upload_id, 1, vec![7; 5 * MIB])
            .unwrap(),
    );
    assert_eq!(part.status, 200);

    let listed = send(&r.list_multipart_uploads(&prefix).unwrap());
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(
        parse_multipart_uploads(&listed.body),
        vec![(key.clone(), upload_id.clone())]
    );

    let aborted = send(&r.abort_multipart_upload(&key, &upload_id).unwrap());
    assert_eq!(aborted.status, 204, "{}", aborted.text());
    let listed = send(&r.list_multipart_uploads(&prefix).unwrap());
    assert_eq!(parse_multipart_uploads(&listed.body), vec![]);
    assert_eq!(send(&r.head_object(&key).unwrap()).status, 404);
}

#[test]
fn upload_listing_pages_from_a_marker() {
    // The marker query (with characters to escape) is signed as sent and honoured.
    let Some(r) = requests(&[]) else { return };
    let key = format!("{}a b+c", unique_prefix("upload-pages"));
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let created = send(&r.create_multipart_upload(&key).unwrap());
            parse_upload_id(&created.body).expect("UploadId")
        })
        .collect();
    let first = send(&r.list_multipart_uploads(&key).unwrap());
    assert_eq!(first.status, 200, "{}", first.text());
    let listed = parse_multipart_uploads(&first.body);
    assert_eq!(listed.len(), 2);
    let marker = UploadsMarker {
        key: listed[0].0.clone(),
        upload_id: listed[0].1.clone(),
    };
    let next = send(&r.list_multipart_uploads_after(&key, Some(&marker)).unwrap());
    assert_eq!(next.status, 200, "{}", next.text());
    assert_eq!(parse_multipart_uploads(&next.body), vec![listed[1].clone()]);
    for id in &ids {
        send(&r.abort_multipart_upload(&key, id).unwrap());
    }
}

#[test]
fn copy_object_duplicates_server_side() {
    let Some(r) = requests(&[("s3_storage_class", "STANDARD")]) else {
        return;
    };
    let prefix = unique_prefix("copy");
    let (from, to) = (
        format!("{prefix}staging/u1"),
        format!("{prefix}sha256/aa/bb/x y"),
    );
    assert_eq!(
        send(&r.put_object(&from, b"copy me".to_vec()).unwrap()).status,
        200
    );
    let copied = send(&r.copy_object(&from, &to).unwrap());
    assert_eq!(copied.status, 200, "{}", copied.text());
    assert!(
        copied.text().contains("CopyObjectResult"),
        "{}",
        copied.text()
    );
    assert_eq!(send(&r.get_object(&to, None).unwrap()).body, b"copy me");
    // The source stays until deleted separately.
    assert_eq!(send(&r.head_object(&from).unwrap()).status, 200);

    let missing = send(&r.copy_object(&format!("{prefix}nope"), &to).unwrap());
    assert_eq!(missing.status, 404);
    assert!(matches!(
        map_reply("CopyObject", "nope", missing.status, None, &missing.body),
        StorageError::NotFound(_)
    ));
}

#[test]
fn presigned_get_works_plainly_and_fails_when_tampered_or_expired() {
    let Some(r) = requests(&[]) else { return };
    let key = format!("{}presigned.txt", unique_prefix("presign"));
    assert_eq!(
        send(&r.put_object(&key, b"hello presigned".to_vec()).unwrap()).status,
        200
    );

    let url = r.presign_get(&key, Duration::from_secs(60)).unwrap();
    let ok = plain_get(&url);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.body, b"hello presigned");

    // Another object with the same signature.
    let other = url.replacen("presigned.txt", "presigned.txz", 1);
    assert_eq!(plain_get(&other).status, 403);
    // A longer validity than signed.
    let longer = url.replacen("X-Amz-Expires=60", "X-Amz-Expires=600", 1);
    assert_eq!(plain_get(&longer).status, 403);

    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let expired = r
        .presign_get_at(&key, Duration::from_secs(60), an_hour_ago)
        .unwrap();
    let reply = plain_get(&expired);
    // Refused either way: 403 on Ceph RGW, 400 "Date is too old" on Garage.
    assert!(matches!(reply.status, 400 | 403), "{}", reply.text());
}

#[test]
fn sse_headers_are_signed_and_sent() {
    let Some(s) = server() else { return };
    let r = S3Requests::new(&config(&s, &[("s3_sse", "AES256")]));
    let key = format!("{}sse", unique_prefix("sse"));
    let put = r.put_object(&key, b"secret-ish".to_vec()).unwrap();
    assert_eq!(
        put.headers().get("x-amz-server-side-encryption").unwrap(),
        "AES256"
    );
    let auth = put
        .headers()
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(auth.contains("x-amz-server-side-encryption"), "{auth}");
    for built in [
        r.create_multipart_upload(&key).unwrap(),
        r.copy_object(&key, &key).unwrap(),
    ] {
        assert_eq!(
            built.headers().get("x-amz-server-side-encryption").unwrap(),
            "AES256"
        );
    }
    // RGW refuses SSE over plain HTTP unless configured otherwise; record what it says.
    let reply = send(&put);
    eprintln!(
        "server answer to PutObject with SSE-S3 over http: {} {}",
        reply.status,
        reply.text()
    );
    if reply.status == 200 {
        // Accepted (Garage ignores SSE-S3 and does not echo it on HEAD): the object exists.
        let head = send(&r.head_object(&key).unwrap());
        assert_eq!(head.status, 200);
    } else {
        assert_eq!(reply.status, 400, "{}", reply.text());
        // The signature itself was accepted: the refusal is about the encryption request.
        assert!(
            !reply.text().contains("SignatureDoesNotMatch"),
            "{}",
            reply.text()
        );
    }

    let kms = S3Requests::new(&config(
        &s,
        &[("s3_sse", "aws:kms"), ("s3_sse_kms_key_id", "key-1")],
    ));
    let put = kms.put_object(&key, b"x".to_vec()).unwrap();
    assert_eq!(
        put.headers()
            .get("x-amz-server-side-encryption-aws-kms-key-id")
            .unwrap(),
        "key-1"
    );
}

#[test]
fn keys_land_under_the_prefix() {
    use artifact_store_handlers::storage::s3::S3Store;
    let Some(s) = server() else { return };
    let prefix = unique_prefix("prefix");
    let cfg = config(&s, &[("s3_key_prefix", &prefix)]);
    assert_eq!(cfg.key_prefix, prefix);
    // Stored the way uploads store bytes: the key from `content::object_key` with the
    // store's own prefix, written by `S3Store::put`.
    let store = S3Store::with_transport(cfg, s3_support::ReqwestHttp);
    let bytes = s3_support::pattern(5000);
    let key = artifact_store_core::content::object_key(store.key_prefix(), &sha256_hex(&bytes));
    let meta = artifact_store_core::ports::PutMetadata {
        media_type: "application/octet-stream".into(),
        max_bytes: 1 << 20,
    };
    let mut body = s3_support::TestBody::new(bytes.len(), 1000);
    futures::executor::block_on(artifact_store_core::ports::ObjectStore::put(
        &store, &key, &mut body, &meta,
    ))
    .unwrap();
    // Expected: the contract's `{prefix}sha256/{aa}/{bb}/{digest}` (written once in the
    // tests crate), checked against what curl's own SigV4 client lists in the bucket.
    let want = artifact_store_tests::content_key(&prefix, &sha256_hex(&bytes));
    let env = artifact_store_tests::s3_env()
        .unwrap()
        .expect("an S3 server (server() found one)");
    let landed = artifact_store_tests::s3::list_keys(&env, &prefix).unwrap();
    assert_eq!(landed, vec![want]);
    // And the store's own listing request and parser see the same.
    let requests = S3Requests::new(&config(&s, &[]));
    let listed = send(&requests.list_objects_v2(&prefix).unwrap());
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(parse_listed_keys(&listed.body), landed);
}

/// Sends a presigned PUT with `headers` (by default the ones it was signed with).
fn presigned_put(
    presigned: &Presigned,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> s3_support::Reply {
    s3_support::plain_put(&presigned.url, headers, body)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The server itself checks a presigned PUT's bytes against the digest it was signed
/// with: the right bytes are stored, other bytes are refused and nothing is stored, and
/// the digest header cannot be dropped or changed by the client.
#[test]
fn presigned_put_with_a_declared_digest_is_checked_by_the_server() {
    let Some(r) = requests(&[]) else { return };
    let key = format!("{}direct.bin", unique_prefix("presign-put"));
    let body = s3_support::pattern(100_000);
    let sha = sha256_hex(&body);
    let now = SystemTime::now();
    let put = r
        .presign_put_object_declared(&key, &sha, Duration::from_secs(60), now)
        .unwrap();
    assert!(
        put.headers
            .iter()
            .any(|(k, v)| k == "x-amz-content-sha256" && *v == sha),
        "{put:?}"
    );

    let mut wrong = body.clone();
    wrong[99_999] ^= 1;
    let refused = presigned_put(&put, &put.headers, wrong);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("XAmzContentSHA256Mismatch"),
        "{}",
        refused.text()
    );
    assert_eq!(send(&r.head_object(&key).unwrap()).status, 404);

    // Dropping the signed digest header, or sending another digest, breaks the signature.
    let no_digest: Vec<_> = put
        .headers
        .iter()
        .filter(|(k, _)| k != "x-amz-content-sha256")
        .cloned()
        .collect();
    assert_eq!(presigned_put(&put, &no_digest, body.clone()).status, 403);
    let mut other_digest = no_digest.clone();
    other_digest.push(("x-amz-content-sha256".into(), sha256_hex(b"other")));
    assert_eq!(
        presigned_put(&put, &other_digest, b"other".to_vec()).status,
        403
    );
    assert_eq!(send(&r.head_object(&key).unwrap()).status, 404);

    let stored = presigned_put(&put, &put.headers, body.clone());
    assert_eq!(stored.status, 200, "{}", stored.text());
    assert_eq!(send(&r.get_object(&key, None).unwrap()).body, body);

    let expired = r
        .presign_put_object_declared(
            &key,
            &sha,
            Duration::from_secs(60),
            now - Duration::from_secs(3600),
        )
        .unwrap();
    assert_eq!(presigned_put(&expired, &expired.headers, body).status, 403);
    send(&r.delete_object(&key).unwrap());
}

/// A presigned UploadPart signed with the part's digest: the server refuses other bytes,
/// keeps the right ones, and the upload completes.
#[test]
fn presigned_parts_are_checked_by_the_server() {
    let Some(r) = requests(&[]) else { return };
    let key = format!("{}parts.bin", unique_prefix("presign-part"));
    let created = send(&r.create_multipart_upload(&key).unwrap());
    assert_eq!(created.status, 200, "{}", created.text());
    let upload_id = parse_upload_id(&created.body).unwrap();
    let parts = [
        s3_support::pattern(5 * MIB),
        b"the short last part".to_vec(),
    ];
    let now = SystemTime::now();
    let mut completed = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let n = i as u32 + 1;
        let presigned = r
            .presign_upload_part(
                &key,
                &upload_id,
                n,
                &sha256_hex(part),
                Duration::from_secs(60),
                now,
            )
            .unwrap();
        let mut wrong = part.clone();
        wrong[0] ^= 1;
        let refused = presigned_put(&presigned, &presigned.headers, wrong);
        assert_eq!(refused.status, 400, "part {n}: {}", refused.text());
        let sent = presigned_put(&presigned, &presigned.headers, part.clone());
        assert_eq!(sent.status, 200, "part {n}: {}", sent.text());
        completed.push(CompletedPart {
            part_number: n,
            etag: sent.header("etag").unwrap(),
        });
    }
    let done = send(
        &r.complete_multipart_upload(&key, &upload_id, &completed)
            .unwrap(),
    );
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(
        send(&r.get_object(&key, None).unwrap()).body,
        parts.concat()
    );
    send(&r.delete_object(&key).unwrap());
}
