use sync_model::{SyncMeta, SyncableModel};

#[derive(SyncableModel)]
#[sync(domain = "task")]
struct Task {
    #[sync(meta)]
    meta: SyncMeta,
    #[sync(meta)]
    other: SyncMeta,
}

fn main() {}
