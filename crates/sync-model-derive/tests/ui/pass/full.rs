//! Every attribute used at once.
use sync_model::{SyncMeta, SyncableModel, ValidationErrors};

#[derive(SyncableModel)]
#[sync(domain = "ticket", workflow = "ticket", critical_fields(escalation_level, status),
       priority_field = "priority", validate = "check")]
struct Ticket {
    #[sync(meta)]
    meta: SyncMeta,
    status: String,
    escalation_level: u8,
    priority: String,
}

fn check(_: &Ticket) -> Result<(), ValidationErrors> {
    Ok(())
}

fn main() {
    assert_eq!(Ticket::DOMAIN, "ticket");
    assert_eq!(Ticket::WORKFLOW, Some("ticket"));
}
