//! Integration tests of sync-client: the core against a model server (properties), the SQLite
//! store across restarts, and the HTTP driver against small fake servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod driver;
mod model;
mod outcomes;
mod properties;
mod store;
