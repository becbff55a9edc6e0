//! Laws over arbitrary input: whatever a client sends to push, the answer is a 2xx or a 4xx
//! with the error body, never a 5xx; and a refused push stores nothing.

use std::sync::OnceLock;

use axum::http::{Method, StatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::*;

/// One app for every case (a fresh database per case would dominate the run time).
fn app() -> &'static (TestApp, tokio::runtime::Runtime) {
    static APP: OnceLock<(TestApp, tokio::runtime::Runtime)> = OnceLock::new();
    APP.get_or_init(|| {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        (TestApp::new(), runtime)
    })
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        Just(json!("00000000-0000-4000-8000-000000000001")),
        Just(json!("2026-11-22T09:58:00Z")),
        Just(json!("task")),
        Just(json!("upsert")),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("device_id".to_owned()),
                    Just("changes".to_owned()),
                    Just("domain".to_owned()),
                    Just("mobile_id".to_owned()),
                    Just("op".to_owned()),
                    Just("data".to_owned()),
                    Just("patch".to_owned()),
                    Just("base_version".to_owned()),
                    Just("modified_at".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A push body that is nearly right: one field of a valid push replaced by an arbitrary value.
fn mutated_push() -> impl Strategy<Value = Value> {
    const FIELDS: &[&str] = &[
        "device_id",
        "changes",
        "domain",
        "mobile_id",
        "base_version",
        "op",
        "data",
        "patch",
        "modified_at",
        "priority",
        "bu",
    ];
    (prop::sample::select(FIELDS), json_value()).prop_map(|(field, value)| {
        let mut body = task_push("d1", &[1], "Check pump");
        match field {
            "device_id" | "changes" => body[field] = value,
            _ => body["changes"][0][field] = value,
        }
        body
    })
}

fn check(bytes: Vec<u8>, key: String) -> Result<(), TestCaseError> {
    let (app, runtime) = app();
    let r = runtime.block_on(
        app.req()
            .method(Method::POST)
            .path("/api/v1/sync/push")
            .bearer(&app.device)
            .header("idempotency-key", &key)
            .raw(bytes)
            .send(),
    );
    prop_assert!(r.status == StatusCode::OK || r.status.is_client_error(), "{}: {}", r.status, r.text());
    if r.status.is_client_error() {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        prop_assert!(body["error"]["code"].is_string(), "{body}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_5xx(bytes in prop::collection::vec(any::<u8>(), 0..256), key in "[a-z0-9]{8}") {
        check(bytes, key)?;
    }

    #[test]
    fn arbitrary_json_never_5xx(body in json_value(), key in "[a-z0-9]{8}") {
        check(serde_json::to_vec(&body).unwrap(), key)?;
    }

    #[test]
    fn nearly_valid_pushes_never_5xx(body in mutated_push(), key in "[a-z0-9]{12}") {
        check(serde_json::to_vec(&body).unwrap(), key)?;
    }
}

mod rate_limit {
    //! The token bucket's law (PROTOCOL.md section 9): never more than `burst + rate × t`
    //! requests admitted in any window of length `t`; and it is no stricter than it says.

    use proptest::prelude::*;
    use sync_api::limits::{Bucket, Rate};

    fn interval_ns(rate: Rate) -> u128 {
        60_000_000_000 / u128::from(rate.per_minute)
    }

    proptest! {
        #[test]
        fn never_more_than_burst_plus_rate_times_t(
            per_minute in 1u32..20_000,
            burst in 1u32..40,
            gaps in prop::collection::vec(0u64..3_000_000_000, 1..250),
        ) {
            let rate = Rate { per_minute, burst };
            let mut bucket = Bucket::new();
            let mut now = 0u128;
            let mut admitted = Vec::new();
            for gap in gaps {
                now += u128::from(gap);
                if bucket.take(rate, now).is_ok() {
                    admitted.push(now);
                }
            }
            let t = interval_ns(rate);
            for i in 0..admitted.len() {
                for j in i..admitted.len() {
                    let count = (j - i + 1) as u128;
                    let window = admitted[j] - admitted[i];
                    prop_assert!(
                        count <= u128::from(burst) + window / t,
                        "{count} admitted within {window} ns (burst {burst}, one per {t} ns)"
                    );
                }
            }
        }

        #[test]
        fn a_full_bucket_admits_the_burst_and_a_refusal_says_when(
            per_minute in 1u32..20_000,
            burst in 1u32..40,
            start in 0u64..1_000_000_000_000,
        ) {
            let rate = Rate { per_minute, burst };
            let mut bucket = Bucket::new();
            let now = u128::from(start);
            for _ in 0..burst {
                prop_assert!(bucket.take(rate, now).is_ok());
            }
            let wait = bucket.take(rate, now).unwrap_err();
            prop_assert!(wait.as_nanos() <= interval_ns(rate));
            prop_assert!(bucket.take(rate, now + wait.as_nanos()).is_ok(), "admitted once the wait is over");
        }
    }

    #[test]
    fn no_limit_admits_everything() {
        let mut bucket = Bucket::new();
        assert!((0..10_000).all(|_| bucket.take(Rate::UNLIMITED, 0).is_ok()));
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        use std::time::Duration;
        use sync_api::limits::retry_after_secs;
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
    }
}
