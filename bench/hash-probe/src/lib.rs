//! A component that only reads its request body and hashes it, answering
//! `<sha256> <bytes>`: `cargo xtask bench` times it under each host as the bound of every
//! upload path that hashes in the guest (the kv backend, undeclared digests). It reads the
//! body exactly as the app does (`RequestBody`) and is built with the app's release profile.

use artifact_store_core::ports::ByteStream;
use artifact_store_handlers::body::{self, RawBody, Reply, RequestBody};
use sha2::{Digest, Sha256};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    // `/raw`: read the body as `RawBody` (1 MiB reads) instead of spin-sdk's stream (16 KiB).
    let raw = req.path_with_query().is_some_and(|p| p.starts_with("/raw"));
    let reply = if raw {
        match RawBody::new(req) {
            Ok(mut reader) => hash(&mut reader).await,
            Err(e) => Reply {
                status: 500,
                headers: Vec::new(),
                body: e.into_bytes(),
            },
        }
    } else {
        hash(&mut RequestBody::new(req)).await
    };
    body::send(out, Ok(reply));
}

async fn hash(reader: &mut impl ByteStream) -> Reply {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        match reader.next_chunk().await {
            Ok(Some(chunk)) => {
                size += chunk.len() as u64;
                hasher.update(&chunk);
            }
            Ok(None) => {
                let text = format!("{} {size}", hex::encode(hasher.finalize()));
                break Reply {
                    status: 200,
                    headers: vec![("content-type".into(), "text/plain".into())],
                    body: text.into_bytes(),
                };
            }
            Err(e) => {
                break Reply {
                    status: 400,
                    headers: Vec::new(),
                    body: e.to_string().into_bytes(),
                };
            }
        }
    }
}
