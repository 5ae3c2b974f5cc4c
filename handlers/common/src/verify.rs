//! Verification of served bytes while they stream.
//!
//! Decision: the relay holds back the latest chunk until the next one arrives, so when the
//! source ends it still owns the last bytes; only if length (and, for whole objects, the
//! sha256) match does it release them. A caller that aborts instead of writing them gives
//! the client a short body, never a clean end with wrong bytes. Memory: two chunks.

use sha2::{Digest, Sha256};

pub struct Relay {
    expected_len: u64,
    /// `Some` when the whole object streams (ranges are not hashed).
    expected_sha256: Option<String>,
    hasher: Sha256,
    seen: u64,
    held: Option<Vec<u8>>,
}

impl Relay {
    pub fn new(expected_len: u64, expected_sha256: Option<String>) -> Relay {
        Relay {
            expected_len,
            expected_sha256,
            hasher: Sha256::new(),
            seen: 0,
            held: None,
        }
    }

    /// Takes the next chunk; returns the bytes that may be written now.
    pub fn push(&mut self, chunk: Vec<u8>) -> Result<Option<Vec<u8>>, String> {
        self.seen += chunk.len() as u64;
        if self.seen > self.expected_len {
            return Err(format!(
                "the object is longer than the recorded {} bytes",
                self.expected_len
            ));
        }
        if self.expected_sha256.is_some() {
            self.hasher.update(&chunk);
        }
        Ok(self.held.replace(chunk))
    }

    /// At the end of the source: the held-back bytes, if everything matched.
    pub fn finish(self) -> Result<Option<Vec<u8>>, String> {
        if self.seen != self.expected_len {
            return Err(format!(
                "the object has {} bytes, not the recorded {}",
                self.seen, self.expected_len
            ));
        }
        if let Some(expected) = &self.expected_sha256 {
            let actual = hex::encode(self.hasher.finalize());
            if actual != *expected {
                return Err(format!("the object's sha256 is {actual}, not {expected}"));
            }
        }
        Ok(self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn run(chunks: &[&[u8]], len: u64, digest: Option<String>) -> (Vec<u8>, Result<(), String>) {
        let mut relay = Relay::new(len, digest);
        let mut out = Vec::new();
        for c in chunks {
            match relay.push(c.to_vec()) {
                Ok(Some(w)) => out.extend(w),
                Ok(None) => {}
                Err(e) => return (out, Err(e)),
            }
        }
        match relay.finish() {
            Ok(last) => {
                out.extend(last.unwrap_or_default());
                (out, Ok(()))
            }
            Err(e) => (out, Err(e)),
        }
    }

    #[test]
    fn good_bytes_pass_through() {
        let (out, r) = run(&[b"hel", b"lo"], 5, Some(sha(b"hello")));
        assert_eq!((out.as_slice(), r), (&b"hello"[..], Ok(())));
        let (out, r) = run(&[], 0, Some(sha(b"")));
        assert!(out.is_empty() && r.is_ok());
    }

    #[test]
    fn corrupt_bytes_never_complete_the_body() {
        // Same length, different bytes: everything but the last chunk was released.
        let (out, r) = run(&[b"hel", b"LO"], 5, Some(sha(b"hello")));
        assert!(r.is_err());
        assert_eq!(out, b"hel");
        // A single-chunk object releases nothing.
        let (out, r) = run(&[b"hellO"], 5, Some(sha(b"hello")));
        assert!(r.is_err() && out.is_empty());
        // Short and long objects.
        assert!(run(&[b"hell"], 5, Some(sha(b"hello"))).1.is_err());
        assert!(run(&[b"hello", b"!"], 5, None).1.is_err());
    }

    #[test]
    fn ranges_check_length_only() {
        let (out, r) = run(&[b"ll"], 2, None);
        assert_eq!((out.as_slice(), r), (&b"ll"[..], Ok(())));
    }
}
