//! The wire types of the syncforge protocol (docs/PROTOCOL.md): serde only, no IO.
#![doc = include_str!("../README.md")]

pub mod analytics;
pub mod conflicts;
pub mod cursor;
pub mod error;
pub mod health;
pub mod insight;
pub mod limits;
pub mod pull;
pub mod push;
pub mod queue;

pub use analytics::{AlertView, Dashboard, DeviceHealthView, SnapshotCreated, SnapshotRequest, SnapshotView};
pub use conflicts::{
    Choice, ConflictView, ConflictsQuery, PolicyUpdate, PolicyView, ResolveRequest, ResolveResponse,
};
pub use cursor::Cursor;
pub use error::{ErrorBody, ErrorDetail};
pub use health::{GraphqlRequest, Liveness, Readiness};
pub use insight::{
    AnomaliesQuery, AnomalyMetric, AnomalyScope, AnomalySeverity, AnomalyView, ConflictRisk,
    ConflictRiskQuery, DeliveriesQuery, DeliveryState, DeliveryView, OptimalTimeQuery, RiskModelView,
    RiskRecord, SyncWindow, WebhookEvent, WebhookRequest, WebhookView, WindowBasis,
};
pub use pull::{DeviceQuery, PullQuery, PullRequest, PullResponse, RecordEnvelope};
pub use push::{Change, ChangeResult, ConflictSummary, ItemError, Op, Outcome, PushRequest, PushResponse};
pub use queue::{
    OptimalTime, PartialSyncRequest, PartialSyncResponse, QueueStatus, Recommendation, ServerLoad,
};

/// Re-exported so that users of the wire types can name a conflict policy and the conflict
/// log's words.
pub use sync_conflict::{ConflictStatus, Policy, PolicySource, Resolution, Winner};
/// Re-exported so that users of the wire types can name the envelope's priority.
pub use sync_model::Priority;
