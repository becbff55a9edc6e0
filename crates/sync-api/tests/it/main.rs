//! Integration tests of sync-api: every endpoint through `Router::oneshot`, the bad-input
//! table, REST/GraphQL parity and the OpenAPI and GraphQL schema snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod common;
mod console;
mod endpoints;
mod insight;
mod isolation;
mod laws;
mod layers;
mod limits;
mod live;
mod openapi;
mod parity;
mod schema;
