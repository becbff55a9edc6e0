//! Integration tests of the storage layer; every persistence test runs on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod concurrency;
mod engine;
mod migrations;
mod other_tables;
mod properties;
mod records;
mod schema_invariants;
mod tenants;
