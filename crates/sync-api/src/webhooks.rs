//! Webhook deliveries over HTTP (PROTOCOL.md section 12): the engine says what is due, this
//! module POSTs it, signed, and reports each attempt back; the engine keeps the log and the
//! retry schedule.
//!
//! A delivery is `POST <url>` with the event's JSON body, `Content-Type: application/json`
//! and `X-Syncforge-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>`. A 2xx
//! answer delivers it; any other status, a timeout or a connection failure is a failed attempt.
//! Redirects are not followed (a receiver that moved must be updated with its new URL).

use std::time::Duration;

use hmac::{KeyInit, Mac};
use sync_domain::SyncEngine;
use sync_domain::engine::{AttemptResult, DueDelivery};
use sync_protocol::DeliveryState;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-syncforge-signature";
/// How long one attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most attempts due per tenant taken in one run.
pub const MAX_DUE_PER_RUN: i64 = 200;
/// Most characters of a receiver's error kept in the log.
const MAX_ERROR_CHARS: usize = 300;

type HmacSha256 = hmac::Hmac<sha2_hmac::Sha256>;

/// `sha256=<hex HMAC-SHA256 of body with secret>`: the value of [`SIGNATURE_HEADER`].
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` with `secret` (what a receiver checks), in
/// constant time.
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_mac) = header.strip_prefix("sha256=") else { return false };
    let Ok(expected) = hex::decode(hex_mac) else { return false };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The HTTP client deliveries use: rustls, a timeout per attempt, no redirects.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("syncforge-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryRun {
    /// Attempts made.
    pub attempted: usize,
    pub delivered: usize,
    /// Failed attempts with a retry queued.
    pub retrying: usize,
    /// Failed attempts with no retry left.
    pub failed: usize,
}

/// Makes one attempt.
pub async fn attempt(client: &reqwest::Client, due: &DueDelivery) -> AttemptResult {
    let sent = client
        .post(&due.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature(&due.secret, due.body.as_bytes()))
        .header("x-syncforge-event", due.event.as_str())
        .header("x-syncforge-delivery", &due.id)
        .body(due.body.clone())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let error = (!response.status().is_success()).then(|| format!("the receiver answered {status}"));
            AttemptResult { status: Some(status), error }
        }
        Err(e) => {
            let mut error = if e.is_timeout() {
                format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())
            } else if e.is_connect() {
                "could not connect to the receiver".to_owned()
            } else {
                format!("request failed: {e}")
            };
            error = error.chars().take(MAX_ERROR_CHARS).collect();
            AttemptResult { status: e.status().map(|s| s.as_u16()), error: Some(error) }
        }
    }
}

/// The delivery job: queues new events, then makes every attempt due now (one at a time per
/// run, oldest first) and records each.
pub async fn deliver_due(engine: &SyncEngine, client: &reqwest::Client) -> sync_domain::Result<DeliveryRun> {
    engine.queue_webhook_events(time::OffsetDateTime::now_utc()).await?;
    let mut run = DeliveryRun::default();
    for due in engine.due_webhook_deliveries(time::OffsetDateTime::now_utc(), MAX_DUE_PER_RUN).await? {
        let result = attempt(client, &due).await;
        run.attempted += 1;
        match engine.record_webhook_attempt(&due, &result, time::OffsetDateTime::now_utc()).await? {
            DeliveryState::Delivered => run.delivered += 1,
            DeliveryState::Retrying | DeliveryState::Pending => run.retrying += 1,
            DeliveryState::Failed => run.failed += 1,
        }
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    proptest! {
        /// A signature verifies with its secret and body, and not with another body or secret.
        #[test]
        fn signatures_verify_only_their_body_and_secret(
            secret in "[ -~]{16,40}", body in proptest::collection::vec(any::<u8>(), 0..200), flip in 0usize..200,
        ) {
            let header = signature(&secret, &body);
            prop_assert!(verify(&secret, &body, &header));
            let mut other = body.clone();
            if other.is_empty() { other.push(1) } else { let i = flip % other.len(); other[i] ^= 1; }
            prop_assert!(!verify(&secret, &other, &header));
            let other_secret = secret.clone() + "x";
            prop_assert!(!verify(&other_secret, &body, &header));
        }
    }
}
