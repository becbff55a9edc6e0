//! The protocol's limits, as the server checks them.

use proptest::prelude::*;
use sync_protocol::limits::{
    DEVICE_ID_MAX_CHARS, IDEMPOTENCY_KEY_MAX_LEN, NO_CONTROL_CHARS_PATTERN, is_valid_device_id,
    is_valid_idempotency_key,
};

#[test]
fn the_edges_of_each_limit() {
    assert!(!is_valid_idempotency_key(""));
    assert!(is_valid_idempotency_key(&"k".repeat(IDEMPOTENCY_KEY_MAX_LEN)));
    assert!(!is_valid_idempotency_key(&"k".repeat(IDEMPOTENCY_KEY_MAX_LEN + 1)));
    assert!(!is_valid_idempotency_key("a b"));
    assert!(!is_valid_device_id(""));
    assert!(is_valid_device_id(&"é".repeat(DEVICE_ID_MAX_CHARS)), "characters, not bytes");
    assert!(!is_valid_device_id(&"d".repeat(DEVICE_ID_MAX_CHARS + 1)));
    assert!(!is_valid_device_id("tab\tlet"));
    assert!(!is_valid_device_id("nul\0"));
}

proptest! {
    /// The pattern the OpenAPI document states for a device id, with its length bounds,
    /// accepts exactly the device ids the server accepts.
    #[test]
    fn the_device_id_pattern_is_the_servers_rule(id in "\\PC{0,3}[\\x00-\\x1f\\x7f-\\u{9f}]?\\PC{0,3}|.{0,130}") {
        let pattern = regex::Regex::new(NO_CONTROL_CHARS_PATTERN).unwrap();
        let length_ok = (1..=DEVICE_ID_MAX_CHARS).contains(&id.chars().count());
        prop_assert_eq!(pattern.is_match(&id) && length_ok, is_valid_device_id(&id));
    }

    /// The same for `Idempotency-Key` and the pattern `^[\x21-\x7E]+$` of the document.
    #[test]
    fn the_idempotency_key_pattern_is_the_servers_rule(key in "[\\x00-\\x7f]{0,3}|[!-~]{250,260}|\\PC{0,4}") {
        let pattern = regex::Regex::new(r"^[\x21-\x7E]+$").unwrap();
        let length_ok = (1..=IDEMPOTENCY_KEY_MAX_LEN).contains(&key.len());
        prop_assert_eq!(pattern.is_match(&key) && length_ok, is_valid_idempotency_key(&key));
    }
}
