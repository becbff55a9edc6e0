//! One operation interface for syncforge, and its REST (axum) and GraphQL (async-graphql) adapters.
#![doc = include_str!("../README.md")]

pub mod auth;
pub mod console;
pub mod cors;
pub mod error;
pub mod graphql;
pub mod http;
pub mod limits;
pub mod live;
pub mod openapi;
pub mod operation;
pub mod rest;
pub mod router;
pub mod webhooks;

pub use auth::{Authenticator, Claims};
pub use error::{ApiError, ErrorBody, ErrorDetail, Result};
pub use limits::{Limiter, LimitsConfig, Rate};
pub use operation::{
    ApiOptions, EncodedBody, OperationOutput, OperationRequest, RequestMetrics, SyncApi, SyncOperation,
    Transport,
};
pub use router::router;
