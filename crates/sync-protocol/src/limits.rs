//! Limits the protocol fixes (PROTOCOL.md sections 3 and 5), and the defaults of those a
//! server may configure. The OpenAPI schemas state the same numbers.

/// Longest `Idempotency-Key`, in characters (visible ASCII only).
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;
/// Longest `device_id`, in characters (no control characters, at least one).
pub const DEVICE_ID_MAX_CHARS: usize = 128;
/// Default most changes in one push (`max_push_changes`; more is 413).
pub const DEFAULT_MAX_PUSH_CHANGES: usize = 500;
/// Default largest page of a pull (`max_pull_limit`; a larger `limit` is capped).
pub const DEFAULT_MAX_PULL_LIMIT: u32 = 1000;
/// Most conflicts one list request returns.
pub const MAX_CONFLICT_LIMIT: i64 = 500;
/// Conflicts listed when no `limit` is given.
pub const DEFAULT_CONFLICT_LIMIT: i64 = 100;

/// A regular expression (ECMA-262 and Python alike) for text without control characters.
pub const NO_CONTROL_CHARS_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]+$";

/// Whether `key` is a valid `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub fn is_valid_idempotency_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_MAX_LEN && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `device_id` is a valid device id: 1 to 128 characters, none of them a control
/// character.
pub fn is_valid_device_id(device_id: &str) -> bool {
    !device_id.is_empty()
        && device_id.chars().count() <= DEVICE_ID_MAX_CHARS
        && !device_id.chars().any(char::is_control)
}
