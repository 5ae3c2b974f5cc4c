//! SigV4-signed S3 requests as plain `http::Request` values.
//!
//! Decision: building and signing is pure (no I/O, no Spin), so every request shape is
//! tested natively against a real RGW and the Spin side only moves bytes. Signing is done
//! by the `aws-sigv4` crate with S3's rules (single percent-encoding, no path
//! normalization, `x-amz-content-sha256` always sent and signed). Every payload is checked
//! by the server, so it rejects a body altered in flight: by its signed sha256, except the
//! parts of a staged upload, which carry a signed `Content-MD5` instead (the component
//! already hashes each staged byte once for the file's sha256; a second sha256 per part
//! halved the upload's speed, MD5 costs a third of it).
//!
//! `Content-Length` is set but not signed: it is transport framing, and a proxy that
//! re-frames the body should not break the signature.

use std::time::{Duration, SystemTime};

use artifact_store_core::ports::{ByteRange, Presigned, StorageError};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::Md5;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::config::{S3Config, Sse};
use super::xml;

/// A signed request; the body is the exact payload whose sha256 was signed.
pub type S3Request = http::Request<Vec<u8>>;

/// S3's unreserved characters stay as they are; everything else is `%XX`.
const S3_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// The payload hash of a request whose body is checked otherwise (`Content-MD5`).
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The sha256 of an empty payload.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Uploads per ListMultipartUploads page: with keys of up to 1 KiB a page stays well
/// under `client::LIST_REPLY_LIMIT`.
pub const UPLOADS_PER_PAGE: u32 = 100;
/// Presigned URLs are valid for at most 7 days (SigV4 limit).
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

/// One uploaded part, as CompleteMultipartUpload lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
}

/// Builds signed requests for one bucket.
#[derive(Clone)]
pub struct S3Requests {
    scheme: String,
    /// `host[:port]` of the endpoint.
    authority: String,
    bucket: String,
    region: String,
    path_style: bool,
    storage_class: Option<String>,
    sse: Option<Sse>,
    identity: Identity,
}

impl std::fmt::Debug for S3Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The identity holds the secret: leave it out.
        f.debug_struct("S3Requests")
            .field("endpoint", &format!("{}://{}", self.scheme, self.authority))
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

impl S3Requests {
    pub fn new(config: &S3Config) -> Self {
        let (scheme, authority) = config
            .endpoint
            .split_once("://")
            .unwrap_or(("https", config.endpoint.as_str()));
        let identity: Identity = Credentials::new(
            config.access_key_id.clone(),
            config.secret_access_key.clone(),
            None,
            None,
            "artifact-store",
        )
        .into();
        S3Requests {
            scheme: scheme.to_string(),
            authority: authority.to_string(),
            bucket: config.bucket.clone(),
            region: config.region.clone(),
            path_style: config.path_style,
            storage_class: config.storage_class.clone(),
            sse: config.sse.clone(),
            identity,
        }
    }

    /// PutObject of the whole `body` (exact `Content-Length`, payload sha256 signed).
    pub fn put_object(&self, key: &str, body: Vec<u8>) -> Result<S3Request, StorageError> {
        let sha = hex::encode(Sha256::digest(&body));
        let mut headers = vec![content_type_octets()];
        headers.extend(self.write_headers());
        self.signed("PUT", self.object_url(key, &[]), headers, &sha, body)
    }

    /// PutObject of `size` bytes that come from elsewhere (`Transport::send_payload`), signed
    /// with the digest the client declared: the server hashes what it receives and refuses a
    /// mismatch (`XAmzContentSHA256Mismatch`) without keeping anything, so the guest neither
    /// hashes nor touches the bytes. The request's own body is empty.
    pub fn put_object_declared(
        &self,
        key: &str,
        size: u64,
        sha256: &str,
    ) -> Result<S3Request, StorageError> {
        let mut headers = vec![content_type_octets()];
        headers.extend(self.write_headers());
        let mut request = self.signed(
            "PUT",
            self.object_url(key, &[]),
            headers,
            sha256,
            Vec::new(),
        )?;
        request
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(size));
        Ok(request)
    }

    /// CreateMultipartUpload; the reply carries the `UploadId` (see `parse_upload_id`).
    pub fn create_multipart_upload(&self, key: &str) -> Result<S3Request, StorageError> {
        let mut headers = vec![content_type_octets()];
        headers.extend(self.write_headers());
        let url = self.object_url(key, &[("uploads", "")]);
        self.signed("POST", url, headers, EMPTY_SHA256, Vec::new())
    }

    /// UploadPart `part_number` (1..=10000) with the part's MD5 as a signed `Content-MD5`
    /// (the server refuses other bytes with `BadDigest`) and an unsigned payload.
    pub fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Vec<u8>,
    ) -> Result<S3Request, StorageError> {
        let md5 = BASE64.encode(<Md5 as md5::Digest>::digest(&body));
        let n = part_number.to_string();
        let url = self.object_url(key, &[("partNumber", &n), ("uploadId", upload_id)]);
        let headers = vec![("content-md5".to_string(), md5)];
        self.signed("PUT", url, headers, UNSIGNED_PAYLOAD, body)
    }

    /// CompleteMultipartUpload with the parts in order. Do not trust the ETag of the reply
    /// (Ceph RGW 16 answers an empty one); HEAD the object if it is needed.
    pub fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<S3Request, StorageError> {
        let mut body = String::from("<CompleteMultipartUpload>");
        for part in parts {
            body.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                part.part_number,
                xml::escape(&part.etag)
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let body = body.into_bytes();
        let sha = hex::encode(Sha256::digest(&body));
        let url = self.object_url(key, &[("uploadId", upload_id)]);
        let headers = vec![("content-type".to_string(), "application/xml".to_string())];
        self.signed("POST", url, headers, &sha, body)
    }

    pub fn abort_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<S3Request, StorageError> {
        let url = self.object_url(key, &[("uploadId", upload_id)]);
        self.signed("DELETE", url, Vec::new(), EMPTY_SHA256, Vec::new())
    }

    /// ListMultipartUploads under `prefix` (first page).
    pub fn list_multipart_uploads(&self, prefix: &str) -> Result<S3Request, StorageError> {
        self.list_multipart_uploads_after(prefix, None)
    }

    /// ListMultipartUploads under `prefix`, the page after `marker` (the previous page's
    /// `NextKeyMarker` and `NextUploadIdMarker`), or the first page. Pages hold at most
    /// `UPLOADS_PER_PAGE` uploads so a reply stays small.
    pub fn list_multipart_uploads_after(
        &self,
        prefix: &str,
        marker: Option<&UploadsMarker>,
    ) -> Result<S3Request, StorageError> {
        // Query parameters in sorted order, as the canonical request lists them.
        let max = UPLOADS_PER_PAGE.to_string();
        let mut query = Vec::new();
        if let Some(m) = marker {
            query.push(("key-marker", m.key.as_str()));
        }
        query.push(("max-uploads", max.as_str()));
        query.push(("prefix", prefix));
        if let Some(m) = marker {
            query.push(("upload-id-marker", m.upload_id.as_str()));
        }
        query.push(("uploads", ""));
        let url = self.bucket_url(&query);
        self.signed("GET", url, Vec::new(), EMPTY_SHA256, Vec::new())
    }

    /// ListObjectsV2 under `prefix` (first page, up to 1000 keys).
    pub fn list_objects_v2(&self, prefix: &str) -> Result<S3Request, StorageError> {
        let url = self.bucket_url(&[("list-type", "2"), ("prefix", prefix)]);
        self.signed("GET", url, Vec::new(), EMPTY_SHA256, Vec::new())
    }

    /// CopyObject `from` -> `to` in the bucket (server side, objects up to 5 GiB). The
    /// reply may be 200 with an `<Error>` body: check it.
    pub fn copy_object(&self, from: &str, to: &str) -> Result<S3Request, StorageError> {
        let source = format!("/{}/{}", self.bucket, escape_key(from));
        let mut headers = vec![("x-amz-copy-source".to_string(), source)];
        headers.extend(self.write_headers());
        self.signed(
            "PUT",
            self.object_url(to, &[]),
            headers,
            EMPTY_SHA256,
            Vec::new(),
        )
    }

    /// GetObject, optionally of an inclusive byte range.
    pub fn get_object(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<S3Request, StorageError> {
        let headers = range
            .map(|r| {
                vec![(
                    "range".to_string(),
                    format!("bytes={}-{}", r.start, r.end_inclusive),
                )]
            })
            .unwrap_or_default();
        self.signed(
            "GET",
            self.object_url(key, &[]),
            headers,
            EMPTY_SHA256,
            Vec::new(),
        )
    }

    pub fn head_object(&self, key: &str) -> Result<S3Request, StorageError> {
        let url = self.object_url(key, &[]);
        self.signed("HEAD", url, Vec::new(), EMPTY_SHA256, Vec::new())
    }

    pub fn delete_object(&self, key: &str) -> Result<S3Request, StorageError> {
        let url = self.object_url(key, &[]);
        self.signed("DELETE", url, Vec::new(), EMPTY_SHA256, Vec::new())
    }

    /// HeadBucket: 200 when the bucket exists and the credentials may use it.
    pub fn head_bucket(&self) -> Result<S3Request, StorageError> {
        let url = self.bucket_url(&[]);
        self.signed("HEAD", url, Vec::new(), EMPTY_SHA256, Vec::new())
    }

    /// A presigned GetObject URL valid for `expires` (at most 7 days), signed now.
    pub fn presign_get(&self, key: &str, expires: Duration) -> Result<String, StorageError> {
        self.presign_get_at(key, expires, SystemTime::now())
    }

    /// `presign_get` signed as of `time` (lets tests produce an already expired URL).
    pub fn presign_get_at(
        &self,
        key: &str,
        expires: Duration,
        time: SystemTime,
    ) -> Result<String, StorageError> {
        let url = self.object_url(key, &[]);
        let presigned = self.presigned("GET", url, Vec::new(), None, expires, time)?;
        Ok(presigned.url)
    }

    /// A presigned PutObject of bytes whose sha256 the client declared: the signature
    /// covers `x-amz-content-sha256` = `sha256`, so the client must send that header and
    /// the server hashes the body and refuses a mismatch (`XAmzContentSHA256Mismatch`)
    /// without storing anything. The bytes never pass through the gateway.
    pub fn presign_put_object_declared(
        &self,
        key: &str,
        sha256: &str,
        expires: Duration,
        time: SystemTime,
    ) -> Result<Presigned, StorageError> {
        let mut headers = vec![content_type_octets()];
        headers.extend(self.write_headers());
        let url = self.object_url(key, &[]);
        self.presigned("PUT", url, headers, Some(sha256), expires, time)
    }

    /// A presigned UploadPart signed with the part's declared sha256, as
    /// `presign_put_object_declared` does for a whole object: the server refuses other bytes.
    pub fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        sha256: &str,
        expires: Duration,
        time: SystemTime,
    ) -> Result<Presigned, StorageError> {
        let n = part_number.to_string();
        let url = self.object_url(key, &[("partNumber", &n), ("uploadId", upload_id)]);
        self.presigned("PUT", url, Vec::new(), Some(sha256), expires, time)
    }

    /// Signs `method url` into its query string. With `payload_sha256`, the digest is the
    /// canonical request's payload hash and `x-amz-content-sha256` is a signed header, which
    /// the client must send with every other signed header (`Presigned::headers`); without
    /// it the payload is unsigned (`UNSIGNED-PAYLOAD`, as for GET).
    fn presigned(
        &self,
        method: &str,
        url: String,
        mut headers: Vec<(String, String)>,
        payload_sha256: Option<&str>,
        expires: Duration,
        time: SystemTime,
    ) -> Result<Presigned, StorageError> {
        let mut settings = s3_settings();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        settings.expires_in = Some(expires.clamp(Duration::from_secs(1), MAX_PRESIGN));
        let body = match payload_sha256 {
            Some(sha256) => {
                headers.push(("x-amz-content-sha256".to_string(), sha256.to_string()));
                SignableBody::Precomputed(sha256.to_string())
            }
            None => SignableBody::UnsignedPayload,
        };
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            body,
        )
        .map_err(sign_error)?;
        let params = self.params(settings, time)?;
        let (instructions, _) = sign(signable, &params.into())
            .map_err(sign_error)?
            .into_parts();
        let mut request = http::Request::builder()
            .method(method)
            .uri(url.as_str())
            .body(())
            .map_err(|e| StorageError::Backend(format!("s3 presign: {e}")))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(Presigned {
            url: request.uri().to_string(),
            headers,
        })
    }

    /// The endpoint authority requests go to (for logs: no credentials in it).
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// Headers every write carries when configured: storage class and encryption.
    fn write_headers(&self) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        if let Some(class) = &self.storage_class {
            headers.push(("x-amz-storage-class".to_string(), class.clone()));
        }
        match &self.sse {
            None => {}
            Some(Sse::Aes256) => {
                headers.push((
                    "x-amz-server-side-encryption".to_string(),
                    "AES256".to_string(),
                ));
            }
            Some(Sse::Kms { key_id }) => {
                headers.push((
                    "x-amz-server-side-encryption".to_string(),
                    "aws:kms".to_string(),
                ));
                if let Some(id) = key_id {
                    headers.push((
                        "x-amz-server-side-encryption-aws-kms-key-id".to_string(),
                        id.clone(),
                    ));
                }
            }
        }
        headers
    }

    fn object_url(&self, key: &str, query: &[(&str, &str)]) -> String {
        let path = escape_key(key);
        let base = if self.path_style {
            format!(
                "{}://{}/{}/{path}",
                self.scheme,
                self.authority,
                escape(&self.bucket)
            )
        } else {
            // Virtual-hosted: the endpoint is the bucket's own host (`S3Config::path_style`).
            format!("{}://{}/{path}", self.scheme, self.authority)
        };
        with_query(base, query)
    }

    fn bucket_url(&self, query: &[(&str, &str)]) -> String {
        let base = if self.path_style {
            format!(
                "{}://{}/{}",
                self.scheme,
                self.authority,
                escape(&self.bucket)
            )
        } else {
            format!("{}://{}/", self.scheme, self.authority)
        };
        with_query(base, query)
    }

    fn params(
        &self,
        settings: SigningSettings,
        time: SystemTime,
    ) -> Result<v4::SigningParams<'_, SigningSettings>, StorageError> {
        v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| StorageError::Backend(format!("s3 signing parameters: {e}")))
    }

    /// Signs `method url` with `headers` and the payload digest, then attaches the body.
    fn signed(
        &self,
        method: &str,
        url: String,
        headers: Vec<(String, String)>,
        payload_sha256: &str,
        body: Vec<u8>,
    ) -> Result<S3Request, StorageError> {
        let mut settings = s3_settings();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Precomputed(payload_sha256.to_string()),
        )
        .map_err(sign_error)?;
        let params = self.params(settings, SystemTime::now())?;
        let (instructions, _) = sign(signable, &params.into())
            .map_err(sign_error)?
            .into_parts();
        let mut builder = http::Request::builder().method(method).uri(url.as_str());
        for (name, value) in &headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        // DELETE too: without a length, Spin's outbound HTTP sends `Transfer-Encoding:
        // chunked`, which Ceph RGW refuses on DELETE (501 NotImplemented).
        if matches!(method, "PUT" | "POST" | "DELETE") {
            builder = builder.header("content-length", body.len().to_string());
        }
        let mut request = builder
            .body(body)
            .map_err(|e| StorageError::Backend(format!("s3 request: {e}")))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }
}

/// `UploadId` of a CreateMultipartUpload reply.
pub fn parse_upload_id(body: &[u8]) -> Option<String> {
    xml::text(std::str::from_utf8(body).ok()?, "UploadId").filter(|id| !id.is_empty())
}

/// `(Key, UploadId)` pairs of a ListMultipartUploads reply.
pub fn parse_multipart_uploads(body: &[u8]) -> Vec<(String, String)> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    xml::texts(text, "Upload")
        .iter()
        .filter_map(|u| Some((xml::text(u, "Key")?, xml::text(u, "UploadId")?)))
        .collect()
}

/// Where the next page of a truncated ListMultipartUploads reply starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadsMarker {
    pub key: String,
    pub upload_id: String,
}

/// The next-page marker of a ListMultipartUploads reply; `None` when it is the last page.
pub fn parse_uploads_marker(body: &[u8]) -> Option<UploadsMarker> {
    let text = std::str::from_utf8(body).ok()?;
    if xml::text(text, "IsTruncated")? != "true" {
        return None;
    }
    Some(UploadsMarker {
        key: xml::text(text, "NextKeyMarker")?,
        upload_id: xml::text(text, "NextUploadIdMarker").unwrap_or_default(),
    })
}

/// Keys of a ListObjectsV2 reply.
pub fn parse_listed_keys(body: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    xml::texts(text, "Key")
}

/// An object key as a URL path: each `/`-separated segment escaped.
pub fn escape_key(key: &str) -> String {
    key.split('/').map(escape).collect::<Vec<_>>().join("/")
}

fn escape(s: &str) -> String {
    utf8_percent_encode(s, S3_ESCAPE).to_string()
}

fn with_query(base: String, query: &[(&str, &str)]) -> String {
    if query.is_empty() {
        return base;
    }
    let pairs: Vec<String> = query
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                escape(k)
            } else {
                format!("{}={}", escape(k), escape(v))
            }
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

fn s3_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    // S3 signs the path exactly as sent: no double encoding, no `..` folding.
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    // Framing, not content: see the module doc.
    settings.excluded_headers = Some(vec!["content-length".into(), "user-agent".into()]);
    settings
}

fn content_type_octets() -> (String, String) {
    (
        "content-type".to_string(),
        "application/octet-stream".to_string(),
    )
}

fn sign_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("s3 signing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path_style: bool) -> S3Config {
        S3Config::from_lookup(|k| {
            Some(
                match k {
                    "s3_endpoint" if path_style => "http://127.0.0.1:7480",
                    "s3_endpoint" => "http://bkt.s3.example.test:7480",
                    "s3_bucket" => "bkt",
                    "s3_access_key_id" => "AKIDEXAMPLE",
                    "s3_secret_access_key" => "SECRET",
                    "s3_sse" => "aws:kms",
                    "s3_sse_kms_key_id" => "key-1",
                    "s3_storage_class" => "STANDARD_IA",
                    "s3_path_style" => {
                        if path_style {
                            "true"
                        } else {
                            "false"
                        }
                    }
                    _ => "",
                }
                .to_string(),
            )
        })
        .unwrap()
        .unwrap()
    }

    fn header<'a>(r: &'a S3Request, name: &str) -> &'a str {
        r.headers().get(name).unwrap().to_str().unwrap()
    }

    #[test]
    fn put_object_is_signed_with_payload_digest_and_write_headers() {
        let r = S3Requests::new(&config(true))
            .put_object("p/a b+c", b"hello".to_vec())
            .unwrap();
        assert_eq!(r.uri(), "http://127.0.0.1:7480/bkt/p/a%20b%2Bc");
        assert_eq!(
            header(&r, "x-amz-content-sha256"),
            hex::encode(Sha256::digest(b"hello"))
        );
        assert_eq!(header(&r, "content-length"), "5");
        assert_eq!(header(&r, "x-amz-server-side-encryption"), "aws:kms");
        assert_eq!(
            header(&r, "x-amz-server-side-encryption-aws-kms-key-id"),
            "key-1"
        );
        assert_eq!(header(&r, "x-amz-storage-class"), "STANDARD_IA");
        let auth = header(&r, "authorization");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
        assert!(auth.contains("x-amz-server-side-encryption;"));
        assert!(!auth.contains("content-length"));
        assert!(!auth.contains("SECRET"));
    }

    #[test]
    fn declared_put_signs_the_declared_digest_and_length() {
        let r = S3Requests::new(&config(true))
            .put_object_declared("k", 5, "ab".repeat(32).as_str())
            .unwrap();
        assert_eq!(header(&r, "x-amz-content-sha256"), "ab".repeat(32));
        assert_eq!(header(&r, "content-length"), "5");
        assert!(r.body().is_empty());
        assert!(header(&r, "authorization").contains("x-amz-content-sha256"));
    }

    #[test]
    fn virtual_host_style_addresses_keys_at_the_bucket_host() {
        let s = S3Requests::new(&config(false));
        let r = s.head_object("p/k").unwrap();
        assert_eq!(r.uri(), "http://bkt.s3.example.test:7480/p/k");
        let r = s.head_bucket().unwrap();
        assert_eq!(r.uri(), "http://bkt.s3.example.test:7480/");
        let url = s.presign_get("p/k", Duration::from_secs(60)).unwrap();
        assert!(
            url.starts_with("http://bkt.s3.example.test:7480/p/k?"),
            "{url}"
        );
    }

    #[test]
    fn multipart_queries_and_complete_body() {
        let s = S3Requests::new(&config(true));
        assert_eq!(
            s.create_multipart_upload("k").unwrap().uri(),
            "http://127.0.0.1:7480/bkt/k?uploads"
        );
        assert_eq!(
            s.upload_part("k", "2~x/y", 3, vec![1]).unwrap().uri(),
            "http://127.0.0.1:7480/bkt/k?partNumber=3&uploadId=2~x%2Fy"
        );
        let c = s
            .complete_multipart_upload(
                "k",
                "u",
                &[CompletedPart {
                    part_number: 1,
                    etag: "\"abc\"".into(),
                }],
            )
            .unwrap();
        assert_eq!(
            std::str::from_utf8(c.body()).unwrap(),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>\
             <ETag>&quot;abc&quot;</ETag></Part></CompleteMultipartUpload>"
        );
        assert!(c.headers().get("x-amz-server-side-encryption").is_none());
        // Bodiless DELETEs still state their length (see `signed`).
        let abort = s.abort_multipart_upload("k", "u").unwrap();
        assert_eq!(header(&abort, "content-length"), "0");
        assert_eq!(
            header(&s.delete_object("k").unwrap(), "content-length"),
            "0"
        );
    }

    #[test]
    fn presigned_url_carries_query_signature() {
        let url = S3Requests::new(&config(true))
            .presign_get("a/b", Duration::from_secs(60))
            .unwrap();
        assert!(url.starts_with("http://127.0.0.1:7480/bkt/a/b?"));
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Expires=60",
            "X-Amz-Signature=",
        ] {
            assert!(url.contains(part), "{url} lacks {part}");
        }
    }

    #[test]
    fn parses_replies() {
        let init = b"<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>2~abc</UploadId></InitiateMultipartUploadResult>";
        assert_eq!(parse_upload_id(init).as_deref(), Some("2~abc"));
        let list = b"<ListMultipartUploadsResult><Upload><Key>k1</Key><UploadId>u1</UploadId></Upload></ListMultipartUploadsResult>";
        assert_eq!(
            parse_multipart_uploads(list),
            vec![("k1".to_string(), "u1".to_string())]
        );
        assert_eq!(parse_uploads_marker(list), None);
        let more = b"<R><IsTruncated>true</IsTruncated><NextKeyMarker>k&amp;1</NextKeyMarker>\
                     <NextUploadIdMarker>u1</NextUploadIdMarker></R>";
        let marker = parse_uploads_marker(more).unwrap();
        assert_eq!(
            marker,
            UploadsMarker {
                key: "k&1".into(),
                upload_id: "u1".into()
            }
        );
        assert_eq!(
            S3Requests::new(&config(true))
                .list_multipart_uploads_after("k", Some(&marker))
                .unwrap()
                .uri(),
            concat!(
                "http://127.0.0.1:7480/bkt?key-marker=k%261&max-uploads=100&prefix=k",
                "&upload-id-marker=u1&uploads"
            )
        );
    }
}
