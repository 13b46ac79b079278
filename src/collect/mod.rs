//! The collector (owned by helper B; this stub only lets the `api` branch compile alone).
pub mod api;
pub mod auth;
