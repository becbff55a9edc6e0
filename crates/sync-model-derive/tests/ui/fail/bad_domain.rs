use sync_model::{SyncMeta, SyncableModel};

#[derive(SyncableModel)]
#[sync(domain = "Work Order")]
struct WorkOrder {
    #[sync(meta)]
    meta: SyncMeta,
}

fn main() {}
