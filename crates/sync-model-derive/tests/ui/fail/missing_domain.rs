use sync_model::{SyncMeta, SyncableModel};

#[derive(SyncableModel)]
#[sync(workflow = "task")]
struct Task {
    #[sync(meta)]
    meta: SyncMeta,
}

fn main() {}
