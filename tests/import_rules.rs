//! The layout's import rule, checked over `src/`: each top-level module may import only the
//! modules its row of [`ALLOWED`] names, so the arrows
//! `model/config ← detect/linq ← store ← collect/import/forward/ui ← app ← cli/main` point one
//! way and the module graph has no cycle. A forbidden import fails with its file, line and
//! path.
//!
//! What counts as an import of module `m`: a path `crate::m…` (in `use` or in an
//! expression), each `m` of `use crate::{m, …}`, `super::m` where the `super`s climb to the
//! crate root, and in `main.rs` (the binary) `m365audit::m`. Comments and string literals are
//! ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every top-level module and the modules it may import. Modules that do not exist yet
/// (`forward`) have their place already. `linq` sits beside `detect` and reuses its jaq
/// engine for `jqeval(jqcompile(…))`.
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("config", &["model"]),
    ("detect", &["model", "config"]),
    ("linq", &["model", "config", "detect"]),
    ("store", &["model", "config", "detect", "linq"]),
    ("collect", &["store", "detect", "linq", "model", "config"]),
    ("import", &["store", "detect", "linq", "model", "config"]),
    // the record formats of `export`, shared by the command and the UI's downloads
    ("export", &["store", "detect", "linq", "model", "config"]),
    ("forward", &["store", "detect", "linq", "model", "config"]),
    // the UI never knows the collector or the simulator
    (
        "ui",
        &["store", "detect", "linq", "model", "config", "export"],
    ),
    // the practice tenant shares the vocabulary only
    ("simulate", &["model"]),
    (
        "app",
        &[
            "model", "config", "detect", "linq", "store", "collect", "import", "export", "forward",
            "ui", "simulate",
        ],
    ),
    ("cli", &["app", "model"]),
    ("main", &["cli", "alloc"]),
    ("lib", &[]),
    ("alloc", &[]),
    ("corpus", &[]),
];

/// Items of the crate root every module may use: the usage and unavailable errors, the TLS
/// provider set-up, the allocator's hold (`alloc`) and the synthetic record corpus (`corpus`).
const ANYONE: &[&str] = &[
    "UsageError",
    "Unavailable",
    "install_crypto_provider",
    "alloc",
    "corpus",
];

/// One import found in a file.
#[derive(Debug, Clone, PartialEq)]
struct Import {
    line: usize,
    /// The top-level module (or root item) imported.
    target: String,
    /// The path as written, for the message.
    text: String,
}

/// The top-level module a file belongs to and its depth in the module tree
/// (`src/a.rs`, `src/a/mod.rs`: 1; `src/a/b.rs`: 2; `src/lib.rs`, `src/main.rs`: 0).
fn module_of(rel: &str) -> (String, usize) {
    let rel = rel.trim_start_matches("src/");
    let parts: Vec<&str> = rel.split('/').collect();
    let top = parts[0].trim_end_matches(".rs").to_string();
    if parts.len() == 1 && (top == "lib" || top == "main") {
        return (top, 0);
    }
    let last = parts[parts.len() - 1];
    let depth = if last == "mod.rs" {
        parts.len() - 1
    } else {
        parts.len()
    };
    (top, depth)
}

/// The text with comments and the contents of string and char literals blanked (newlines
/// kept, so offsets still give line numbers).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let blank = |c: u8| if c == b'\n' { b'\n' } else { b' ' };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend([b' ', b' ']);
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend([b' ', b' ']);
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if (c == b'r' || (c == b'b' && b.get(i + 1) == Some(&b'r')))
            && !prev_is_ident(b, i)
            && raw_string_start(b, i).is_some()
        {
            let (open_len, hashes) = raw_string_start(b, i).unwrap_or((0, 0));
            out.extend(std::iter::repeat_n(b' ', open_len));
            i += open_len;
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == b'"' && (1..=hashes).all(|k| b.get(i + k) == Some(&b'#')) {
                    out.extend(std::iter::repeat_n(b' ', hashes + 1));
                    i += hashes + 1;
                    break;
                }
                out.push(blank(b[i]));
                i += 1;
            }
        } else if c == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    out.push(b' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if c == b'\'' {
            // a char literal ('x', '\n', '\u{..}') or a lifetime ('a)
            let end = if b.get(i + 1) == Some(&b'\\') {
                (i + 3..b.len().min(i + 12)).find(|&k| b[k] == b'\'')
            } else {
                let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch_len) == Some(&b'\'')).then_some(i + 1 + ch_len)
            };
            match end {
                Some(e) => {
                    out.extend(std::iter::repeat_n(b' ', e + 1 - i));
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    // blanking only replaced whole UTF-8 sequences' bytes inside literals and comments by
    // spaces; what is left of multi-byte text is valid or replaced
    String::from_utf8_lossy(&out).into_owned()
}

fn prev_is_ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// `r"`, `r#"`, `br##"`…: the opening's length and its number of `#`.
fn raw_string_start(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut k = i + if b[i] == b'b' { 2 } else { 1 };
    let mut hashes = 0;
    while b.get(k) == Some(&b'#') {
        hashes += 1;
        k += 1;
    }
    (b.get(k) == Some(&b'"')).then_some((k + 1 - i, hashes))
}

fn ident_at(s: &str, at: usize) -> &str {
    let end = s[at..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(s.len(), |e| at + e);
    &s[at..end]
}

fn line_of(s: &str, at: usize) -> usize {
    s[..at].bytes().filter(|&c| c == b'\n').count() + 1
}

/// The inline modules of a file (`mod tests { … }`) as byte ranges, so `super::` inside
/// them climbs one level less.
fn inline_mods(code: &str) -> Vec<(usize, usize)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(p) = code[at..].find("mod ") {
        let start = at + p;
        at = start + 4;
        if prev_is_ident(b, start) {
            continue;
        }
        let name = ident_at(code, start + 4);
        let after = start + 4 + name.len();
        let rest = code[after..].trim_start();
        if name.is_empty() || !rest.starts_with('{') {
            continue;
        }
        let open = after + (code[after..].len() - rest.len());
        let mut depth = 0usize;
        let mut end = code.len();
        for (k, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push((open, end));
    }
    out
}

/// Every import of another top-level module (or root item) in one file.
fn imports(rel: &str, src: &str) -> Vec<Import> {
    let code = code_only(src);
    let (top, depth) = module_of(rel);
    let mods = inline_mods(&code);
    let mut out = Vec::new();
    let mut push = |at: usize, target: &str, text: String| {
        if !target.is_empty() && target != top {
            out.push(Import {
                line: line_of(&code, at),
                target: target.to_string(),
                text,
            });
        }
    };
    let roots: &[&str] = if top == "main" {
        &["crate::", "m365audit::"]
    } else {
        &["crate::"]
    };
    for root in roots {
        let mut at = 0;
        while let Some(p) = code[at..].find(root) {
            let start = at + p;
            at = start + root.len();
            if prev_is_ident(code.as_bytes(), start) || code[..start].ends_with("::") {
                continue;
            }
            let rest = &code[at..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a, b::c, d::{e, f}}`: the first name of each top-level item
                let mut depth = 0;
                let mut item_start = true;
                for (k, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if item_start && (c.is_ascii_alphabetic() || c == '_') => {
                            item_start = false;
                            let name = ident_at(group, k);
                            let pos = at + 1 + k;
                            push(pos, name, format!("{root}{{{name}…}}"));
                        }
                        _ => {}
                    }
                }
            } else {
                let name = ident_at(code.as_str(), at);
                let path_end = code[at..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .map_or(code.len(), |e| at + e);
                push(
                    start,
                    name,
                    code[start..path_end].trim_end_matches(':').to_string(),
                );
            }
        }
    }
    let mut at = 0;
    while let Some(p) = code[at..].find("super::") {
        let start = at + p;
        at = start + 7;
        if prev_is_ident(code.as_bytes(), start) || code[..start].ends_with("::") {
            continue;
        }
        let mut climbs = 1;
        let mut k = at;
        while code[k..].starts_with("super::") {
            climbs += 1;
            k += 7;
        }
        at = k;
        let here = depth
            + mods
                .iter()
                .filter(|(s, e)| *s < start && start < *e)
                .count();
        if climbs >= here {
            let name = ident_at(&code, k);
            if name == "*" || name.is_empty() {
                continue;
            }
            let path_end = code[k..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| k + e);
            push(
                start,
                name,
                code[start..path_end].trim_end_matches(':').to_string(),
            );
        }
    }
    out
}

/// The imports of `rel` that its row of [`ALLOWED`] does not permit, as messages.
fn violations(rel: &str, src: &str) -> Vec<String> {
    let (top, _) = module_of(rel);
    let table: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let Some(allowed) = table.get(top.as_str()) else {
        return vec![format!(
            "{rel}: module `{top}` has no row in the table of allowed imports (tests/import_rules.rs); add one that follows the arrows"
        )];
    };
    imports(rel, src)
        .into_iter()
        .filter(|i| !allowed.contains(&i.target.as_str()) && !ANYONE.contains(&i.target.as_str()))
        .map(|i| {
            format!(
                "{rel}:{}: `{}` — module `{top}` must not import `{}` (it may import: {})",
                i.line,
                i.text,
                i.target,
                if allowed.is_empty() {
                    "nothing".to_string()
                } else {
                    allowed.join(", ")
                }
            )
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A cycle in a graph of module → imported modules, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut c = stack[from..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str()) {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn every_module_imports_only_what_the_arrows_allow() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(
        files.len() > 20,
        "found only {} files under src/",
        files.len()
    );
    let mut bad = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel = f
            .strip_prefix(root)
            .unwrap_or(f)
            .to_string_lossy()
            .replace('\\', "/");
        let src = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("reading {rel}: {e}"));
        bad.extend(violations(&rel, &src));
        let (top, _) = module_of(&rel);
        let edges = graph.entry(top).or_default();
        for i in imports(&rel, &src) {
            if !ANYONE.contains(&i.target.as_str()) {
                edges.insert(i.target);
            }
        }
    }
    assert!(
        bad.is_empty(),
        "forbidden imports (the arrows are model/config ← detect/linq ← store ← collect/import/forward/ui ← app ← cli/main):\n  {}",
        bad.join("\n  ")
    );
    if let Some(c) = find_cycle(&graph) {
        panic!(
            "the modules import each other in a cycle: {}",
            c.join(" → ")
        );
    }
}

#[test]
fn the_table_itself_has_no_cycle_and_only_main_may_import_cli() {
    let graph: BTreeMap<String, BTreeSet<String>> = ALLOWED
        .iter()
        .map(|(m, deps)| (m.to_string(), deps.iter().map(|d| d.to_string()).collect()))
        .collect();
    assert_eq!(find_cycle(&graph), None);
    let importers: Vec<&str> = ALLOWED
        .iter()
        .filter(|(_, deps)| deps.contains(&"cli"))
        .map(|(m, _)| *m)
        .collect();
    assert_eq!(importers, vec!["main"]);
}

#[test]
fn a_forbidden_import_is_named_with_its_file_and_line() {
    let src = "//! the UI\nuse crate::store::Store;\nuse crate::collect::run;\n";
    let v = violations("src/ui/pages.rs", src);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].starts_with("src/ui/pages.rs:3: `crate::collect::run`"),
        "{v:?}"
    );
    assert!(v[0].contains("must not import `collect`"), "{v:?}");
    // grouped, in an expression, climbing out with super, from the binary
    let v = violations(
        "src/simulate/mod.rs",
        "use crate::{model::ContentType,\n  store::Store};\nfn f() { super::cli::run(); }\n",
    );
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].starts_with("src/simulate/mod.rs:2:"), "{v:?}");
    assert!(v[1].contains("`super::cli::run`"), "{v:?}");
    let v = violations(
        "src/main.rs",
        "fn main() { m365audit::store::Store::open(); }",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    // a module missing from the table is refused too
    assert!(violations("src/newthing.rs", "")[0].contains("no row"));
}

#[test]
fn comments_strings_and_inner_modules_are_not_imports() {
    let src = r##"
//! see crate::collect
/// and crate::simulate
fn f() -> &'static str { let _c = '{'; "crate::cli is text" }
const R: &str = r#"crate::store "{"#;
#[cfg(test)]
mod tests {
    use super::*;
    use super::f;
}
"##;
    assert_eq!(imports("src/model.rs", src), vec![]);
    // but in a top-level module file, super:: leaves the module
    let v = imports("src/model.rs", "use super::store::Store;");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].target, "store");
    // and a cycle is found
    let g: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .iter()
        .map(|(x, y)| (x.to_string(), [y.to_string()].into()))
        .collect();
    assert_eq!(
        find_cycle(&g).map(|c| c.join(">")),
        Some("a>b>c>a".to_string())
    );
}
