//! What `cargo run` does with a configuration it cannot serve: one line on
//! stderr saying why, and a non-zero exit, before any socket opens.

use std::path::Path;
use std::process::Command;

/// Runs the host binary on `manifest` and returns (exit code, stderr).
fn run_host(manifest: &Path, environment: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_spin-auth"))
        .arg("--from")
        .arg(manifest)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--no-build")
        .env_remove("SPIN_VARIABLE_SECRET_WORD")
        .envs(environment.iter().copied())
        .current_dir(manifest.parent().unwrap())
        .output()
        .expect("the host binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn manifest_in(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn assert_one_error_line(code: i32, stderr: &str, expected: &str) {
    assert_ne!(code, 0, "{stderr}");
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("Error: "), "{stderr}");
    assert!(
        lines[0].contains(expected),
        "expected {expected:?} in {stderr}"
    );
}

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "startup"
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "web.wasm"
"#;

#[test]
fn a_malformed_manifest_ends_startup_with_the_line_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_in(
        dir.path(),
        "spin_manifest_version = 2\n[application\nname = 1\n",
    );
    let (code, stderr) = run_host(&manifest, &[]);
    assert_one_error_line(code, &stderr, "line 2");
}

#[test]
fn a_missing_wasm_file_ends_startup() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_in(dir.path(), APP);
    let (code, stderr) = run_host(&manifest, &[]);
    assert_one_error_line(code, &stderr, "web.wasm does not exist");
}

#[test]
fn a_missing_required_variable_ends_startup() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("host/tests/fixture/spin.toml");
    let (code, stderr) = run_host(&manifest, &[]);
    assert_one_error_line(code, &stderr, "SPIN_VARIABLE_SECRET_WORD");
}

#[test]
fn an_import_the_host_does_not_provide_ends_startup() {
    let dir = tempfile::tempdir().unwrap();
    let component = wat::parse_str(
        r#"(component (import "fermyon:spin/key-value@2.0.0" (instance (export "missing" (func)))))"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("web.wasm"), component).unwrap();
    let manifest = manifest_in(dir.path(), APP);
    let (code, stderr) = run_host(&manifest, &[]);
    assert_one_error_line(code, &stderr, "fermyon:spin/key-value@2.0.0");
}

#[test]
fn a_component_without_an_http_handler_ends_startup() {
    let dir = tempfile::tempdir().unwrap();
    let component = wat::parse_str(r#"(component)"#).unwrap();
    std::fs::write(dir.path().join("web.wasm"), component).unwrap();
    let text = APP.replace("route = \"/...\"", "route = \"/only\"");
    let manifest = manifest_in(dir.path(), &text);
    // The empty component exports no handler: the host says so at startup.
    let (code, stderr) = run_host(&manifest, &[]);
    assert_one_error_line(code, &stderr, "wasi:http/incoming-handler");
}
