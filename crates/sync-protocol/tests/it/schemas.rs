//! The OpenAPI schemas (feature `openapi`) state the rules the types and the server apply.

use proptest::prelude::*;
use serde_json::Value;
use sync_protocol::limits::{DEVICE_ID_MAX_CHARS, NO_CONTROL_CHARS_PATTERN};
use sync_protocol::{Policy, Priority, PushRequest};
use utoipa::PartialSchema;

fn json<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap()
}

fn pattern_of<T: PartialSchema>() -> regex::Regex {
    regex::Regex::new(json::<T>()["pattern"].as_str().unwrap()).unwrap()
}

#[test]
fn a_push_states_the_device_id_rule() {
    let schema = json::<PushRequest>();
    let device_id = &schema["properties"]["device_id"];
    assert_eq!(device_id["minLength"], 1);
    assert_eq!(device_id["maxLength"], DEVICE_ID_MAX_CHARS);
    assert_eq!(device_id["pattern"], NO_CONTROL_CHARS_PATTERN);
    assert_eq!(schema["additionalProperties"], false, "unknown fields are refused");
    let required: Vec<&str> =
        schema["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(required, ["device_id", "changes"]);
}

proptest! {
    /// The pattern a schema states for `Priority` matches exactly the words serde reads.
    #[test]
    fn the_priority_pattern_is_what_serde_reads(word in "(?i)(high|medium|low)|[a-zA-Z_]{0,8}") {
        let parsed = serde_json::from_value::<Priority>(Value::from(word.as_str())).is_ok();
        prop_assert_eq!(pattern_of::<Priority>().is_match(&word), parsed);
    }

    /// The same for `Policy`.
    #[test]
    fn the_policy_pattern_is_what_serde_reads(
        word in "(?i)(client_wins|server_wins|most_recent_wins|field_merge|preserve_escalation|manual)|[a-zA-Z_]{0,12}",
    ) {
        let parsed = serde_json::from_value::<Policy>(Value::from(word.as_str())).is_ok();
        prop_assert_eq!(pattern_of::<Policy>().is_match(&word), parsed);
    }
}
