use sync_model::SyncableModel;

#[derive(SyncableModel)]
#[sync(domain = "task")]
struct Task {
    #[sync(meta)]
    meta: String,
}

fn main() {}
