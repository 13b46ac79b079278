//! The collector: per content type, subscriptions, windows, pages and blob fetches from the
//! Management Activity API into the store (issue #3). Must not write SQL or render HTML.
