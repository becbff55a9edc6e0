//! Shared builders for the integration tests.

use sync_domain::store::{RecordRow, VersionRow};
use sync_model::Priority;

/// A live record with predictable contents.
pub fn record(tenant: &str, domain: &str, id: &str, version: i64, seq: i64) -> RecordRow {
    RecordRow {
        tenant_id: tenant.into(),
        domain: domain.into(),
        mobile_id: id.into(),
        version,
        data: format!(r#"{{"title":"{id} v{version}"}}"#),
        deleted: false,
        modified_at: 1_000 + seq,
        server_modified_at: 2_000 + seq,
        modified_by_device: "device-1".into(),
        bu: None,
        priority: Priority::Medium,
        seq,
    }
}

/// The history row of `record`.
pub fn version_of(record: &RecordRow) -> VersionRow {
    record.to_version()
}
