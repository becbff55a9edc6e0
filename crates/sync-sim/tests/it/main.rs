//! sync-sim's own parts, without a server. The scenarios against a real server on both
//! backends, and the broken servers the invariants must catch, are in `crates/sync-sim-tests`
//! (a crate of its own, so that sync-sim's tree never holds the server's crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod units;
