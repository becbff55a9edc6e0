//! The SQLite store: what survives a restart, one account per file.
