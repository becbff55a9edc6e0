//! The probes' bodies (PROTOCOL.md section 9): `/healthz` and `/readyz`, and the GraphQL
//! request envelope `POST /graphql` takes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `GET /healthz` response: the process is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    /// `ok`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^ok$"))]
    pub status: String,
}

impl Liveness {
    pub fn ok() -> Self {
        Self { status: "ok".to_owned() }
    }
}

/// `GET /readyz` response when the database answers and its migrations are current (a 503
/// with the error code `migrations_pending` or `unavailable` otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Readiness {
    /// `ready`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^ready$"))]
    pub status: String,
    /// `sqlite` or `postgres`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(sqlite|postgres)$"))]
    pub database: String,
}

impl Readiness {
    pub fn ready(database: impl Into<String>) -> Self {
        Self { status: "ready".to_owned(), database: database.into() }
    }
}

/// A GraphQL request (`POST /graphql`), as GraphQL over HTTP defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GraphqlRequest {
    /// The GraphQL document.
    pub query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_name: Option<String>,
    /// The variables, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub variables: Option<Map<String, Value>>,
    /// Protocol extensions, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub extensions: Option<Map<String, Value>>,
}
