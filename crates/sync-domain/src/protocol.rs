//! The transport-neutral request and response types of PROTOCOL.md sections 3 to 7.
//!
//! They live in the `sync-protocol` crate (serde only, no IO) and are re-exported here, so
//! `sync_domain::protocol::PushRequest` and `sync_protocol::PushRequest` are one type. REST and
//! GraphQL both read their input into these types and write these types out, so the same input
//! gives the same outcome on either. Unknown fields are refused.

pub use sync_protocol::*;
