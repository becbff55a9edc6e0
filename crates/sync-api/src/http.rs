//! HTTP helpers every transport shares: the authenticated [`Caller`], bounded and decoded
//! request bodies, strict JSON and query parsing with the protocol's error codes, and JSON
//! responses. REST, GraphQL, the live transports and the console use them; this module uses
//! none of them.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sync_bandwidth::Encoding;
use sync_domain::engine::WireBytes;
use sync_domain::store::Principal;

use crate::error::{ApiError, Result};
use crate::operation::{EncodedBody, OperationRequest, RequestMetrics, SyncApi, SyncOperation, Transport};

/// The authenticated caller and the request's context headers.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub idempotency_key: Option<String>,
    pub network_quality: Option<String>,
    pub accept_gzip: bool,
    pub metrics: RequestMetrics,
}

impl Caller {
    /// The operation of this caller with `request`, arriving through `transport`.
    pub fn into_operation(self, transport: Transport, request: OperationRequest) -> SyncOperation {
        SyncOperation {
            principal: self.principal,
            idempotency_key: self.idempotency_key,
            network_quality: self.network_quality,
            accept_gzip: self.accept_gzip,
            transport,
            request,
            metrics: self.metrics,
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str, code: &'static str) -> Result<Option<&'a str>> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| ApiError::bad_request(code, format!("{name} must be visible ASCII"))))
        .transpose()
}

/// Whether `Accept-Encoding` allows gzip.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
    Encoding::negotiate(accept) == Encoding::Gzip
}

impl FromRequestParts<SyncApi> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &SyncApi) -> Result<Self> {
        let metrics = parts.extensions.get::<RequestMetrics>().cloned().unwrap_or_default();
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map_err(|_| ApiError::Unauthorized("invalid Authorization header".into())))
            .transpose()?;
        let principal = api.authenticate(authorization).await?;
        metrics.set_principal(&principal);
        if let Some(device_id) = query_device_id(parts.uri.query()) {
            metrics.note_device(&device_id);
        }
        api.admit(&principal, authorization.unwrap_or_default())?;
        let idempotency_key =
            header_str(&parts.headers, "idempotency-key", "invalid_idempotency_key")?.map(str::to_owned);
        let network_quality =
            header_str(&parts.headers, "x-network-quality", "invalid_network_quality")?.map(str::to_owned);
        metrics.note_network(network_quality.as_deref());
        Ok(Caller {
            principal,
            idempotency_key,
            network_quality,
            accept_gzip: accepts_gzip(&parts.headers),
            metrics,
        })
    }
}

/// The `device_id` of a query string, if it has one.
fn query_device_id(query: Option<&str>) -> Option<String> {
    #[derive(Deserialize)]
    struct DeviceOnly {
        device_id: Option<String>,
    }
    serde_urlencoded::from_str::<DeviceOnly>(query?).ok()?.device_id
}

/// The top-level `device_id` of a JSON object, read up to the first thing wrong with the rest
/// (a syntax error, a wrong type, the end of a body cut at the size limit): which device a
/// refused request came from.
pub fn device_id_in(json: &[u8]) -> Option<String> {
    use serde::Deserializer as _;
    use serde::de::{IgnoredAny, MapAccess, Visitor};

    struct Scan<'a>(&'a mut Option<String>);
    impl<'de> Visitor<'de> for Scan<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "device_id" {
                    *self.0 = Some(map.next_value::<String>()?);
                    return Ok(());
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut found = None;
    let _ = serde_json::Deserializer::from_slice(json).deserialize_map(Scan(&mut found));
    found
}

/// When a request's body must have arrived: a request extension set by the server that accepted
/// the connection (its body read timeout, counted from the end of the headers). Past it,
/// [`read_body`] gives up with 408 `request_timeout`. Without it a body may take any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDeadline(pub tokio::time::Instant);

/// Reads a request body: at most `max_body_bytes` on the wire and after decoding its
/// `Content-Encoding` (gzip; anything else is 415), and before the request's [`BodyDeadline`]
/// if it has one (408 otherwise). Its sizes, and on a refusal the device it names, are noted in
/// the request's [`RequestMetrics`].
pub async fn read_body(api: &SyncApi, request: Request) -> Result<Vec<u8>> {
    let limit = api.engine().config().max_body_bytes;
    let (parts, body) = request.into_parts();
    let metrics = parts.extensions.get::<RequestMetrics>().cloned().unwrap_or_default();
    let content_encoding = header_str(&parts.headers, "content-encoding", "invalid_content_encoding")?;
    // Refuse an unknown coding before reading a byte of the body.
    let encoding = Encoding::from_content_encoding(content_encoding)?;
    let read = read_bounded(body, limit);
    let read = match parts.extensions.get::<BodyDeadline>() {
        Some(BodyDeadline(deadline)) => match tokio::time::timeout_at(*deadline, read).await {
            Ok(read) => read,
            Err(_) => {
                return Err(ApiError::RequestTimeout("the request body did not arrive in time".to_owned()));
            }
        },
        None => read.await,
    };
    let raw = match read {
        Ok(raw) => raw,
        Err(BodyError::TooLarge(prefix)) => {
            if encoding == Encoding::Identity
                && let Some(device_id) = device_id_in(&prefix)
            {
                metrics.note_device(&device_id);
            }
            metrics.note_body(WireBytes { raw: prefix.len() as u64, sent: prefix.len() as u64 });
            return Err(ApiError::PayloadTooLarge(format!("the request body exceeds {limit} bytes")));
        }
        Err(BodyError::Read(e)) => {
            return Err(ApiError::bad_request(
                "malformed_body",
                format!("could not read the request body: {e}"),
            ));
        }
    };
    let sent = raw.len() as u64;
    metrics.note_body(WireBytes { raw: sent, sent });
    let decoded = sync_bandwidth::decompress(&raw, encoding, limit)?;
    metrics.note_body(WireBytes { raw: decoded.len() as u64, sent });
    Ok(decoded.into_owned())
}

enum BodyError {
    /// Over the limit: the first `limit` bytes.
    TooLarge(Vec<u8>),
    Read(axum::Error),
}

/// Reads at most `limit` bytes of `body`, keeping what was read when it is longer.
async fn read_bounded(body: axum::body::Body, limit: usize) -> std::result::Result<Vec<u8>, BodyError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyError::Read)?.into_data() else { continue };
        if buf.len() + data.len() > limit {
            buf.extend_from_slice(&data[..limit - buf.len()]);
            return Err(BodyError::TooLarge(buf));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// Parses a request body into `T`, naming the offending field of a refusal.
///
/// Every body of the protocol is a JSON object (or `null` where a body is optional): a
/// top-level array is refused, although serde would read a struct from one. A number with a
/// zero fraction (`3.0`) is an integer to JSON Schema, and so to the OpenAPI document: where
/// an integer field refuses one, the body is read again with such numbers as integers.
///
/// A body with more than [`MAX_JSON_TOKENS`] structural characters is refused (413) before it
/// is parsed; serde_json's recursion limit (128) refuses deeper nesting (400).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::bad_request("invalid_request", "the request body must be a JSON object"));
    }
    if json_tokens_exceed(bytes, MAX_JSON_TOKENS) {
        return Err(ApiError::PayloadTooLarge(format!(
            "the request body holds more than {MAX_JSON_TOKENS} JSON values and members"
        )));
    }
    let first = match parse_exact(bytes) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Err(first);
    };
    if !integral_floats_to_integers(&mut value) {
        return Err(first);
    }
    serde_path_to_error::deserialize(value).map_err(|_| first)
}

/// Most structural characters (`{`, `[`, `,` and `:` outside strings) a JSON body may hold:
/// roughly one per array element and two per object member. A parsed value costs 50 to 200
/// bytes of memory, so without a bound 8 MiB of `[0,0,0,…]` (4 million values) or of
/// `{"a":0,"b":0,…}` would take hundreds of MiB for one request; with it, a body's values take
/// some tens of MiB at most. A push of 500 changes may still hold about 500 values per change.
pub const MAX_JSON_TOKENS: usize = 1 << 18;

/// Whether `bytes` holds more than `limit` structural characters outside strings (a scan that
/// allocates nothing; the JSON need not be valid).
fn json_tokens_exceed(bytes: &[u8], limit: usize) -> bool {
    let mut count = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if byte == b'"' {
            in_string = true;
        } else if matches!(byte, b'{' | b'[' | b',' | b':') {
            count += 1;
            if count > limit {
                return true;
            }
        }
    }
    false
}

fn parse_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| json_error(&e))?;
    deserializer.end().map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON: {e}")))?;
    Ok(value)
}

/// Turns every exact float with a zero fraction into that integer; whether any was.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) => match n.as_f64() {
            // Only where the float is exact (|f| ≤ 2^53): a larger one may be a rounded integer
            // out of range, which must stay refused.
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() <= 2f64.powi(53) => {
                #[allow(clippy::cast_possible_truncation)]
                let integer = f as i64;
                *value = Value::from(integer);
                true
            }
            _ => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |any, v| integral_floats_to_integers(v) | any),
        Value::Object(map) => map.values_mut().fold(false, |any, v| integral_floats_to_integers(v) | any),
        _ => false,
    }
}

fn json_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.inner();
    if inner.is_data() {
        ApiError::BadRequest {
            code: "invalid_request",
            message: if path == "." { inner.to_string() } else { format!("{path}: {inner}") },
            details: Some(serde_json::json!({ "path": path })),
        }
    } else {
        ApiError::bad_request("invalid_json", format!("invalid JSON: {inner}"))
    }
}

/// A JSON request body, decoded and bounded (see [`read_body`]).
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<SyncApi> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &SyncApi) -> Result<Self> {
        let metrics = request.extensions().get::<RequestMetrics>().cloned().unwrap_or_default();
        let bytes = read_body(api, request).await?;
        parse_json(&bytes).map(JsonBody).inspect_err(|_| {
            if let Some(device_id) = device_id_in(&bytes) {
                metrics.note_device(&device_id);
            }
        })
    }
}

/// Query parameters; unknown ones are refused.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|e| ApiError::bad_request("invalid_query", format!("invalid query parameters: {e}")))
    }
}

/// Writes an encoded JSON body with its headers.
pub(crate) fn json_response(status: StatusCode, body: EncodedBody) -> Response {
    let mut response = (status, body.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(encoding) = body.content_encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_characters_are_counted_outside_strings_only() {
        assert!(!json_tokens_exceed(br#"{"a":[1,2]}"#, 4));
        assert!(json_tokens_exceed(br#"{"a":[1,2,3]}"#, 4));
        // Inside strings, escaped quotes included, nothing counts.
        assert!(!json_tokens_exceed(br#"{"a":"[,,,:\"{{{,"}"#, 2));
        assert!(!json_tokens_exceed(br#"{"a\\":"b"}"#, 2));
    }

    #[test]
    fn a_very_wide_body_is_413_before_parsing() {
        let mut wide = b"{\"device_id\":\"d\",\"changes\":[".to_vec();
        wide.extend(std::iter::repeat_n(b"0,".as_slice(), MAX_JSON_TOKENS).flatten());
        wide.extend_from_slice(b"0]}");
        let refused = parse_json::<sync_domain::protocol::PushRequest>(&wide).err().map(|e| e.status());
        assert_eq!(refused, Some(StatusCode::PAYLOAD_TOO_LARGE));
        let deep = format!(
            "{{\"device_id\":\"d\",\"changes\":[{{\"domain\":\"task\",\"data\":{}{}}}]}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let refused =
            parse_json::<sync_domain::protocol::PushRequest>(deep.as_bytes()).err().map(|e| e.code());
        assert_eq!(refused, Some("invalid_json"));
    }
}
