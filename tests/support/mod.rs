//! Helpers shared by the UI tests: a fake backend, the headless Chromium harness and a
//! DevTools session for tests that click through pages.
#![allow(dead_code)]

pub mod cdp;
pub mod chromium;
pub mod fake;
pub mod groups;
pub mod ui_url;
