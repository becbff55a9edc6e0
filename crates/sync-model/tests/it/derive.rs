//! The derive's generated impl reports what was declared and delegates validation.

use sync_model::{SyncMeta, SyncableModel, ValidationErrors};
use uuid::Uuid;

#[allow(dead_code)] // status and priority are declared for the derive, not read.
#[derive(SyncableModel)]
#[sync(
    domain = "ticket",
    workflow = "ticket",
    critical_fields(escalation_level, status),
    priority_field = "priority",
    validate = "Ticket::check"
)]
struct Ticket {
    #[sync(meta)]
    meta: SyncMeta,
    title: String,
    status: String,
    escalation_level: u8,
    priority: String,
}

impl Ticket {
    fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.title.is_empty() {
            errors.push("data.title", "must not be empty");
        }
        if self.escalation_level > 5 {
            errors.push("data.escalation_level", "must be 0 to 5");
        }
        errors.into_result()
    }
}

#[derive(SyncableModel)]
#[sync(domain = "journal")]
struct Journal {
    #[sync(meta)]
    sync: SyncMeta,
}

fn ticket(title: &str, level: u8) -> Ticket {
    Ticket {
        meta: SyncMeta::new(Uuid::from_u128(7)),
        title: title.into(),
        status: "NEW".into(),
        escalation_level: level,
        priority: "HIGH".into(),
    }
}

#[test]
fn generated_impl_reports_the_declaration() {
    assert_eq!(Ticket::DOMAIN, "ticket");
    assert_eq!(Ticket::WORKFLOW, Some("ticket"));
    assert_eq!(Ticket::CRITICAL_FIELDS, ["escalation_level", "status"]);
    assert_eq!(Ticket::PRIORITY_FIELD, Some("priority"));
    assert_eq!(Journal::DOMAIN, "journal");
    assert_eq!(Journal::WORKFLOW, None);
    assert!(Journal::CRITICAL_FIELDS.is_empty());
    assert_eq!(Journal::PRIORITY_FIELD, None);
}

#[test]
fn generated_impl_reaches_the_meta_field() {
    let mut t = ticket("Pump", 0);
    assert_eq!(t.sync_meta().mobile_id, Uuid::from_u128(7));
    t.sync_meta_mut().version = 4;
    assert_eq!(t.meta.version, 4);
    let mut j = Journal { sync: SyncMeta::new(Uuid::nil()) };
    j.sync_meta_mut().deleted = true;
    assert!(j.sync.deleted);
}

#[test]
fn validation_is_delegated_and_names_every_field() {
    assert!(ticket("Pump", 2).validate().is_ok());
    let err = ticket("", 9).validate().unwrap_err();
    assert_eq!(err.errors().len(), 2);
    assert_eq!(err.to_string(), "data.title: must not be empty; data.escalation_level: must be 0 to 5");
    assert!(Journal { sync: SyncMeta::new(Uuid::nil()) }.validate().is_ok());
}
