//! `docs/architecture.md` is the map of `src/`: every `src/...` path it names must exist, and
//! every file under `src/` must be named in it (a folder's `mod.rs` by the folder, `src/x/`).
//! When a module is added, moved or removed, this test names the line of the map to change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const DOC: &str = "docs/architecture.md";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `src/...` path the text names, as written (a folder ends with `/`).
fn named_paths(text: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for (at, _) in text.match_indices("src/") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/') {
            continue; // part of another path, e.g. `fake-toss/src/`
        }
        let path: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '.' | '-'))
            .collect();
        paths.insert(path.trim_end_matches('.').to_owned());
    }
    paths
}

/// Every `.rs` file under `dir`, relative to the crate root, `/`-separated.
fn source_files(dir: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            source_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root()).expect("under the crate root");
            files.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn doc() -> String {
    std::fs::read_to_string(root().join(DOC)).expect("docs/architecture.md is readable")
}

#[test]
fn every_path_the_architecture_doc_names_exists() {
    let missing: Vec<String> = named_paths(&doc())
        .into_iter()
        .filter(|path| !root().join(path).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "{DOC} names paths that do not exist (rename or remove them there): {missing:?}"
    );
}

#[test]
fn every_module_under_src_is_named_in_the_architecture_doc() {
    let named = named_paths(&doc());
    let mut files = Vec::new();
    source_files(&root().join("src"), &mut files);
    files.sort();
    let unnamed: Vec<&String> = files
        .iter()
        .filter(|file| {
            let folder = file.strip_suffix("mod.rs");
            !named.contains(file.as_str()) && folder.is_none_or(|folder| !named.contains(folder))
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "files under src/ that {DOC} does not name (add each to its module map): {unnamed:?}"
    );
}

#[test]
fn the_path_reader_finds_paths_and_skips_other_crates() {
    let paths = named_paths(
        "see `src/http/mod.rs`, src/store/ and src/crypto.rs. Not fake-toss/src/lib.rs nor xsrc/a",
    );
    let expected: BTreeSet<String> = ["src/http/mod.rs", "src/store/", "src/crypto.rs"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(paths, expected);
}
