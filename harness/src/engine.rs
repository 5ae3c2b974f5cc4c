//! Engine configuration, component compilation and the on-disk compile cache.
//!
//! Decision: one engine per app with the pooling allocator (instances are created per request,
//! so slot reuse matters); compiled components are serialized to
//! `<state-dir>/cache/<sha256 of wasm>-wasmtime-<version>-<engine settings hash>.cwasm` and loaded from there on later
//! starts. A cache entry the engine rejects (other settings, corrupt file) is recompiled and
//! overwritten, never trusted blindly.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The wasmtime release this harness is built against (part of the cache key).
pub const WASMTIME_VERSION: &str = "48.0.8";
/// Largest linear memory a guest may grow to.
const MAX_MEMORY: usize = 1 << 30;

/// An engine whose pooling allocator reserves slots for `instances` concurrent component
/// instances (`Limits::max_instances`; one more fails at once, and is answered 503).
pub fn new_engine(instances: u32) -> Result<Engine> {
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(instances)
        .total_core_instances(instances * 4)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .max_memory_size(MAX_MEMORY)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20);
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    let engine = match Engine::new(&config) {
        Ok(e) => e,
        // Pooling reserves a lot of virtual memory up front; some sandboxes forbid that.
        Err(e) => {
            eprintln!("harness: pooling allocator unavailable ({e}); using on-demand allocation");
            Engine::new(&base_config())?
        }
    };
    tick_epochs(&engine);
    Ok(engine)
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Request deadlines (`Limits::request_deadline`) stop guests that never yield.
    config.epoch_interruption(true);
    config
}

/// Advances the engine's epoch every `EPOCH_TICK` for as long as the engine lives.
fn tick_epochs(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(crate::limits::EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// sha256 of a file, streamed in 64 KiB chunks.
fn file_sha256(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Loads a component, from the compile cache when possible.
pub fn load_component(engine: &Engine, wasm: &Path, cache_dir: &Path) -> Result<Component> {
    let digest = file_sha256(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    // The compatibility hash covers the wasmtime version and every codegen-relevant setting.
    let mut compat = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut compat);
    let compat = std::hash::Hasher::finish(&compat);
    let cached = cache_dir.join(format!(
        "{digest}-wasmtime-{WASMTIME_VERSION}-{compat:016x}.cwasm"
    ));
    if cached.exists() {
        // SAFETY: the file was written by `Component::serialize` of this harness into a cache
        // directory it owns; wasmtime additionally checks the engine/version header.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(c) => return Ok(c),
            Err(e) => eprintln!(
                "harness: ignoring compile cache {} ({e}); recompiling",
                cached.display()
            ),
        }
    }
    let component = Component::from_file(engine, wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling {}", wasm.display()))?;
    std::fs::create_dir_all(cache_dir)?;
    let bytes = component.serialize()?;
    // Write then rename so a concurrent start never reads a half-written artifact.
    static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = cached.with_extension(format!("tmp-{}-{seq}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &cached)?;
    Ok(component)
}
