//! The composition root: one file per command puts config, store, collector, detections,
//! importer, exporter and UI together. `cli` only parses flags and calls in here.

pub mod export;
pub mod import;
