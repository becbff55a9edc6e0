//! The SQLite store: what survives a restart, one account per file.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sync_client::core::{self, Pending, RecordId, Step, Write};
use sync_client::{Client, Error, Options, Remote, Store, SyncStatus};
use sync_model::{SyncMeta, SyncableModel};
use uuid::Uuid;

fn client(path: &std::path::Path) -> Client {
    let store = Store::open(path, "phone-1").unwrap();
    // Nothing here talks to a server.
    Client::new(store, Remote::new("http://127.0.0.1:9", "token").unwrap(), Options::default()).unwrap()
}

#[test]
fn edits_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let id = Uuid::new_v4();
    {
        let c = client(&path);
        c.put_json("journal", id, json!({"title": "one"})).unwrap();
        c.patch_json("journal", id, json!([{"op": "add", "path": "/mood", "value": "fine"}])).unwrap();
        c.put_json("journal", Uuid::new_v4(), json!({"title": "two"})).unwrap();
    }
    let c = client(&path);
    let view = c.get_json("journal", id).unwrap().unwrap();
    assert_eq!(view.data, json!({"title": "one", "mood": "fine"}));
    assert_eq!((view.status, view.version), (SyncStatus::PendingSync, 0));
    assert_eq!(c.query_json("journal").unwrap().len(), 2);
    let state = c.store().snapshot().unwrap();
    // The creation of `id` was sealed into a batch when it was edited; the edit and the
    // other creation are pending.
    assert_eq!((state.batches.len(), state.pending.len()), (1, 2));
}

#[test]
fn a_failed_step_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("a.db"), "phone-1").unwrap();
    let id = RecordId::new("journal", Uuid::new_v4());
    let pending = Pending {
        id: id.clone(),
        seq: 1,
        wanted: Some(json!({"title": "x"})),
        base_version: 0,
        base_data: None,
        after_flight: false,
        modified_at: time::OffsetDateTime::UNIX_EPOCH,
        priority: None,
        bu: None,
    };
    let failed = store.step(|r| {
        r.apply(&[Write::Pending(pending)])?;
        // The process dies, or the step fails, after a write and before the commit.
        Err(Error::Protocol("fails mid-step".into()))
    });
    assert!(failed.is_err());
    assert!(store.transact(|r| r.pending(&id)).unwrap().is_none());
}

#[test]
fn a_batch_keeps_its_key_and_body_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let store = Store::open(&path, "phone-1").unwrap();
    let c = Client::new(store.clone(), Remote::new("http://127.0.0.1:9", "t").unwrap(), Options::default())
        .unwrap();
    c.put_json("journal", Uuid::new_v4(), json!({"title": "x"})).unwrap();
    let mut first = None;
    store
        .step(|r| {
            let (step, batch) = core::next_batch(r, 10)?.unwrap();
            first = Some(batch);
            Ok::<Step, Error>(step)
        })
        .unwrap();
    drop((c, store));
    let again = Store::open(&path, "another-id").unwrap();
    assert_eq!(again.meta().unwrap().device_id, "phone-1", "a file keeps the device it was made for");
    let resent = again.transact(|r| core::next_batch(r, 10)).unwrap().unwrap().1;
    assert_eq!(Some(resent), first);
}

#[test]
fn bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(Store::open(dir.path().join("x.db"), ""), Err(Error::DeviceId(_))));
    let c = client(&dir.path().join("a.db"));
    assert!(matches!(c.put_json("journal", Uuid::new_v4(), json!([1])), Err(Error::NotAnObject)));
    assert!(matches!(c.put_json("Bad Domain", Uuid::new_v4(), json!({})), Err(Error::Domain(_))));
    assert!(matches!(c.delete_json("journal", Uuid::new_v4()), Err(Error::NotFound(_))));
    let id = Uuid::new_v4();
    c.put_json("journal", id, json!({"title": "t"})).unwrap();
    let bad_patch = json!([{"op": "replace", "path": "/missing", "value": 1}]);
    assert!(matches!(c.patch_json("journal", id, bad_patch), Err(Error::Patch(_))));

    /// A type that forgot `#[serde(skip)]` on its meta.
    #[derive(Serialize, Deserialize, SyncableModel)]
    #[sync(domain = "journal")]
    struct Leaky {
        #[sync(meta)]
        meta: SyncMeta,
        title: String,
    }
    let leaky = Leaky { meta: SyncMeta::new(Uuid::new_v4()), title: "t".into() };
    assert!(matches!(c.put(&leaky), Err(Error::MetaInData("journal"))));
}

/// The child side of `a_killed_process_loses_and_doubles_nothing`: edits, batches and
/// answers in a loop, printing each edit once it is committed, until it is killed.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var("SYNC_CLIENT_CRASH_CHILD") else { return };
    use std::io::Write as _;
    let c = client(std::path::Path::new(&path));
    let mut out = std::io::stdout();
    for i in 0u128.. {
        c.put_json(
            "journal",
            Uuid::from_u128(i + 1),
            json!({"title": format!("t{i}"), "pad": "x".repeat(500)}),
        )
        .unwrap();
        writeln!(out, "committed {i}").unwrap();
        out.flush().unwrap();
        if i % 5 == 4 {
            // A batch formed and answered, as the driver does, in two more steps.
            let mut formed = None;
            c.store()
                .step(|r| {
                    let (step, batch) = core::next_batch(r, 3)?.unwrap();
                    formed = Some(batch);
                    Ok::<Step, Error>(step)
                })
                .unwrap();
            let batch = formed.unwrap();
            let results = batch
                .changes
                .iter()
                .map(|ch| sync_protocol::ChangeResult {
                    mobile_id: ch.mobile_id,
                    domain: ch.domain.clone(),
                    outcome: sync_protocol::Outcome::Applied,
                    version: Some(1),
                    record: None,
                    conflict: None,
                    error: None,
                })
                .collect();
            let response = sync_protocol::PushResponse { results, cursor: "c1.1".into() };
            c.store().step(|r| core::push_answered(r, &batch.key, &response)).unwrap();
        }
    }
}

/// A real crash: the process is killed (SIGKILL) at a random moment while it edits, forms
/// batches and takes answers. Every edit it reported is in the file exactly once, in the
/// outbox or acknowledged, and the file opens and syncs on.
#[test]
fn a_killed_process_loses_and_doubles_nothing() {
    use std::io::BufRead as _;
    for round in 0..3u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store::crash_child", "--nocapture", "--test-threads=1"])
            .env("SYNC_CLIENT_CRASH_CHILD", &path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut last = None;
        let stop_after = 20 + round * 17;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("committed ") {
                last = Some(n.parse::<u128>().unwrap());
                if last >= Some(u128::from(stop_after)) {
                    break;
                }
            }
        }
        // Kill it at once, mid-whatever it is doing.
        child.kill().unwrap();
        child.wait().unwrap();
        let last = last.unwrap();
        let c = client(&path);
        let state = c.store().snapshot().unwrap();
        let mut seen = std::collections::BTreeMap::new();
        for id in state
            .pending
            .keys()
            .chain(state.records.keys())
            .chain(state.batches.iter().flat_map(|b| b.items.iter().map(|p| &p.id)))
        {
            *seen.entry(id.mobile_id.as_u128() - 1).or_insert(0) += 1;
        }
        for i in 0..=last {
            assert_eq!(
                seen.get(&i),
                Some(&1),
                "round {round}: edit {i} of 0..={last} held {:?} times",
                seen.get(&i)
            );
            let view = c.get_json("journal", Uuid::from_u128(i + 1)).unwrap().unwrap();
            assert_eq!(view.data["title"], format!("t{i}"));
        }
        // At most the one edit that committed before the kill but was not yet reported.
        assert!(seen.keys().all(|i| *i <= last + 1), "round {round}: {seen:?}");
        // The file goes on working.
        c.put_json("journal", Uuid::new_v4(), json!({"title": "after"})).unwrap();
    }
}
