//! The [`Backend`](super::Backend) of the real appliance, over the store's read API.
//! Must not write and must not run SQL itself (only `store` does).
