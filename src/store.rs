//! The only owner of SQLite and tantivy (issue #3): one writer thread, read-only
//! connections. Nothing else in the crate writes SQL or touches the index.
