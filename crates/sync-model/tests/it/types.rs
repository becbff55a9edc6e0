//! Laws of the envelope types: serde round-trips and parse/display inverses.

use proptest::prelude::*;
use sync_model::{DomainName, Priority, SyncMeta, SyncStatus};
use time::OffsetDateTime;
use uuid::Uuid;

fn status() -> impl Strategy<Value = SyncStatus> {
    prop::sample::select(SyncStatus::ALL.to_vec())
}

fn priority() -> impl Strategy<Value = Priority> {
    prop::sample::select(Priority::ALL.to_vec())
}

fn timestamp() -> impl Strategy<Value = OffsetDateTime> {
    // Whole microseconds between 1970 and 2100, as the server stores them.
    (0i64..4_102_444_800_000_000)
        .prop_map(|us| OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).unwrap())
}

fn meta() -> impl Strategy<Value = SyncMeta> {
    (
        any::<u128>(),
        0i64..1_000_000,
        status(),
        timestamp(),
        prop::option::of(timestamp()),
        prop::option::of("[a-z0-9-]{1,20}"),
        any::<bool>(),
        prop::option::of("[a-z]{1,10}"),
        priority(),
    )
        .prop_map(
            |(id, version, sync_status, modified_at, server_modified_at, device, deleted, bu, priority)| {
                SyncMeta {
                    mobile_id: Uuid::from_u128(id),
                    version,
                    sync_status,
                    modified_at,
                    server_modified_at,
                    modified_by_device: device,
                    deleted,
                    bu,
                    priority,
                }
            },
        )
}

proptest! {
    #[test]
    fn sync_meta_serde_round_trip(meta in meta()) {
        let json = serde_json::to_string(&meta).unwrap();
        let back: SyncMeta = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, meta);
    }

    #[test]
    fn sync_status_parse_display_inverse(status in status()) {
        prop_assert_eq!(status.to_string().parse::<SyncStatus>().unwrap(), status);
        let json = serde_json::to_value(status).unwrap();
        prop_assert_eq!(json.as_str(), Some(status.as_str()));
        prop_assert_eq!(serde_json::from_value::<SyncStatus>(json).unwrap(), status);
    }

    #[test]
    fn priority_parse_is_case_insensitive_and_inverts_display(priority in priority(), mask in any::<u8>()) {
        let mixed: String = priority
            .as_str()
            .chars()
            .enumerate()
            .map(|(i, c)| if mask >> (i % 8) & 1 == 1 { c.to_ascii_uppercase() } else { c })
            .collect();
        prop_assert_eq!(mixed.parse::<Priority>().unwrap(), priority);
        prop_assert_eq!(priority.to_string().parse::<Priority>().unwrap(), priority);
        let json = serde_json::to_string(&priority).unwrap();
        prop_assert_eq!(serde_json::from_str::<Priority>(&json).unwrap(), priority);
    }

    #[test]
    fn domain_name_round_trips_when_valid(name in "[a-z][a-z0-9_]{0,63}") {
        let domain = DomainName::new(name.clone()).unwrap();
        prop_assert_eq!(domain.as_str(), name.as_str());
        let json = serde_json::to_string(&domain).unwrap();
        prop_assert_eq!(serde_json::from_str::<DomainName>(&json).unwrap(), domain);
    }

    #[test]
    fn domain_name_rejects_anything_else(name in "[A-Z0-9_ -][a-zA-Z0-9_ -]{0,70}") {
        prop_assert!(DomainName::new(name).is_err());
    }
}

#[test]
fn wire_names_are_the_protocols() {
    let meta = SyncMeta {
        mobile_id: Uuid::nil(),
        version: 3,
        sync_status: SyncStatus::PendingDelete,
        modified_at: time::macros::datetime!(2026-11-22 10:00:00 UTC),
        server_modified_at: None,
        modified_by_device: Some("dev-1".into()),
        deleted: true,
        bu: Some("north".into()),
        priority: Priority::High,
    };
    assert_eq!(
        serde_json::to_value(&meta).unwrap(),
        serde_json::json!({
            "mobile_id": "00000000-0000-0000-0000-000000000000",
            "version": 3,
            "sync_status": "pending_delete",
            "modified_at": "2026-11-22T10:00:00Z",
            "modified_by_device": "dev-1",
            "deleted": true,
            "bu": "north",
            "priority": "high"
        })
    );
}

#[test]
fn defaults_and_unknowns() {
    assert_eq!(Priority::default(), Priority::Medium);
    assert_eq!(SyncStatus::default(), SyncStatus::Synced);
    assert_eq!("HIGH".parse::<Priority>().unwrap(), Priority::High);
    assert!("urgent".parse::<Priority>().is_err());
    assert!("done".parse::<SyncStatus>().is_err());
    assert_eq!(Priority::from_loose(Some(&serde_json::json!("Low"))), Priority::Low);
    assert_eq!(Priority::from_loose(Some(&serde_json::json!("urgent"))), Priority::Medium);
    assert_eq!(Priority::from_loose(Some(&serde_json::json!(3))), Priority::Medium);
    assert_eq!(Priority::from_loose(None), Priority::Medium);
    assert!(Priority::High > Priority::Medium && Priority::Medium > Priority::Low);
}

#[test]
fn unknown_meta_fields_are_rejected() {
    let err = serde_json::from_value::<SyncMeta>(serde_json::json!({
        "mobile_id": Uuid::nil(), "version": 1, "modified_at": "2026-11-22T10:00:00Z", "colour": "red"
    }))
    .unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
}
