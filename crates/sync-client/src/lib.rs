//! An offline-first client of the syncforge protocol that apps embed.
#![doc = include_str!("../README.md")]

pub mod client;
pub mod core;
pub mod error;
pub mod http;
pub mod store;

pub use client::{Client, LiveMode, Options, SyncReport};
pub use core::{Event, Notice, Origin, RecordId, View};
pub use error::{Error, Result};
pub use http::Remote;
pub use store::Store;

/// Re-exported so that apps can name network qualities, records and outcomes.
pub use sync_bandwidth::NetworkQuality;
pub use sync_model::{Priority, SyncMeta, SyncStatus, SyncableModel};
pub use sync_protocol::{ConflictSummary, ItemError, Outcome};
