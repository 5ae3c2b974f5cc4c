//! Content addressing: where bytes live in a backend.
//!
//! Decision: final objects are named by their sha256 only (`<prefix>sha256/<aa>/<bb>/<hex>`),
//! so identical bytes share one object whatever package they belong to, and the two fan-out
//! levels keep listings of S3 prefixes and KV key spaces small. Uploads first land at
//! `<prefix>staging/<upload_id>`, because the digest is only known once the body ended.
//! A prefix is either empty or ends with exactly one `/` (normalized here).

/// `""` stays `""`; otherwise leading `/` are dropped and exactly one trailing `/` is kept.
pub fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_start_matches('/').trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

/// `<prefix>sha256/<aa>/<bb>/<digest>` for a lower-case hex digest (see `validate::sha256_hex`).
pub fn object_key(prefix: &str, sha256: &str) -> String {
    let p = normalize_prefix(prefix);
    let aa = sha256.get(0..2).unwrap_or("__");
    let bb = sha256.get(2..4).unwrap_or("__");
    format!("{p}sha256/{aa}/{bb}/{sha256}")
}

/// `<prefix>staging/<upload_id>`: where an upload's bytes wait for their digest.
pub fn staging_key(prefix: &str, upload_id: &str) -> String {
    format!("{}staging/{upload_id}", normalize_prefix(prefix))
}

/// The digest an object key names, if it is a final (content-addressed) key.
pub fn digest_of(prefix: &str, key: &str) -> Option<String> {
    let rest = key
        .strip_prefix(&normalize_prefix(prefix))?
        .strip_prefix("sha256/")?;
    let mut parts = rest.split('/');
    let (aa, bb, digest) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = parts.next().is_none()
        && digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && digest.starts_with(aa)
        && digest[2..].starts_with(bb)
        && aa.len() == 2
        && bb.len() == 2;
    ok.then(|| digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn prefixes_are_normalized() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix("a"), "a/");
        assert_eq!(normalize_prefix("/a/b//"), "a/b/");
    }

    #[test]
    fn object_and_staging_keys() {
        assert_eq!(object_key("", D), format!("sha256/e3/b0/{D}"));
        assert_eq!(object_key("reg", D), format!("reg/sha256/e3/b0/{D}"));
        assert_eq!(object_key("reg/", D), object_key("reg", D));
        assert_eq!(staging_key("reg", "u1"), "reg/staging/u1");
        assert_eq!(staging_key("", "u1"), "staging/u1");
    }

    #[test]
    fn digest_of_inverts_object_key() {
        assert_eq!(digest_of("reg", &object_key("reg", D)).as_deref(), Some(D));
        assert_eq!(digest_of("", &staging_key("", "u1")), None);
        assert_eq!(digest_of("", &format!("sha256/00/b0/{D}")), None);
    }
}
