//! Records, history, the change sequence, pulls, purge and the transaction helpers.

use sync_domain::store::{self, PullFilter, RecordKey, RecordRow};
use sync_domain::{Backend, Database, Error};
use sync_model::Priority;

use crate::common::{record, version_of};

const T: &str = "tenant-a";

async fn upsert_then_get(db: Database) {
    let rows =
        vec![record(T, "task", "a", 1, 1), record(T, "task", "b", 1, 2), record(T, "ticket", "c", 1, 3)];
    let mut with_unit = rows.clone();
    with_unit[2].bu = Some("north".into());
    with_unit[2].priority = Priority::High;
    with_unit[2].deleted = true;
    let written = with_unit.clone();
    db.write_tx(move |c| store::upsert_records(c, &written)).await.unwrap();

    let keys = vec![
        RecordKey::new("task", "a"),
        RecordKey::new("task", "b"),
        RecordKey::new("ticket", "c"),
        RecordKey::new("ticket", "a"), // same id, other domain: absent
        RecordKey::new("task", "missing"),
    ];
    let found = db.run(move |c| store::get_records(c, T, &keys)).await.unwrap();
    assert_eq!(found.len(), 3);
    for row in &with_unit {
        assert_eq!(found.get(&row.key()), Some(row));
    }

    // A newer version replaces the row; another tenant sees nothing.
    let mut v2 = record(T, "task", "a", 2, 4);
    v2.data = r#"{"title":"changed"}"#.into();
    let expected = v2.clone();
    db.write_tx(move |c| store::upsert_records(c, &[v2])).await.unwrap();
    let found = db.run(|c| store::get_records(c, T, &[RecordKey::new("task", "a")])).await.unwrap();
    assert_eq!(found[&RecordKey::new("task", "a")], expected);
    assert_eq!(found[&RecordKey::new("task", "a")].data_json().unwrap()["title"], "changed");
    let other = db.run(|c| store::get_records(c, "tenant-b", &[RecordKey::new("task", "a")])).await.unwrap();
    assert!(other.is_empty());
    // get_records_for_update sees the same rows (and locks them on PostgreSQL).
    let locked = db
        .write_tx(|c| {
            store::get_records_for_update(c, T, &[RecordKey::new("task", "a"), RecordKey::new("task", "b")])
        })
        .await
        .unwrap();
    assert_eq!(locked.len(), 2);
}

async fn duplicate_keys_in_one_batch_keep_the_highest_version(db: Database) {
    let rows = vec![record(T, "task", "a", 2, 2), record(T, "task", "a", 1, 1), record(T, "task", "a", 3, 3)];
    db.write_tx(move |c| store::upsert_records(c, &rows)).await.unwrap();
    let found = db.run(|c| store::get_records(c, T, &[RecordKey::new("task", "a")])).await.unwrap();
    assert_eq!(found[&RecordKey::new("task", "a")].version, 3);
}

async fn large_batches_are_chunked(db: Database) {
    // 3,000 records at version 2, their first versions in history.
    let rows: Vec<RecordRow> =
        (1..=3_000).map(|i| record(T, ["task", "ticket"][i as usize % 2], &format!("r{i}"), 2, i)).collect();
    let versions: Vec<_> = rows.iter().map(|r| version_of(&RecordRow { version: 1, ..r.clone() })).collect();
    let keys: Vec<RecordKey> = rows.iter().map(RecordRow::key).collect();
    db.write_tx(move |c| {
        store::upsert_records(c, &rows)?;
        store::insert_versions(c, &versions)
    })
    .await
    .unwrap();
    // Both versions of each: the first from history, the current one from `records`.
    let wanted: Vec<(RecordKey, i64)> = keys.iter().flat_map(|k| [(k.clone(), 1), (k.clone(), 2)]).collect();
    let (found, versions) = db
        .run(move |c| Ok((store::get_records(c, T, &keys)?, store::get_versions(c, T, &wanted)?)))
        .await
        .unwrap();
    assert_eq!(found.len(), 3_000);
    assert_eq!(versions.len(), 6_000);
    assert!(versions.iter().all(|((key, version), row)| row.key() == *key && row.version == *version));
    let count = db.run(|c| store::count_after(c, T, 0, &PullFilter::default())).await.unwrap();
    assert_eq!(count, 3_000);
}

async fn stale_upserts_and_duplicate_versions_are_write_conflicts(db: Database) {
    let v1 = record(T, "task", "a", 1, 1);
    let v2 = record(T, "task", "a", 2, 2);
    let (a, b) = (v2.clone(), version_of(&v1));
    db.write_tx(move |c| {
        store::upsert_records(c, &[a])?;
        store::insert_versions(c, &[b])
    })
    .await
    .unwrap();
    // The same superseded version again in history: a concurrent writer got there first.
    let again = version_of(&v1);
    let err = db.write_tx(move |c| store::insert_versions(c, &[again])).await.unwrap_err();
    assert!(matches!(err, Error::WriteConflict(_)), "{err}");
    assert!(err.is_retryable());
    if db.backend() == Backend::Postgres {
        // Not newer than the stored version: refused, nothing overwritten.
        let mut stale = record(T, "task", "a", 2, 3);
        stale.data = r#"{"title":"stale"}"#.into();
        let err = db.write_tx(move |c| store::upsert_records(c, &[stale])).await.unwrap_err();
        assert!(matches!(err, Error::WriteConflict(_)), "{err}");
        let found = db.run(|c| store::get_records(c, T, &[RecordKey::new("task", "a")])).await.unwrap();
        assert_eq!(found[&RecordKey::new("task", "a")], v2);
    }
}

async fn versions_by_key_and_as_of_a_cursor(db: Database) {
    // a: v1@1, v2@3, v3@5 (current); b: v1@2 (current); c: v1@6 (current). History holds the
    // superseded versions a1 and a2; the current ones are the records' rows.
    let superseded = [record(T, "task", "a", 1, 1), record(T, "task", "a", 2, 3)];
    let current =
        vec![record(T, "task", "a", 3, 5), record(T, "task", "b", 1, 2), record(T, "ticket", "c", 1, 6)];
    let versions: Vec<_> = superseded.iter().map(version_of).collect();
    let rows = current.clone();
    db.write_tx(move |c| {
        store::insert_versions(c, &versions)?;
        store::upsert_records(c, &rows)
    })
    .await
    .unwrap();

    let a = RecordKey::new("task", "a");
    let wanted = vec![(a.clone(), 1), (a.clone(), 3), (a.clone(), 9), (RecordKey::new("task", "b"), 1)];
    let found = db.run(move |c| store::get_versions(c, T, &wanted)).await.unwrap();
    let mut got: Vec<_> = found.keys().map(|(k, v)| (k.mobile_id.clone(), *v)).collect();
    got.sort();
    assert_eq!(got, vec![("a".to_owned(), 1), ("a".to_owned(), 3), ("b".to_owned(), 1)]);
    assert_eq!(found[&(a.clone(), 3)], current[0].to_version());
    assert_eq!(found[&(a.clone(), 1)], version_of(&superseded[0]));

    // The whole history of the tenant, by record and version; another tenant's is apart.
    let elsewhere = version_of(&record("tenant-b", "task", "z", 1, 1));
    db.write_tx(move |c| store::insert_versions(c, &[elsewhere])).await.unwrap();
    let all = db.run(|c| store::tenant_history(c, T)).await.unwrap();
    let listed: Vec<_> = all.iter().map(|v| (v.domain.as_str(), v.mobile_id.as_str(), v.version)).collect();
    assert_eq!(
        listed,
        vec![("task", "a", 1), ("task", "a", 2), ("task", "a", 3), ("task", "b", 1), ("ticket", "c", 1)]
    );

    // As of 4: a had moved on to v2 (history), b was at its current v1, c did not exist yet.
    let as_of_4 = db.run(move |c| store::versions_as_of(c, T, &current, 4)).await.unwrap();
    assert_eq!(as_of_4[&a].version, 2);
    assert_eq!(as_of_4[&RecordKey::new("task", "b")].version, 1);
    assert!(!as_of_4.contains_key(&RecordKey::new("ticket", "c")));
    assert_eq!(as_of_4.len(), 2);
}

async fn allocate_seqs_is_monotonic_per_tenant(db: Database) {
    let (a1, a2, b1, a3, cur) = db
        .write_tx(|c| {
            Ok((
                store::allocate_seqs(c, T, 3)?,
                store::allocate_seqs(c, T, 1)?,
                store::allocate_seqs(c, "tenant-b", 5)?,
                store::allocate_seqs(c, T, 10)?,
                store::current_seq(c, T)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((a1, a2, b1, a3, cur), (1, 4, 1, 5, 14));
    let err = db.write_tx(|c| store::allocate_seqs(c, T, 0)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
    // A rolled-back allocation leaves no gap.
    let err = db
        .write_tx(|c| {
            store::allocate_seqs(c, T, 100)?;
            Err::<(), _>(Error::InvalidArgument("injected".into()))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
    assert_eq!(db.write_tx(|c| store::allocate_seqs(c, T, 1)).await.unwrap(), 15);
    assert_eq!(db.run(|c| store::current_seq(c, "nobody")).await.unwrap(), 0);
}

async fn pull_pages_in_seq_order_with_filters(db: Database) {
    let mut rows = Vec::new();
    for (i, (domain, bu, priority)) in [
        ("task", Some("north"), Priority::High),
        ("ticket", Some("south"), Priority::Low),
        ("task", None, Priority::Medium),
        ("journal", Some("north"), Priority::High),
        ("task", Some("south"), Priority::Medium),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = record(T, domain, &format!("r{i}"), 1, 0);
        r.bu = bu.map(Into::into);
        r.priority = priority;
        rows.push(r);
    }
    // Sequence numbers come from the counter, in reverse insertion order on purpose.
    db.write_tx(move |c| {
        let first = store::allocate_seqs(c, T, rows.len() as i64)?;
        let n = rows.len() as i64;
        for (i, r) in rows.iter_mut().enumerate() {
            r.seq = first + n - 1 - i as i64;
        }
        store::upsert_records(c, &rows)
    })
    .await
    .unwrap();
    db.write_tx(|c| store::upsert_records(c, &[record("tenant-b", "task", "x", 1, 1)])).await.unwrap();

    let all = PullFilter::default();
    let page = db.run(move |c| store::pull_page(c, T, 0, 2, &all)).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(page[0].mobile_id, "r4");
    let rest = db.run(move |c| store::pull_page(c, T, 2, 100, &all)).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert_eq!(db.run(move |c| store::count_after(c, T, 2, &all)).await.unwrap(), 3);

    let pull = |filter: PullFilter<'_>| -> Vec<String> {
        db.run_sync(|c| {
            let page = store::pull_page(c, T, 0, 100, &filter)?;
            assert_eq!(store::count_after(c, T, 0, &filter)?, page.len() as i64);
            Ok(page.into_iter().map(|r| r.mobile_id).collect())
        })
        .unwrap()
    };
    let task = ["task".to_owned()];
    let both = ["north".to_owned(), "south".to_owned()];
    let north = ["north".to_owned()];
    assert_eq!(pull(PullFilter { domains: Some(&task), ..Default::default() }), ["r4", "r2", "r0"]);
    // Unit-limited: records of other units are not visible; records without a unit are.
    assert_eq!(pull(PullFilter { units: Some(&both), ..Default::default() }), ["r4", "r3", "r2", "r1", "r0"]);
    assert_eq!(
        pull(PullFilter { domains: Some(&task), units: Some(&north), ..Default::default() }),
        ["r2", "r0"]
    );
    assert_eq!(pull(PullFilter { units: Some(&[]), ..Default::default() }), ["r2"]);
    assert_eq!(pull(PullFilter { priorities: Some(&[Priority::High]), ..Default::default() }), ["r3", "r0"]);
    assert!(pull(PullFilter { domains: Some(&[]), ..Default::default() }).is_empty());
    assert!(db.run(|c| store::pull_page(c, T, 5, 10, &PullFilter::default())).await.unwrap().is_empty());
}

async fn purge_keeps_current_versions_and_marks_the_tenant(db: Database) {
    // a: v1@1, v2@3 (current); b: v1@2, tombstone v2@4; c: v1@6 (current); d tombstone v1@7
    let a1 = record(T, "task", "a", 1, 1);
    let b1 = record(T, "task", "b", 1, 2);
    let a2 = record(T, "task", "a", 2, 3);
    let mut b2 = record(T, "task", "b", 2, 4);
    b2.deleted = true;
    let c1 = record(T, "task", "c", 1, 6);
    let mut d1 = record(T, "task", "d", 1, 7);
    d1.deleted = true;
    let history: Vec<_> = [&a1, &b1].into_iter().map(version_of).collect();
    let current = vec![a2.clone(), b2.clone(), c1.clone(), d1.clone()];
    let other = record("tenant-b", "task", "a", 2, 2);
    let other_history = vec![version_of(&record("tenant-b", "task", "a", 1, 1))];
    db.write_tx(move |c| {
        store::insert_versions(c, &history)?;
        store::upsert_records(c, &current)?;
        store::upsert_records(c, &[other])?;
        store::insert_versions(c, &other_history)
    })
    .await
    .unwrap();

    assert_eq!(db.run(|c| store::get_purge_mark(c, T)).await.unwrap(), 0);
    let stats = db.write_tx(|c| store::purge(c, T, 6, 99)).await.unwrap();
    // The tombstone b2 (seq 4) and the superseded a1, b1.
    assert_eq!(stats, store::PurgeStats { tombstones: 1, versions: 2 });
    let keys = vec![
        RecordKey::new("task", "a"),
        RecordKey::new("task", "b"),
        RecordKey::new("task", "c"),
        RecordKey::new("task", "d"),
    ];
    let left = db.run(move |c| store::get_records(c, T, &keys)).await.unwrap();
    let mut left: Vec<_> = left.keys().map(|k| k.mobile_id.clone()).collect();
    left.sort();
    assert_eq!(left, ["a", "c", "d"]);
    let wanted: Vec<_> = [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("c", 1), ("d", 1)]
        .into_iter()
        .map(|(id, v)| (RecordKey::new("task", id), v))
        .collect();
    let versions = db.run(move |c| store::get_versions(c, T, &wanted)).await.unwrap();
    let mut kept: Vec<_> = versions.keys().map(|(k, v)| format!("{}{v}", k.mobile_id)).collect();
    kept.sort();
    assert_eq!(kept, ["a2", "c1", "d1"]);
    assert_eq!(db.run(|c| store::get_purge_mark(c, T)).await.unwrap(), 6);
    // The mark never goes down; other tenants are untouched.
    db.write_tx(|c| store::purge(c, T, 2, 100)).await.unwrap();
    assert_eq!(db.run(|c| store::get_purge_mark(c, T)).await.unwrap(), 6);
    let other =
        db.run(|c| store::get_versions(c, "tenant-b", &[(RecordKey::new("task", "a"), 1)])).await.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(db.run(|c| store::get_purge_mark(c, "tenant-b")).await.unwrap(), 0);
}

async fn transactions_commit_roll_back_and_nest(db: Database) {
    let err = db
        .write_tx(|c| {
            store::upsert_records(c, &[record(T, "task", "a", 1, 1)])?;
            Err::<(), _>(Error::InvalidArgument("injected failure".into()))
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected failure"));
    assert_eq!(db.run(|c| store::count_after(c, T, 0, &PullFilter::default())).await.unwrap(), 0);

    // A failing inner transaction is a savepoint: the outer one keeps its own writes.
    db.write_tx(|c| {
        store::upsert_records(c, &[record(T, "task", "a", 1, 1)])?;
        let inner = sync_domain::write_transaction(c, |c| {
            store::upsert_records(c, &[record(T, "task", "b", 1, 2)])?;
            Err::<(), _>(Error::InvalidArgument("inner".into()))
        });
        assert!(inner.is_err());
        Ok(())
    })
    .await
    .unwrap();
    let n = db
        .read_tx(|c| {
            let page = store::pull_page(c, T, 0, 10, &PullFilter::default())?;
            Ok((page.len(), store::count_after(c, T, 0, &PullFilter::default())?))
        })
        .await
        .unwrap();
    assert_eq!(n, (1, 1));

    // The sync entry points behave the same.
    db.write_tx_sync(|c| store::upsert_records(c, &[record(T, "task", "c", 1, 3)])).unwrap();
    assert_eq!(db.read_tx_sync(|c| store::count_after(c, T, 0, &PullFilter::default())).unwrap(), 2);
    assert!(db.ping_sync().unwrap().migrations_current);
    let status = db.pool_status();
    assert!(status.connections >= 1 && status.max_size >= status.connections);
}

/// A pull's `remaining`: exact under the cap; above it, extrapolated from how densely the
/// counted records fill their sequence range.
async fn remaining_is_exact_under_the_cap_and_estimated_above(db: Database) {
    // Sequence numbers 1 to 120: tasks at the even ones, tickets at the odd ones.
    let rows: Vec<RecordRow> = (1..=120)
        .map(|seq| {
            let domain = if seq % 2 == 0 { "task" } else { "ticket" };
            record(T, domain, &format!("r{seq}"), 1, seq)
        })
        .collect();
    db.write_tx(move |c| store::upsert_records(c, &rows)).await.unwrap();
    let counts = |after: i64, filter: PullFilter<'static>, cap: i64| {
        db.run_sync(move |c| {
            Ok((
                store::count_after(c, T, after, &filter)?,
                store::estimate_after(c, T, after, 120, &filter, cap)?,
            ))
        })
        .unwrap()
    };
    let all = PullFilter::default();
    // Under the cap: the count itself.
    assert_eq!(counts(20, all, 1000), (100, 100));
    assert_eq!(counts(120, all, 5), (0, 0));
    // Above it: a dense range extrapolates exactly.
    assert_eq!(counts(20, all, 10), (100, 100));
    // A filter that keeps every other record fills half the range.
    let tasks: &'static [String] = Box::leak(vec!["task".to_owned()].into_boxed_slice());
    let (count, estimate) = counts(0, PullFilter { domains: Some(tasks), ..all }, 10);
    assert_eq!(count, 60);
    assert!((55..=65).contains(&estimate), "estimated {estimate} of {count}");
}

sync_domain::backend_tests!(
    upsert_then_get,
    remaining_is_exact_under_the_cap_and_estimated_above,
    duplicate_keys_in_one_batch_keep_the_highest_version,
    large_batches_are_chunked,
    stale_upserts_and_duplicate_versions_are_write_conflicts,
    versions_by_key_and_as_of_a_cursor,
    allocate_seqs_is_monotonic_per_tenant,
    pull_pages_in_seq_order_with_filters,
    purge_keeps_current_versions_and_marks_the_tenant,
    transactions_commit_roll_back_and_nest,
);
