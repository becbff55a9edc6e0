//! Integration tests of sync-model: serde round-trips, parse/display laws, migrations, the derive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod derive;
mod migration;
mod types;
