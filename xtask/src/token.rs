//! The local operator token for `cargo xtask up`: printed once, only its hash kept.
//!
//! `.spin/operator-token.sha256` holds the hash; the `auth_tokens` variable passed to the
//! harness is built from it. Losing the token means `cargo xtask up --new-token`.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

pub fn local_operator(state_dir: &Path, new_token: bool) -> Result<String> {
    let hash_file = state_dir.join("operator-token.sha256");
    let hash = match std::fs::read_to_string(&hash_file) {
        Ok(h) if !new_token && h.trim().len() == 64 => h.trim().to_string(),
        _ => {
            let mut raw = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut raw))
                .context("reading /dev/urandom")?;
            let token = format!("as_{}", hex::encode(raw));
            let hash = hex::encode(Sha256::digest(token.as_bytes()));
            std::fs::write(&hash_file, &hash)?;
            eprintln!();
            eprintln!("    local operator token (shown once, only its hash is kept):");
            eprintln!("    export ARTIFACT_STORE_TOKEN={token}");
            eprintln!();
            hash
        }
    };
    Ok(format!(
        r#"[{{"token_sha256":"{hash}","principal":"local-operator","roles":["operator","producer"],"producers":["*"]}}]"#
    ))
}
