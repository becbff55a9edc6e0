//! window tests.
