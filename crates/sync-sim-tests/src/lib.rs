//! sync-sim against a real server: see `tests/it`. No library code.
