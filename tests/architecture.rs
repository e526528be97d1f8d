//! ARCHITECTURE.md's structural invariants, checked on the source tree itself: no import cycle
//! between files (a module's `mod.rs` re-exporting its children is not an import), and no source
//! file a reader cannot hold in mind.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files allowed past the size limit, each with the reason it stays whole.
const LONG_FILES: &[(&str, &str)] = &[];

const MAX_LINES: usize = 500;

/// Every `.rs` file under `src/`, keyed by its module path (`features::hrv`; `lib` and `main`
/// are the empty path of their crates).
fn source_files() -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.insert(path.clone(), std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&common::repo_path("src"), &mut out);
    out
}

/// `src/features/hrv.rs` → ["features", "hrv"]; `src/fusion/mod.rs` → ["fusion"].
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(common::repo_path("src")).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// The files a file imports through `crate::…` and `super::…` paths (test modules excluded).
fn imports(file: &Path, text: &str, modules: &BTreeMap<Vec<String>, PathBuf>) -> BTreeSet<PathBuf> {
    let code = text.split("#[cfg(test)]").next().unwrap();
    // `super` is the parent module, for `a/b.rs` and `a/b/mod.rs` alike.
    let mut parent = module_of(file);
    parent.pop();
    let mut out = BTreeSet::new();
    for (anchor, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(i) = rest.find(anchor) {
            let before = rest[..i].chars().last();
            rest = &rest[i + anchor.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let path: Vec<String> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap()
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let mut full = base.clone();
            full.extend(path);
            // The longest prefix that names a file.
            while !full.is_empty() {
                if let Some(target) = modules.get(&full) {
                    if target != file {
                        out.insert(target.clone());
                    }
                    break;
                }
                full.pop();
            }
        }
    }
    out
}

/// Each library file and the library files it imports. The binary's modules (src/main.rs,
/// src/cli/) are a crate of their own and are left out.
fn library_imports() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let files = source_files();
    let lib: BTreeMap<&PathBuf, &String> =
        files.iter().filter(|(p, _)| !p.ends_with("main.rs") && !p.iter().any(|c| c == "cli")).collect();
    let modules: BTreeMap<Vec<String>, PathBuf> = lib.keys().map(|p| (module_of(p), (*p).clone())).collect();
    lib.iter().map(|(p, text)| ((*p).clone(), imports(p, text, &modules))).collect()
}

#[test]
fn no_import_cycle_between_files() {
    let graph = library_imports();
    assert!(graph[&common::repo_path("src/daemon/mod.rs")].contains(&common::repo_path("src/ingest/mod.rs")));

    // A cycle is a path from a file back to itself; report each file's shortest one.
    let mut cycles = Vec::new();
    for start in graph.keys() {
        let mut seen = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        while let Some(at) = queue.pop_front() {
            for next in &graph[&at] {
                if next == start {
                    let mut cycle = vec![at.clone()];
                    while let Some(prev) = seen.get(cycle.last().unwrap()) {
                        cycle.push(Clone::clone(prev));
                    }
                    cycle.reverse();
                    cycles.push(cycle);
                    queue.clear();
                    break;
                }
                if !seen.contains_key(next) && next != start {
                    seen.insert(next.clone(), at.clone());
                    queue.push_back(next.clone());
                }
            }
        }
    }
    let shown: Vec<String> = cycles
        .iter()
        .map(|c| {
            c.iter()
                .map(|f| f.strip_prefix(common::repo_path("")).unwrap().display().to_string())
                .collect::<Vec<_>>()
                .join(" → ")
        })
        .collect();
    assert!(shown.is_empty(), "import cycles between modules:\n{}", shown.join("\n"));
}

#[test]
fn no_source_file_is_longer_than_a_reader_can_hold() {
    let long: Vec<String> = source_files()
        .iter()
        .map(|(p, text)| (p.strip_prefix(common::repo_path("")).unwrap().display().to_string(), text.lines().count()))
        .filter(|(p, n)| *n > MAX_LINES && !LONG_FILES.iter().any(|(f, _)| f == p))
        .map(|(p, n)| format!("{p}: {n} lines"))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split by responsibility, or list them with a reason):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_leaf_modules_import_nothing_of_ours() {
    // ARCHITECTURE.md: `signal` and `service` import nothing of the crate; everyone may import them.
    let graph = library_imports();
    for leaf in ["signal", "service"] {
        let root = common::repo_path("src").join(leaf);
        let inside = |p: &Path| p.starts_with(&root) || p == common::repo_path(&format!("src/{leaf}.rs"));
        for (file, imported) in graph.iter().filter(|(p, _)| inside(p)) {
            let outside: Vec<_> = imported.iter().filter(|p| !inside(p)).collect();
            assert!(outside.is_empty(), "{} imports {outside:?}", file.display());
        }
    }
}
