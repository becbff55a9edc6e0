use sync_model::SyncableModel;

#[derive(SyncableModel)]
#[sync(domain = "task")]
enum Task {
    A,
}

fn main() {}
