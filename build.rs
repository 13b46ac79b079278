//! Embeds `queries/*.jq` and `queries/lib/*.jq` into the binary so the detections work from
//! any working directory. Writes `$OUT_DIR/embedded_queries.rs`; reads nothing else.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn jq_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "jq"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let queries = root.join("queries");
    println!("cargo:rerun-if-changed=queries");
    println!("cargo:rerun-if-changed=queries/lib");
    let mut out = String::new();
    for (name, dir) in [
        ("EMBEDDED_QUERIES", queries.clone()),
        ("EMBEDDED_LIBS", queries.join("lib")),
    ] {
        writeln!(out, "pub(crate) static {name}: &[(&str, &str)] = &[").expect("write");
        for f in jq_files(&dir) {
            let file_name = f
                .file_name()
                .and_then(|s| s.to_str())
                .expect("utf-8 file name");
            // The path is spelled from CARGO_MANIFEST_DIR when the crate compiles, not
            // when this script ran: a target directory shared by two checkouts must
            // never embed the other checkout's files.
            let rel = f
                .strip_prefix(&root)
                .expect("query file under the manifest dir")
                .to_str()
                .expect("utf-8 path")
                .replace('\\', "/");
            writeln!(
                out,
                "    ({file_name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {:?}))),",
                format!("/{rel}")
            )
            .expect("write");
        }
        writeln!(out, "];").expect("write");
    }
    let dest =
        PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_queries.rs");
    std::fs::write(dest, out).expect("write embedded_queries.rs");
}
