//! The composition root: one file per command puts config, store, collector, detections,
//! forwarder, UI and simulator together. `cli` parses flags and calls one function here.

pub mod forward;
