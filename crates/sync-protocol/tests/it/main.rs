//! Integration tests of the wire types: serde laws and the OpenAPI schemas' constraints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod limits;
#[cfg(feature = "openapi")]
mod schemas;
mod wire;
