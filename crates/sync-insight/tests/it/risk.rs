//! risk tests.
