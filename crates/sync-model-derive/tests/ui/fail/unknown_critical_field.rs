use sync_model::{SyncMeta, SyncableModel};

#[derive(SyncableModel)]
#[sync(domain = "ticket", critical_fields(escalation_level))]
struct Ticket {
    #[sync(meta)]
    meta: SyncMeta,
    status: String,
}

fn main() {}
