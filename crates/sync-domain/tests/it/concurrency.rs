//! The no-skip design at the storage level: writers take sequence numbers with
//! `allocate_seqs` inside their transactions and hold them open for a while; a reader pulls
//! page after page behind its cursor. Every committed sequence number must reach the reader,
//! in order, exactly once: a number that committed after a higher one had been pulled would be
//! skipped forever.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sync_domain::store::{self, PullFilter, RecordRow, VersionRow};
use sync_domain::{Database, Error};

use crate::common::{record, version_of};

const T: &str = "tenant-a";
const WRITERS: usize = 4;
const TRANSACTIONS: usize = 30;

async fn concurrent_writers_never_skip_a_sequence_number(db: Database) {
    tokio::task::spawn_blocking(move || scenario(&db)).await.unwrap();
}

fn scenario(db: &Database) {
    let finished = AtomicUsize::new(0);
    let committed = Mutex::new(Vec::<i64>::new());
    let seen = std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (finished, committed) = (&finished, &committed);
            s.spawn(move || {
                for t in 0..TRANSACTIONS {
                    let n = 1 + (w + t) % 4;
                    let result = db.write_tx_sync(|c| {
                        // Another tenant's writer never waits for this one.
                        store::allocate_seqs(c, "tenant-other", 1)?;
                        let first = store::allocate_seqs(c, T, n as i64)?;
                        // Keep the transaction open after taking the numbers: with a plain
                        // sequence, this is when a later number could commit first.
                        std::thread::sleep(Duration::from_millis(2));
                        let rows: Vec<RecordRow> = (0..n)
                            .map(|i| record(T, "task", &format!("w{w}-t{t}-{i}"), 1, first + i as i64))
                            .collect();
                        let versions: Vec<VersionRow> = rows.iter().map(version_of).collect();
                        store::upsert_records(c, &rows)?;
                        store::insert_versions(c, &versions)?;
                        if t % 7 == 3 {
                            return Err(Error::InvalidArgument("injected rollback".into()));
                        }
                        Ok(first..first + n as i64)
                    });
                    match result {
                        Ok(seqs) => committed.lock().unwrap().extend(seqs),
                        Err(Error::InvalidArgument(_)) => {}
                        Err(e) => panic!("writer {w} failed: {e}"),
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        let reader = s.spawn(|| {
            let (mut cursor, mut seen, mut pulls) = (0_i64, Vec::new(), 0_u64);
            loop {
                // Read the flag before pulling: the last pull then starts after every commit.
                let done = finished.load(Ordering::SeqCst) == WRITERS;
                let page =
                    db.run_sync(|c| store::pull_page(c, T, cursor, 5, &PullFilter::default())).unwrap();
                pulls += 1;
                for row in &page {
                    seen.push(row.seq);
                    cursor = row.seq;
                }
                if page.is_empty() && done {
                    break (seen, pulls);
                }
            }
        });
        reader.join().unwrap()
    });
    let (seen, pulls) = seen;
    let mut committed = committed.into_inner().unwrap();
    committed.sort_unstable();
    assert!(pulls > 10, "the reader should have pulled while writers were running ({pulls} pulls)");
    let missing: Vec<&i64> = committed.iter().filter(|s| seen.binary_search(s).is_err()).collect();
    assert!(missing.is_empty(), "the reader skipped committed sequence numbers {missing:?}");
    assert_eq!(seen, committed, "the reader saw a sequence number twice or one that never committed");
    // Rolled-back transactions give their numbers back: the committed sequence has no gaps.
    assert_eq!(committed, (1..=committed.len() as i64).collect::<Vec<_>>());
}

sync_domain::backend_tests!(concurrent_writers_never_skip_a_sequence_number);
