//! End-to-end tests of sync-client against a real server: see `tests/it`. No library code.
