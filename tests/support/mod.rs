//! Helpers shared by the UI tests: a fake backend and the headless Chromium harness.
#![allow(dead_code)]

pub mod chromium;
pub mod fake;
pub mod groups;
