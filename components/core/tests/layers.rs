//! The crate's modules form layers: no module uses one that uses it back,
//! directly or through others. Read from the sources, so a new `use` that
//! closes a loop fails here, with the loop named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and the top-level modules its code (not its
/// tests, not its comments) names through `crate::`.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![source.clone()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
            continue;
        }
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let relative = path.strip_prefix(&source).unwrap();
        let first = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let uses = graph.entry(module.clone()).or_default();
        for line in code
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
        {
            for (index, _) in line.match_indices("crate::") {
                let name: String = line[index + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

/// A loop through `graph` from `start`, if there is one.
fn loop_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    for next in graph.get(path.last().unwrap()).into_iter().flatten() {
        if next == start {
            let mut found = path.clone();
            found.push(next.clone());
            return Some(found);
        }
        if !path.contains(next) {
            path.push(next.clone());
            if let Some(found) = loop_from(graph, start, path) {
                return Some(found);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let graph = dependencies();
    assert!(graph.len() > 10, "the sources were read: {graph:?}");
    for module in graph.keys() {
        let found = loop_from(&graph, module, &mut vec![module.clone()]);
        assert!(
            found.is_none(),
            "modules in a loop: {}",
            found.unwrap().join(" -> ")
        );
    }
}

/// The `auth` use cases (every module of `auth/` but its HTTP layer,
/// `handlers/`, and the wiring in `mod.rs`) know nothing of HTTP: what
/// they take and return can be built and checked in a native test.
#[test]
fn the_use_cases_know_nothing_of_http() {
    let auth = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/auth");
    let mut checked = 0;
    for entry in std::fs::read_dir(&auth).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() || name == "mod.rs" || !name.ends_with(".rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for word in [
            "crate::http",
            "crate::component",
            "handlers::",
            "Request",
            "Response",
        ] {
            assert!(
                !text.contains(word),
                "auth/{name} names {word}: use cases take commands, not requests"
            );
        }
        checked += 1;
    }
    assert!(checked >= 5, "the use case modules were read");
}
