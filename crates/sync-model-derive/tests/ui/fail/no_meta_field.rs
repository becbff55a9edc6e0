use sync_model::SyncableModel;

#[derive(SyncableModel)]
#[sync(domain = "task")]
struct Task {
    title: String,
}

fn main() {}
