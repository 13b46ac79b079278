//! The composition root: one file per command puts config, store, detections, the LINQ
//! evaluator and the UI together. `cli` only parses flags and dispatches here; nothing
//! below `app` imports it.

pub mod linq;
