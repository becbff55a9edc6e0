//! `ApiError`: every way a request fails, and how it looks on the wire.
//!
//! Policy: every failure answers with the protocol's body
//! `{"error": {"code": "snake_case", "message": "…", "details": …}}` and the status of
//! PROTOCOL.md section 9. Bad input is always a 4xx: anything a client can send is classified
//! before it reaches the engine, and the engine's own input errors map to 4xx too. An engine
//! error keeps its own code and status ([`sync_domain::Error::code`] and
//! [`sync_domain::Error::http_status`] are the one source of both; this module only carries
//! them to the wire). Only a database that cannot be reached (503, with `Retry-After`) and
//! genuine server faults (500) are 5xx, and only those are logged (at `warn` and `error`): a
//! 4xx is the client's business and is visible in the request trace. Too many requests are
//! 429 with `Retry-After` too.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sync_bandwidth::BandwidthError;

/// Seconds a client should wait before retrying when the database is unreachable.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Result alias for this crate.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Every failure of an API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed JSON, wrong types, unknown fields, invalid parameters.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String, details: Option<Value> },
    /// 401: no token, or one that is unknown, revoked or expired.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the token's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such route or record (another tenant's record is reported this way too).
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408: the request body did not arrive in time (the server's body read timeout).
    #[error("{0}")]
    RequestTimeout(String),
    /// 413: body, decoded body or change count over the limits.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: a `Content-Encoding` the server cannot decode.
    #[error("{0}")]
    UnsupportedEncoding(String),
    /// 422: well-formed but semantically refused.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 429: over the token's request budget or the tenant's concurrent pushes; retry after
    /// `retry_after_secs`.
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    /// The engine's error, with the code and status it carries.
    #[error(transparent)]
    Engine(#[from] sync_domain::Error),
    /// 500: a fault of the server.
    #[error("internal error: {0}")]
    Internal(String),
    /// 500: a response could not be written as JSON, or a body the server made itself (a
    /// stored push response, a pull page) could not be read back.
    #[error("internal error: {what}: {source}")]
    Json { what: &'static str, source: serde_json::Error },
    /// 500: compressing a response failed.
    #[error("internal error: compressing a response: {0}")]
    Compression(#[source] BandwidthError),
}

// The wire shape of an error lives in sync-protocol (with its OpenAPI schema).
pub use sync_protocol::{ErrorBody, ErrorDetail};

impl ApiError {
    /// A 400 with a code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into(), details: None }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Engine(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ApiError::Internal(_) | ApiError::Json { .. } | ApiError::Compression(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The protocol's snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } | ApiError::Unprocessable { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedEncoding(_) => "unsupported_encoding",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Engine(e) => e.code(),
            ApiError::Internal(_) | ApiError::Json { .. } | ApiError::Compression(_) => "internal",
        }
    }

    /// The body sent to the client. A 500 does not leak its cause.
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            ApiError::Internal(_) | ApiError::Json { .. } | ApiError::Compression(_) => {
                "internal server error".to_owned()
            }
            ApiError::Engine(e) => e.public_message(),
            other => other.to_string(),
        };
        let details = match self {
            ApiError::BadRequest { details: Some(details), .. } => details.clone(),
            _ => Value::Null,
        };
        ErrorBody { error: ErrorDetail { code: self.code().to_owned(), message, details } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            if status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(cause = %self, "database unavailable");
            } else {
                tracing::error!(cause = %self, "request failed");
            }
        }
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let ApiError::RateLimited { retry_after_secs, .. } = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<BandwidthError> for ApiError {
    fn from(e: BandwidthError) -> Self {
        match e {
            BandwidthError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
            BandwidthError::UnsupportedEncoding(_) => ApiError::UnsupportedEncoding(e.to_string()),
            BandwidthError::Corrupt { .. } => ApiError::bad_request("malformed_body", e.to_string()),
            other => ApiError::Compression(other),
        }
    }
}

impl ApiError {
    /// A JSON failure of `what` (see [`ApiError::Json`]).
    pub fn json(what: &'static str) -> impl FnOnce(serde_json::Error) -> ApiError {
        move |source| ApiError::Json { what, source }
    }
}
