//! A seeded, randomized multi-device scenario: devices edit while offline, lose responses,
//! retry with the same keys and deliver twice. At the end every device that pulls to the end
//! holds exactly the server's state, and every acknowledged change is either in the history
//! or was overruled by its policy and logged as a conflict.

use std::collections::{BTreeMap, HashSet};
use sync_domain::engine::Identity;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use sync_domain::{
    Database,
    protocol::{Change, Outcome, PullRequest, PushRequest, PushResponse},
    store::{self, RecordKey},
};

use super::*;

type Key = (String, Uuid);

#[derive(Debug, Clone, PartialEq)]
struct Local {
    version: i64,
    data: Value,
    deleted: bool,
}

struct Device {
    name: String,
    who: Principal,
    online: bool,
    replica: BTreeMap<Key, Local>,
    /// Pushes not yet acknowledged, oldest first, each with its idempotency key.
    outbox: Vec<(String, PushRequest)>,
    cursor: Option<String>,
    next_key: u32,
}

impl Device {
    fn edit(&mut self, rng: &mut StdRng, known_ids: &mut Vec<Key>, minute: i64) {
        let domains = ["journal", "task", "work_order"];
        let create = known_ids.is_empty() || rng.random_bool(0.3);
        let key: Key = if create {
            let key = (
                domains[rng.random_range(0..domains.len())].to_owned(),
                Uuid::from_u128(rng.random::<u128>()),
            );
            known_ids.push(key.clone());
            key
        } else {
            known_ids[rng.random_range(0..known_ids.len())].clone()
        };
        let local = self.replica.get(&key).cloned();
        let base = local.as_ref().map_or(0, |l| l.version);
        let title = format!("{} edit {}", self.name, rng.random_range(0..1000));
        let data = match key.0.as_str() {
            "task" => json!({"title": title, "status": "ASSIGNED", "n": rng.random_range(0..5)}),
            _ => json!({"title": title, "n": rng.random_range(0..5)}),
        };
        let change = if local.as_ref().is_some_and(|l| !l.deleted) && rng.random_bool(0.1) {
            delete(&key.0, key.1, base, minute)
        } else {
            upsert(&key.0, key.1, base, data, minute)
        };
        self.next_key += 1;
        let request = PushRequest { device_id: self.name.clone(), client_time: None, changes: vec![change] };
        self.outbox.push((format!("{}-{}", self.name, self.next_key), request));
    }

    /// Takes what the server said about one pushed change into the replica. A late
    /// acknowledgement (a replay after the device already pulled newer versions) never
    /// moves a record backwards.
    fn absorb(&mut self, change: &Change, result: &sync_domain::protocol::ChangeResult) {
        let key = (change.domain.clone(), change.mobile_id);
        let held = self.replica.get(&key).map_or(0, |l| l.version);
        if result.version.is_some_and(|v| v < held) {
            return;
        }
        match (result.outcome, &result.record, result.version) {
            (_, Some(record), _) => {
                self.replica.insert(
                    key,
                    Local {
                        version: record.version,
                        data: record.data.clone().unwrap_or(Value::Null),
                        deleted: record.deleted,
                    },
                );
            }
            (Outcome::Applied | Outcome::ClientWon, None, Some(version)) => {
                let deleted = change.op == sync_domain::protocol::Op::Delete;
                let data = change.data.clone().or_else(|| self.replica.get(&key).map(|l| l.data.clone()));
                self.replica.insert(key, Local { version, data: data.unwrap_or(Value::Null), deleted });
            }
            // Manual, invalid: the device learns the server's state on its next pull.
            _ => {}
        }
    }

    async fn pull(&mut self, engine: &SyncEngine) {
        loop {
            let request = PullRequest {
                cursor: self.cursor.clone(),
                limit: Some(5),
                device_id: Some(self.name.clone()),
                ..PullRequest::default()
            };
            let response = engine.pull(&self.who, request, &Identity).await.unwrap().response().unwrap();
            for record in response.changes {
                self.replica.insert(
                    (record.domain.clone(), record.mobile_id),
                    Local {
                        version: record.version,
                        data: record.data.unwrap_or(Value::Null),
                        deleted: record.deleted,
                    },
                );
            }
            self.cursor = Some(response.cursor);
            if !response.has_more {
                return;
            }
        }
    }
}

/// Every acknowledgement a device received: (change, result).
type Acks = Vec<(Change, sync_domain::protocol::ChangeResult)>;

/// Runs one scenario; returns how many pushed changes met a conflict.
async fn run_scenario(db: Database, seed: u64, steps: usize) -> usize {
    let engine = engine(db.clone());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut devices: Vec<Device> = (0..4)
        .map(|i| Device {
            name: format!("dev{i}"),
            who: device("acme", &format!("user{}", i % 2)),
            online: true,
            replica: BTreeMap::new(),
            outbox: Vec::new(),
            cursor: None,
            next_key: 0,
        })
        .collect();
    let mut known_ids: Vec<Key> = Vec::new();
    let mut acks: Acks = Vec::new();
    let mut replies: BTreeMap<String, String> = BTreeMap::new();

    for step in 0..steps {
        let d = rng.random_range(0..devices.len());
        let minute = i64::try_from(step).unwrap();
        match rng.random_range(0..10) {
            0..=3 => devices[d].edit(&mut rng, &mut known_ids, minute),
            4 => devices[d].online = !devices[d].online,
            5..=7 if devices[d].online && !devices[d].outbox.is_empty() => {
                let (key, request) = devices[d].outbox[0].clone();
                let reply = engine.push(&devices[d].who, &key, request.clone(), None).await.unwrap();
                if let Some(first) = replies.get(&key) {
                    assert_eq!(first, &reply.body, "a retry replays the first response");
                }
                replies.insert(key.clone(), reply.body.clone());
                // Sometimes the response is lost on the way back: the device retries later.
                if rng.random_bool(0.2) {
                    continue;
                }
                // Sometimes the network delivers the request twice.
                if rng.random_bool(0.2) {
                    let twice = engine.push(&devices[d].who, &key, request.clone(), None).await.unwrap();
                    assert!(twice.replayed);
                    assert_eq!(twice.body, reply.body);
                }
                let response: PushResponse = serde_json::from_str(&reply.body).unwrap();
                for (change, result) in request.changes.iter().zip(&response.results) {
                    devices[d].absorb(change, result);
                    acks.push((change.clone(), result.clone()));
                }
                devices[d].outbox.remove(0);
            }
            _ if devices[d].online => devices[d].pull(&engine).await,
            _ => {}
        }
    }

    // Everyone comes back, sends what is left, and pulls to the end.
    for device in &mut devices {
        device.online = true;
        while !device.outbox.is_empty() {
            let (key, request) = device.outbox.remove(0);
            let reply = engine.push(&device.who, &key, request.clone(), None).await.unwrap();
            let response: PushResponse = serde_json::from_str(&reply.body).unwrap();
            for (change, result) in request.changes.iter().zip(&response.results) {
                device.absorb(change, result);
                acks.push((change.clone(), result.clone()));
            }
        }
    }
    for device in &mut devices {
        device.pull(&engine).await;
    }

    let (server, _) = pull_all(&engine, &device("acme", "auditor"), None, false).await;
    let server: BTreeMap<Key, Local> = server
        .into_iter()
        .map(|r| {
            (
                (r.domain.clone(), r.mobile_id),
                Local { version: r.version, data: r.data.unwrap_or(Value::Null), deleted: r.deleted },
            )
        })
        .collect();
    for device in &devices {
        assert_eq!(device.replica, server, "seed {seed}: {} diverged from the server", device.name);
    }

    let logged: HashSet<String> =
        engine.conflicts(&admin("acme"), None, 1000).await.unwrap().into_iter().map(|c| c.id).collect();
    let wanted: Vec<(RecordKey, i64)> = acks
        .iter()
        .filter_map(|(change, result)| {
            let version =
                result.version.filter(|_| matches!(result.outcome, Outcome::Applied | Outcome::ClientWon))?;
            Some((RecordKey::new(change.domain.clone(), change.mobile_id.to_string()), version))
        })
        .collect();
    let history = db.run_sync(|c| store::get_versions(c, "acme", &wanted)).unwrap();
    for (change, result) in &acks {
        match result.outcome {
            Outcome::Applied | Outcome::ClientWon => {
                let version = result.version.unwrap();
                let key = (RecordKey::new(change.domain.clone(), change.mobile_id.to_string()), version);
                let stored = history
                    .get(&key)
                    .unwrap_or_else(|| panic!("seed {seed}: acknowledged {key:?} is not in the history"));
                if let Some(data) = &change.data {
                    assert_eq!(
                        &serde_json::from_str::<Value>(&stored.data).unwrap(),
                        data,
                        "seed {seed}: {key:?}"
                    );
                }
            }
            Outcome::ServerWon | Outcome::Merged | Outcome::ManualRequired => {
                let conflict = result
                    .conflict
                    .as_ref()
                    .unwrap_or_else(|| panic!("seed {seed}: overruled without a conflict"));
                assert!(
                    logged.contains(&conflict.id.to_string()),
                    "seed {seed}: conflict {} is not in the log",
                    conflict.id
                );
            }
            Outcome::Invalid => {}
        }
        if let Some(conflict) = &result.conflict {
            assert!(
                logged.contains(&conflict.id.to_string()),
                "seed {seed}: conflict {} is not in the log",
                conflict.id
            );
        }
    }
    assert!(acks.len() > steps / 10, "seed {seed}: the scenario pushed too little ({})", acks.len());
    acks.iter().filter(|(_, r)| r.conflict.is_some()).count()
}

async fn devices_converge(db: Database) {
    let mut conflicts = 0;
    for seed in [1, 7, 42] {
        let db = sync_domain::testing::TestDb::new(db.backend()).unwrap();
        conflicts += run_scenario(db.database().clone(), seed, 160).await;
    }
    assert!(conflicts >= 3, "the scenarios must exercise conflicts (got {conflicts})");
}

sync_domain::backend_tests!(devices_converge);
