//! Turning a component's `.wasm` file into a compiled [`Component`].
//!
//! Rust's `wasm32-wasip1` target produces a core module. Spin wraps such a
//! module into a component on load, with the WASI preview1 adapter; this
//! host does the same with `wit-component`. Compiling with Cranelift takes
//! seconds, so the compiled artefact is kept in a cache folder, keyed by the
//! file's digest and the engine's compatibility hash, and reused by the next
//! run; within one process it is also kept in memory, so that apps started
//! one after another in it (as the tests do, each with a state folder of its
//! own) share the compiled code.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    // Held while compiling, so that apps started at once compile a file once.
    // One entry per source file: a rebuilt file replaces its old code.
    static COMPILED: Mutex<BTreeMap<PathBuf, (String, Component)>> = Mutex::new(BTreeMap::new());
    let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((compiled_key, component)) = compiled.get(source)
        && *compiled_key == key
        && Engine::same(component.engine(), engine)
    {
        return Ok(component.clone());
    }
    let component = load_uncached(engine, &bytes, source, cache_dir, &key)?;
    compiled.insert(source.to_owned(), (key, component.clone()));
    Ok(component)
}

/// Loads from the cache folder, or compiles and writes it there.
fn load_uncached(
    engine: &Engine,
    bytes: &[u8],
    source: &Path,
    cache_dir: &Path,
    key: &str,
) -> anyhow::Result<Component> {
    let cached = cache_dir.join(format!("{key}.cwasm"));
    if cached.is_file() {
        // SAFETY: the file was written by `Component::serialize` of an engine
        // with the same compatibility hash (it is part of the name), in a
        // folder only this host writes to, whole (written, then renamed
        // into place): the mapping stays valid, and is kept in memory for
        // the process, even if the folder is deleted later.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok(component);
        }
    }
    let component_bytes = componentize(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component, with a custom section to tell versions apart.
    fn component_with(marker: &[u8]) -> Vec<u8> {
        let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
        let name = b"version";
        bytes.push(0);
        bytes.push((1 + name.len() + marker.len()) as u8);
        bytes.push(name.len() as u8);
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(marker);
        bytes
    }

    fn files_in(folder: &Path) -> usize {
        std::fs::read_dir(folder).map_or(0, |entries| entries.count())
    }

    #[test]
    fn a_process_compiles_a_file_once_until_it_changes() {
        let engine = Engine::default();
        let folder = tempfile::tempdir().unwrap();
        let source = folder.path().join("app.wasm");
        let (first, second, third) = (
            folder.path().join("first"),
            folder.path().join("second"),
            folder.path().join("third"),
        );
        std::fs::write(&source, component_with(b"one")).unwrap();

        load_component(&engine, &source, &first).unwrap();
        assert_eq!(files_in(&first), 1, "compiled and written to the cache");
        load_component(&engine, &source, &second).unwrap();
        assert_eq!(files_in(&second), 0, "the same file's code is reused");

        std::fs::write(&source, component_with(b"two")).unwrap();
        load_component(&engine, &source, &second).unwrap();
        assert_eq!(files_in(&second), 1, "a changed file is compiled again");

        let other_engine = Engine::default();
        let component = load_component(&other_engine, &source, &third).unwrap();
        assert!(Engine::same(component.engine(), &other_engine));
        assert_eq!(files_in(&third), 1, "another engine compiles its own");
    }
}
