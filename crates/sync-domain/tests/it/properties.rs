//! Laws, checked with proptest (on in-memory SQLite, where a database costs a few ms).

use std::collections::BTreeMap;

use proptest::prelude::*;
use sync_domain::store::{self, PullFilter, RecordRow};
use sync_domain::{Database, micros};
use sync_model::Priority;

use crate::common::record;

const T: &str = "t";
const DOMAINS: [&str; 3] = ["task", "ticket", "journal"];
const UNITS: [Option<&str>; 3] = [None, Some("north"), Some("south")];

/// One write: record `id` (of `DOMAINS[domain]`) gets a new version with the next sequence
/// number.
#[derive(Debug, Clone)]
struct Write {
    id: u8,
    domain: usize,
    unit: usize,
    priority: usize,
}

fn writes() -> impl Strategy<Value = Vec<Write>> {
    prop::collection::vec(
        (0_u8..12, 0_usize..3, 0_usize..3, 0_usize..3).prop_map(|(id, domain, unit, priority)| Write {
            id,
            domain,
            unit,
            priority,
        }),
        0..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Paging with any page size from any filter returns every matching record exactly once,
    /// at its latest version, in sequence order; `count_after` at each cursor is what is left.
    #[test]
    fn paging_partitions_the_matching_records(
        writes in writes(),
        page_size in 1_i64..8,
        domains in prop::option::of(prop::sample::subsequence(DOMAINS.to_vec(), 0..=3)),
        units in prop::option::of(prop::sample::subsequence(vec!["north", "south"], 0..=2)),
    ) {
        let db = Database::connect("sqlite::memory:", Default::default()).unwrap();
        db.migrate().unwrap();
        // The model: the latest state of each (domain, id).
        let mut latest: BTreeMap<(String, String), RecordRow> = BTreeMap::new();
        for (i, w) in writes.iter().enumerate() {
            let key = (DOMAINS[w.domain].to_owned(), format!("r{}", w.id));
            let version = latest.get(&key).map_or(1, |r| r.version + 1);
            let mut row = record(T, &key.0, &key.1, version, i as i64 + 1);
            row.bu = UNITS[w.unit].map(Into::into);
            row.priority = Priority::ALL[w.priority];
            db.write_tx_sync(|c| store::upsert_records(c, std::slice::from_ref(&row))).unwrap();
            latest.insert(key, row);
        }
        let domains: Option<Vec<String>> = domains.map(|d| d.into_iter().map(Into::into).collect());
        let units: Option<Vec<String>> = units.map(|u| u.into_iter().map(Into::into).collect());
        let filter = PullFilter { domains: domains.as_deref(), units: units.as_deref(), priorities: None };
        let mut expected: Vec<RecordRow> = latest
            .into_values()
            .filter(|r| domains.as_ref().is_none_or(|d| d.contains(&r.domain)))
            .filter(|r| units.as_ref().is_none_or(|u| r.bu.as_ref().is_none_or(|b| u.contains(b))))
            .collect();
        expected.sort_by_key(|r| r.seq);

        let mut pulled = Vec::new();
        let mut cursor = 0;
        loop {
            let (page, remaining) = db
                .read_tx_sync(|c| {
                    let page = store::pull_page(c, T, cursor, page_size, &filter)?;
                    Ok((page, store::count_after(c, T, cursor, &filter)?))
                })
                .unwrap();
            prop_assert_eq!(remaining as usize, expected.len() - pulled.len());
            prop_assert!(page.len() as i64 <= page_size);
            let Some(last) = page.last() else { break };
            cursor = last.seq;
            pulled.extend(page);
        }
        prop_assert_eq!(pulled, expected);
    }

    /// Stored times round-trip through `OffsetDateTime` exactly.
    #[test]
    fn micros_round_trip(m in -62_135_596_800_000_000_i64..253_402_300_799_999_999) {
        let t = micros::to_datetime(m).unwrap();
        prop_assert_eq!(micros::from_datetime(t), m);
    }
}
