//! Table-driven tests of the pure core: each push outcome → what the app then sees, and batch
//! sizes by network quality.

use serde_json::{Value, json};
use sync_client::core::{self, EditOp, LocalEdit, MemoryReplica, Meta, RecordId, view};
use sync_client::{NetworkQuality, Outcome, SyncStatus};
use sync_protocol::{ChangeResult, ConflictSummary, ItemError, PullResponse, PushResponse, RecordEnvelope};
use time::OffsetDateTime;
use uuid::Uuid;

fn envelope(id: &RecordId, version: i64, data: Value) -> RecordEnvelope {
    RecordEnvelope {
        domain: id.domain.clone(),
        mobile_id: id.mobile_id,
        version,
        deleted: false,
        data: Some(data),
        base_version: None,
        patch: None,
        modified_at: OffsetDateTime::UNIX_EPOCH,
        server_modified_at: OffsetDateTime::UNIX_EPOCH,
        modified_by_device: None,
        priority: sync_model::Priority::Medium,
        bu: None,
        conflict_risk: None,
    }
}

/// A device holding version 1 `{"t": "base"}` that edited it to `{"t": "mine"}` and sent it.
fn sent() -> (MemoryReplica, RecordId, String) {
    let mut r = MemoryReplica::new(Meta::new("phone-1", Uuid::from_u128(1)));
    let id = RecordId::new("ticket", Uuid::from_u128(2));
    let page = PullResponse {
        changes: vec![envelope(&id, 1, json!({"t": "base"}))],
        cursor: "c1.1".into(),
        has_more: false,
        remaining: 0,
    };
    let core::PullOutcome::Apply { step, .. } = core::pull_answered(&mut r, None, &page).unwrap() else {
        panic!()
    };
    r.commit(step).unwrap();
    let edit = LocalEdit {
        id: id.clone(),
        op: EditOp::Put(json!({"t": "mine"})),
        at: OffsetDateTime::UNIX_EPOCH,
        priority: None,
        bu: None,
    };
    let step = core::edit(&mut r, edit).unwrap();
    r.commit(step).unwrap();
    let (step, batch) = core::next_batch(&mut r, 10).unwrap().unwrap();
    r.commit(step).unwrap();
    (r, id, batch.key)
}

#[test]
fn each_outcome_into_the_local_state() {
    let conflict = |strategy: &str, winner: &str| ConflictSummary {
        id: Uuid::from_u128(9),
        strategy: strategy.parse().unwrap(),
        winner: winner.parse().unwrap(),
        details: json!({}),
    };
    // outcome, version, record in the answer, conflict → data seen, version held, status, notice
    let cases = [
        (Outcome::Applied, Some(2), None, None, json!({"t": "mine"}), 2, SyncStatus::Synced, false),
        (
            Outcome::ClientWon,
            Some(3),
            None,
            Some(conflict("client_wins", "client")),
            json!({"t": "mine"}),
            3,
            SyncStatus::Synced,
            true,
        ),
        (
            Outcome::ServerWon,
            Some(3),
            Some(json!({"t": "theirs"})),
            Some(conflict("server_wins", "server")),
            json!({"t": "theirs"}),
            3,
            SyncStatus::Synced,
            true,
        ),
        (
            Outcome::Merged,
            Some(4),
            Some(json!({"t": "merged"})),
            Some(conflict("field_merge", "merged")),
            json!({"t": "merged"}),
            4,
            SyncStatus::Synced,
            true,
        ),
        (
            Outcome::ManualRequired,
            Some(3),
            None,
            Some(conflict("manual", "none")),
            json!({"t": "base"}),
            1,
            SyncStatus::Conflict,
            true,
        ),
        (Outcome::Invalid, None, None, None, json!({"t": "base"}), 1, SyncStatus::SyncError, true),
    ];
    for (outcome, version, record, conflict, seen, held, status, noticed) in cases {
        let (mut r, id, key) = sent();
        let result = ChangeResult {
            mobile_id: id.mobile_id,
            domain: id.domain.clone(),
            outcome,
            version,
            record: record.map(|data| envelope(&id, version.unwrap(), data)),
            conflict,
            error: (outcome == Outcome::Invalid)
                .then(|| ItemError { code: "validation".into(), message: "data.t: no".into() }),
        };
        let step =
            core::push_answered(&mut r, &key, &PushResponse { results: vec![result], cursor: "c1.5".into() })
                .unwrap();
        r.commit(step).unwrap();
        let v = view(&mut r, &id).unwrap().unwrap();
        assert_eq!((&v.data, v.version, v.status), (&seen, held, status), "{outcome:?}");
        assert_eq!(r.notices.len(), usize::from(noticed), "{outcome:?}");
        assert!(r.batches.is_empty(), "{outcome:?}: the answered batch is gone");
        assert_eq!(r.meta.cursor.as_deref(), Some("c1.1"), "a push answer never moves the pull cursor");
    }
}

#[test]
fn a_manual_conflict_stands_until_a_newer_version_arrives() {
    let (mut r, id, key) = sent();
    let result = ChangeResult {
        mobile_id: id.mobile_id,
        domain: id.domain.clone(),
        outcome: Outcome::ManualRequired,
        version: Some(2),
        record: None,
        conflict: None,
        error: None,
    };
    let step =
        core::push_answered(&mut r, &key, &PushResponse { results: vec![result], cursor: "c1.2".into() })
            .unwrap();
    r.commit(step).unwrap();
    let page = |version, cursor: &str| PullResponse {
        changes: vec![envelope(&id, version, json!({"t": format!("v{version}")}))],
        cursor: cursor.into(),
        has_more: false,
        remaining: 0,
    };
    // The version the conflict was against: still a conflict.
    let core::PullOutcome::Apply { step, .. } =
        core::pull_answered(&mut r, Some("c1.1"), &page(2, "c1.2")).unwrap()
    else {
        panic!()
    };
    r.commit(step).unwrap();
    assert_eq!(view(&mut r, &id).unwrap().unwrap().status, SyncStatus::Conflict);
    // The admin's resolution: settled.
    let core::PullOutcome::Apply { step, .. } =
        core::pull_answered(&mut r, Some("c1.2"), &page(3, "c1.3")).unwrap()
    else {
        panic!()
    };
    r.commit(step).unwrap();
    let v = view(&mut r, &id).unwrap().unwrap();
    assert_eq!((v.status, v.version, v.data), (SyncStatus::Synced, 3, json!({"t": "v3"})));
}

#[test]
fn batch_sizes_by_network_quality() {
    let cases = [
        (NetworkQuality::Excellent, None, 100),
        (NetworkQuality::Good, None, 50),
        (NetworkQuality::Fair, None, 25),
        (NetworkQuality::Poor, None, 10),
        (NetworkQuality::Excellent, Some(7), 7),
        (NetworkQuality::Poor, Some(0), 1),
    ];
    for (quality, cap, want) in cases {
        assert_eq!(core::batch_size(quality, cap), want, "{quality:?} {cap:?}");
    }
}
