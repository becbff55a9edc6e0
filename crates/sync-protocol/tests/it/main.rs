//! Integration tests of the wire types: serde laws and the OpenAPI schemas' constraints.

mod limits;
#[cfg(feature = "openapi")]
mod schemas;
mod wire;
