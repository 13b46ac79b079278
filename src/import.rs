//! Offline import of audit exports (JSON, JSONL, Purview CSV, .gz) into the store.
//! Must not talk to Microsoft.
