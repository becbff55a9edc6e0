use sync_model::{SyncMeta, SyncableModel};

#[derive(SyncableModel)]
#[sync(domain = "task", colour = "red")]
struct Task {
    #[sync(meta)]
    meta: SyncMeta,
}

fn main() {}
