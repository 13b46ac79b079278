//! The repository must be readable on its own: no file may send the reader to a design
//! document that lives outside it, and every `docs/*.md` a file points at must exist.
//!
//! The project started from a set of specification files kept beside the repository. Their
//! facts now live in `docs/`; a reference to the old files (by their names, without the
//! `docs/` prefix, or by the shared folder's path) leaves a newcomer with a dead end. The
//! test walks every file of the tree except `target/` and `.git/`, and lists each offending
//! `file:line` so whoever added one can point it at the matching `docs/` file instead.
//!
//! The names it looks for are assembled at run time, so this file does not trip itself.

use std::path::{Path, PathBuf};

/// Directories that are build output, version control or local data, never documentation.
const SKIPPED_DIRS: &[&str] = &["target", ".git", "m365audit-data"];

/// Files larger than this are data (golden outputs, fixtures), not prose worth scanning.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The names of the documents the project started from, which live outside the repository.
fn outside_names() -> Vec<String> {
    [
        outside_word().as_str(),
        "management-api",
        "detections",
        "devo",
        "stack",
        "style",
    ]
    .iter()
    .map(|stem| format!("{stem}.md"))
    .collect()
}

/// Path fragments that can only mean the shared folder outside the repository.
fn outside_paths() -> Vec<String> {
    vec![format!("..{}shared", '/'), format!("/work{}shared", '/')]
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every text file under `dir`, skipping build output, version control and large files.
fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if SKIPPED_DIRS.iter().any(|s| name == *s) {
                continue;
            }
            text_files(&path, out);
        } else if kind.is_file() {
            let small = entry.metadata().is_ok_and(|m| m.len() <= MAX_FILE_BYTES);
            if small {
                out.push(path);
            }
        }
    }
}

/// The repository's text files with their contents, paths relative to the root.
fn repo_texts() -> Vec<(String, String)> {
    let root = repo_root();
    let mut files = Vec::new();
    text_files(&root, &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let text = String::from_utf8(std::fs::read(&path).ok()?).ok()?;
            let rel = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            Some((rel, text))
        })
        .collect()
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// The architecture document the project started from was also cited without its
/// extension; its upper-case name is distinctive enough to catch in any form.
fn outside_word() -> String {
    ["ARCHITECT", "URE"].concat()
}

/// A section sign followed by a number points into a document outside the repository:
/// the documents in `docs/` name their sections by title. An RFC's sections are fine.
fn outside_section_refs(line: &str) -> usize {
    let mut n = 0;
    for (at, _) in line.match_indices('§') {
        let next = line[at + '§'.len_utf8()..].chars().next();
        if !next.is_some_and(|c| c.is_ascii_digit()) {
            continue;
        }
        let before = &line[..at];
        let rfc = before
            .trim_end()
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end()
            .ends_with("RFC");
        if !rfc {
            n += 1;
        }
    }
    n
}

/// References to outside documents on one line: the shared folder's path anywhere, one
/// of the outside names that is a word of its own and not the `docs/` file of that name,
/// the upper-case name of the old architecture document, or a numbered section sign.
/// Inside `docs/` itself a bare name is a sibling link, fine when that sibling exists.
fn outside_refs_in_line(line: &str, in_docs: bool, root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for p in outside_paths() {
        if line.contains(&p) {
            found.push(p);
        }
    }
    let word = outside_word();
    let names = outside_names();
    let mut counted_word = false;
    for name in &names {
        let mut from = 0;
        while let Some(pos) = line[from..].find(name.as_str()) {
            let at = from + pos;
            from = at + name.len();
            let before = &line[..at];
            let after = line[from..].chars().next();
            if before.chars().next_back().is_some_and(is_name_char)
                || after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                continue; // part of a longer name, e.g. `my-devo.md` or `devo.mdx`
            }
            if before.ends_with("docs/") && !before.ends_with("shared/docs/") {
                continue;
            }
            let sibling =
                in_docs && !before.ends_with('/') && root.join("docs").join(name).is_file();
            if sibling {
                continue;
            }
            counted_word |= name.starts_with(&word);
            found.push(name.clone());
        }
    }
    if !counted_word && line.contains(&word) {
        found.push(word);
    }
    found.extend(std::iter::repeat_n(
        "numbered section".to_string(),
        outside_section_refs(line),
    ));
    found
}

#[test]
fn no_file_refers_to_a_design_document_outside_the_repository() {
    let root = repo_root();
    let mut offences = Vec::new();
    for (rel, text) in repo_texts() {
        let in_docs = rel.starts_with("docs/") || rel.starts_with("docs\\");
        for (n, line) in text.lines().enumerate() {
            for what in outside_refs_in_line(line, in_docs, &root) {
                offences.push(format!("{rel}:{}: {what}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "{} reference(s) to documents outside the repository; point each at the matching \
         docs/ file and section instead:\n{}",
        offences.len(),
        offences.join("\n")
    );
}

/// Every `docs/<name>.md` mentioned anywhere in the tree, with where it was mentioned.
fn docs_paths_mentioned() -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    for (rel, text) in repo_texts() {
        for (n, line) in text.lines().enumerate() {
            let mut from = 0;
            while let Some(pos) = line[from..].find("docs/") {
                let at = from + pos;
                from = at + "docs/".len();
                let before = &line[..at];
                if before.chars().next_back().is_some_and(is_name_char) {
                    continue; // another folder whose name ends in `docs`
                }
                if before.ends_with('/') {
                    continue; // a deeper path such as `shared/docs/`, reported elsewhere
                }
                let name: String = line[from..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    .collect();
                let name = name.trim_end_matches('.');
                if name.ends_with(".md") {
                    out.push((rel.clone(), n + 1, name.to_string()));
                }
            }
        }
    }
    out
}

#[test]
fn every_docs_file_the_tree_mentions_exists() {
    let root = repo_root();
    let mentioned = docs_paths_mentioned();
    let missing: Vec<String> = mentioned
        .iter()
        .filter(|(_, _, name)| !root.join("docs").join(name).is_file())
        .map(|(rel, line, name)| format!("{rel}:{line}: docs/{name}"))
        .collect();
    assert!(
        missing.is_empty(),
        "{} mention(s) of docs/ files that do not exist:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn the_scanner_tells_outside_references_from_docs_paths() {
    let root = repo_root();
    let arch = format!("{}.md", outside_word());
    let api = format!("{}.md", "management-api");
    let shared = format!("..{}shared{}docs", '/', '/');
    let hits = |line: &str| outside_refs_in_line(line, false, &root).len();
    assert_eq!(hits(&format!("the command line of {arch} (CLI)")), 1);
    assert_eq!(hits(&format!("({api} \u{a7}3.4)")), 2);
    assert_eq!(hits(&format!("see {shared}/x")), 1);
    assert_eq!(hits(&format!("see {shared}/{api}")), 2);
    assert_eq!(hits("see docs/management-api.md (Paging)"), 0);
    assert_eq!(hits("see docs/architecture.md (CLI)"), 0);
    assert_eq!(hits("queries/README.md and my-devo.md"), 0);
    let word = ["ARCHITECT", "URE"].concat();
    assert_eq!(hits(&format!("the JSON line of {word} \u{a7}7")), 2);
    assert_eq!(hits("the quirks of \u{a7}4.6"), 1);
    assert_eq!(hits("each form-urlencoded (RFC 6749 \u{a7}2.3.1)"), 0);
    assert_eq!(hits("the \u{a7} sign alone"), 0);
}
