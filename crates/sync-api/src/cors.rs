//! CORS for browser apps on other origins (PROTOCOL.md section 9), with tower-http's layer.
//!
//! Only the origins listed in `cors_allowed_origins` get CORS answers: a preflight `OPTIONS`
//! allows the protocol's methods and request headers, and responses expose `Retry-After`,
//! `Idempotent-Replayed` and `Content-Encoding`. Any other origin, or a request without
//! one, gets no CORS header at all (tower-http would still answer a preflight's methods and
//! headers; they are taken off again). With no origin listed, nothing changes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a browser app may send (PROTOCOL.md section 9).
pub const ALLOWED_HEADERS: [HeaderName; 6] = [
    header::AUTHORIZATION,
    HeaderName::from_static("idempotency-key"),
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    HeaderName::from_static("x-network-quality"),
    HeaderName::from_static("last-event-id"),
];

/// Response headers a browser app may read.
pub const EXPOSED_HEADERS: [HeaderName; 3] =
    [header::RETRY_AFTER, HeaderName::from_static("idempotent-replayed"), header::CONTENT_ENCODING];

/// The protocol's methods.
pub const ALLOWED_METHODS: [Method; 5] =
    [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS];

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// An origin as browsers send it: no trailing slash, no surrounding blanks.
fn origin_value(origin: &str) -> Option<HeaderValue> {
    let origin = origin.trim().trim_end_matches('/');
    (!origin.is_empty()).then(|| HeaderValue::from_str(origin).ok()).flatten()
}

/// `router` with CORS answers for `origins` (unchanged when there are none).
pub(crate) fn layer<S>(router: Router<S>, origins: &[String]) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let allowed: Vec<HeaderValue> = origins.iter().filter_map(|o| origin_value(o)).collect();
    if allowed.is_empty() {
        return router;
    }
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed.clone()))
        .allow_methods(ALLOWED_METHODS.to_vec())
        .allow_headers(ALLOWED_HEADERS.to_vec())
        .expose_headers(EXPOSED_HEADERS.to_vec())
        .max_age(PREFLIGHT_MAX_AGE);
    router.layer(cors).layer(middleware::from_fn_with_state(Arc::new(allowed), only_allowed))
}

/// Takes every CORS header off the answer to a request that does not come from an allowed
/// origin.
async fn only_allowed(
    State(allowed): State<Arc<Vec<HeaderValue>>>,
    request: Request,
    next: Next,
) -> Response {
    let from_allowed = request.headers().get(header::ORIGIN).is_some_and(|origin| allowed.contains(origin));
    let mut response = next.run(request).await;
    if !from_allowed {
        let names: Vec<HeaderName> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in names {
            response.headers_mut().remove(name);
        }
    }
    response
}
