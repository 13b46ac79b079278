//! The analyst's web UI: axum router, askama pages, security headers (issue #5).
//! The only module that knows HTML and HTTP status codes of its own pages.
