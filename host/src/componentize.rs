//! Turning a component's `.wasm` file into a compiled [`Component`].
//!
//! Rust's `wasm32-wasip1` target produces a core module. Spin wraps such a
//! module into a component on load, with the WASI preview1 adapter; this
//! host does the same with `wit-component`. Compiling with Cranelift takes
//! seconds, so the compiled artefact is kept in a cache folder, keyed by the
//! file's digest and the engine's compatibility hash, and reused by the next
//! run.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Loads the `.wasm` at `source`, componentizing and compiling as needed.
pub fn load_component(
    engine: &Engine,
    source: &Path,
    cache_dir: &Path,
) -> anyhow::Result<Component> {
    let bytes = std::fs::read(source).with_context(|| {
        format!(
            "cannot read {}: build the component first",
            source.display()
        )
    })?;
    let key = cache_key(engine, &bytes);
    let cached = cache_dir.join(format!("{key}.cwasm"));
    if cached.is_file() {
        // SAFETY: the file was written by `Component::serialize` of an engine
        // with the same compatibility hash (it is part of the name), in a
        // folder only this host writes to.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok(component);
        }
    }
    let component_bytes = componentize(&bytes)
        .with_context(|| format!("cannot turn {} into a component", source.display()))?;
    let component = Component::new(engine, &component_bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", source.display()))?;
    if let Err(error) = write_cache(&component, cache_dir, &cached) {
        eprintln!("warning: cannot cache the compiled component: {error:#}");
    }
    Ok(component)
}

/// Wraps a core module into a component with the WASI preview1 adapter;
/// a component is returned unchanged.
pub fn componentize(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    if !wasmparser::Parser::is_core_wasm(bytes) {
        if wasmparser::Parser::is_component(bytes) {
            return Ok(bytes.to_vec());
        }
        anyhow::bail!("not a WebAssembly module or component");
    }
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(bytes)?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
}

fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut digest = Sha256::new();
    digest.update(bytes);
    digest.update(engine_hash.finish().to_le_bytes());
    digest.update(env!("CARGO_PKG_VERSION"));
    hex::encode(&digest.finalize()[..16])
}

fn write_cache(component: &Component, cache_dir: &Path, path: &PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(cache_dir)?;
    let serialized = component.serialize()?;
    // Write then rename, so a concurrent reader never sees half a file.
    let partial = path.with_extension(format!("{}.partial", std::process::id()));
    std::fs::write(&partial, serialized)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}
