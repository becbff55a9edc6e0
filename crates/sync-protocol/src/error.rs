//! The error body of every failed request (PROTOCOL.md section 9).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The wire shape of an error: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// `error` of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// snake_case error code, e.g. `invalid_json`, `unauthorized`, `idempotency_key_reused`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z][a-z0-9_]*$", example = "invalid_request"))]
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
    /// Structured details (for example `{"path": "changes[0].op"}` for an invalid field), or
    /// `null` when there are none: always an object or `null`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>, required = true))]
    pub details: Value,
}

impl ErrorBody {
    /// An error body without details.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code: code.into(), message: message.into(), details: Value::Null } }
    }
}
