//! Running `[component.<id>.build]` commands, as `spin build` does, but only
//! for components whose output is missing or older than the files their
//! `watch` globs name.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};

use crate::manifest::{BuildDecl, ComponentDecl, Manifest};

/// Why a component needs building, if it does.
#[derive(Debug, PartialEq, Eq)]
pub enum Staleness {
    /// The output exists and nothing it watches is newer.
    Fresh,
    /// There is no output yet.
    Missing,
    /// This watched file changed after the output was written.
    Changed(PathBuf),
}

/// Builds every component of `manifest` that needs it, one at a time.
/// Hosts started at once in one process (as tests do) build in turn, so the
/// second finds the first's output fresh.
pub fn build_stale_components(manifest: &Manifest) -> anyhow::Result<()> {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    for component in manifest.components.values() {
        let Some(build) = &component.build else {
            continue;
        };
        let staleness = staleness(manifest, component, build)?;
        if staleness == Staleness::Fresh {
            continue;
        }
        run_build(manifest, component, build)?;
    }
    Ok(())
}

/// Checks whether `component`'s output is up to date with its watched files.
pub fn staleness(
    manifest: &Manifest,
    component: &ComponentDecl,
    build: &BuildDecl,
) -> anyhow::Result<Staleness> {
    let Some(built_at) = modified(&component.source) else {
        return Ok(Staleness::Missing);
    };
    let workdir = workdir(manifest, build);
    for pattern in &build.watch {
        let full = workdir.join(pattern);
        let full = full.to_string_lossy();
        let paths = glob::glob(&full)
            .with_context(|| format!("component {}: bad watch glob {pattern:?}", component.id))?;
        for path in paths.flatten() {
            if modified(&path).is_some_and(|changed| changed > built_at) {
                return Ok(Staleness::Changed(path));
            }
        }
    }
    Ok(Staleness::Fresh)
}

fn run_build(
    manifest: &Manifest,
    component: &ComponentDecl,
    build: &BuildDecl,
) -> anyhow::Result<()> {
    let workdir = workdir(manifest, build);
    eprintln!(
        "Building component {} with `{}`",
        component.id, build.command
    );
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&build.command)
        .current_dir(&workdir)
        .status()
        .with_context(|| format!("cannot run the build command of component {}", component.id))?;
    if !status.success() {
        bail!(
            "the build command of component {} failed ({status}): `{}` in {}",
            component.id,
            build.command,
            workdir.display()
        );
    }
    if !component.source.is_file() {
        bail!(
            "the build command of component {} succeeded but did not produce {}",
            component.id,
            component.source.display()
        );
    }
    // A build tool that found nothing to do (cargo, after a change to a
    // file that does not affect this output) leaves the output's time
    // alone; mark it as checked, or it would look stale forever.
    let _ = std::fs::File::options()
        .write(true)
        .open(&component.source)
        .and_then(|file| file.set_modified(SystemTime::now()));
    Ok(())
}

fn workdir(manifest: &Manifest, build: &BuildDecl) -> PathBuf {
    match &build.workdir {
        Some(dir) => manifest.app_dir.join(dir),
        None => manifest.app_dir.clone(),
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}
