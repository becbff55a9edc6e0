//! sync-client against a real in-process server (sync-api over sync-domain, axum on a local
//! port) on SQLite and PostgreSQL: offline edits, crashes, conflicts by every policy, deltas,
//! `resync_required`, rate limits and the live fallback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod scenarios;
