//! Detections written in jq: loading `queries/*.jq`, compiling once with jaq, running per
//! record (issue #4). Must not touch SQLite or the network.
//!
//! INTERIM: this file only fixes the interface the store codes against; the real engine
//! replaces the bodies (issue #4) without changing these signatures.

use crate::model::RecordHeader;
use serde::Serialize;

/// Values bound to `$collector_id` and `$tenant_id` in every detection.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub collector_id: String,
    pub tenant_id: String,
}

/// One output of one detection on one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The detection id (file stem of `queries/<id>.jq`).
    pub detection: String,
    /// The value the filter emitted.
    pub details: serde_json::Value,
    /// The `group_by` key of this hit as a JSON object (empty object without group_by).
    pub group_key: serde_json::Value,
}

/// A detection that failed on one record (limit hit, runtime error); ingestion goes on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunError {
    pub detection: String,
    pub message: String,
}

/// Every loaded detection, compiled once; shared read-only (Send + Sync).
#[derive(Debug, Default)]
pub struct Detections {}

impl Detections {
    /// No detections at all (tests of the store that do not care about hits).
    pub fn empty() -> Detections {
        Detections {}
    }

    /// Runs every detection whose table matches the record; returns its hits and the
    /// detections that failed on it.
    pub fn run(
        &self,
        _header: &RecordHeader,
        _raw: &serde_json::Value,
    ) -> (Vec<Hit>, Vec<RunError>) {
        (Vec::new(), Vec::new())
    }
}
