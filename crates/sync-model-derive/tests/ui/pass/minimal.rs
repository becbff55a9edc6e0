//! Only the required attributes.
use sync_model::{SyncMeta, SyncableModel};

#[derive(SyncableModel)]
#[sync(domain = "journal")]
struct Journal {
    #[sync(meta)]
    meta: SyncMeta,
    title: String,
}

fn main() {
    assert!(Journal::WORKFLOW.is_none());
    assert!(Journal::CRITICAL_FIELDS.is_empty());
}
