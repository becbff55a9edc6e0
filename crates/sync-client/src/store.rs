//! The local store: one SQLite file per account, holding the core's state.
//!
//! Every core step runs in one `BEGIN IMMEDIATE` transaction (read, decide, write, commit)
//! with `synchronous = FULL` in WAL mode, so a crash at any point leaves either the state
//! before the step or the state after it: an edit is in the outbox or not yet made, a batch
//! is stored with its key or not yet formed, an answer is taken whole (with the batch
//! removed) or not at all, and a page's records move with the cursor.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::core::{
    Batch, Event, KEPT_BASES, MemoryReplica, Meta, Notice, Pending, RecordId, Replica, ServerRecord, Step,
    View, Write, view,
};
use crate::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    domain TEXT NOT NULL, mobile_id TEXT NOT NULL, epoch INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (domain, mobile_id));
CREATE INDEX IF NOT EXISTS records_epoch ON records (epoch);
CREATE TABLE IF NOT EXISTS pending (
    domain TEXT NOT NULL, mobile_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (domain, mobile_id));
CREATE INDEX IF NOT EXISTS pending_seq ON pending (seq);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bases (
    domain TEXT NOT NULL, mobile_id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (domain, mobile_id, version));
CREATE TABLE IF NOT EXISTS notices (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
PRAGMA user_version = 1;
";

#[derive(QueryableByName)]
struct Body {
    #[diesel(sql_type = Text)]
    body: String,
}

#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = Text)]
    domain: String,
    #[diesel(sql_type = Text)]
    mobile_id: String,
}

/// One account's local database. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<SqliteConnection>>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the account file at `path`. A new file belongs to
    /// `device_id`; an existing one keeps the device id it was made with.
    pub fn open(path: impl AsRef<Path>, device_id: &str) -> Result<Store> {
        if !sync_protocol::limits::is_valid_device_id(device_id) {
            return Err(Error::DeviceId(device_id.to_owned()));
        }
        let path = path.as_ref().to_path_buf();
        let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
        conn.batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;",
        )?;
        conn.immediate_transaction::<_, Error, _>(|conn| {
            conn.batch_execute(SCHEMA)?;
            let found: Vec<Body> = diesel::sql_query("SELECT body FROM meta WHERE id = 1").load(conn)?;
            if found.is_empty() {
                let meta = Meta::new(device_id, Uuid::new_v4());
                diesel::sql_query("INSERT INTO meta (id, body) VALUES (1, ?)")
                    .bind::<Text, _>(to_json(&meta)?)
                    .execute(conn)?;
            }
            Ok(())
        })?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, SqliteConnection> {
        // A panic elsewhere while holding the lock left no half-made transaction behind
        // (SQLite rolled it back), so the connection is still good.
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the local state in one transaction (reads only, or writes through
    /// [`Replica::apply`]).
    pub fn transact<T>(&self, f: impl FnOnce(&mut dyn Replica) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        conn.immediate_transaction::<_, Error, _>(|conn| f(&mut SqliteReplica { conn }))
    }

    /// Runs a read in one deferred transaction (a consistent snapshot that does not block a
    /// writer in WAL mode).
    fn read<T>(&self, f: impl FnOnce(&mut dyn Replica) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        conn.transaction::<_, Error, _>(|conn| f(&mut SqliteReplica { conn }))
    }

    /// Runs one core step in one transaction: decides, writes, commits; returns its events.
    pub fn step(&self, f: impl FnOnce(&mut dyn Replica) -> Result<Step>) -> Result<Vec<Event>> {
        self.transact(|r| {
            let step = f(r)?;
            r.apply(&step.writes)?;
            Ok(step.events)
        })
    }

    pub fn meta(&self) -> Result<Meta> {
        self.read(|r| r.meta())
    }

    /// What the app sees of one record.
    pub fn get(&self, id: &RecordId) -> Result<Option<View>> {
        self.read(|r| view(r, id))
    }

    /// What the app sees of every record of a domain, by id.
    pub fn query(&self, domain: &str) -> Result<Vec<View>> {
        let mut conn = self.lock();
        conn.transaction::<_, Error, _>(|conn| {
            let mut ids: Vec<RecordId> = Vec::new();
            for table in ["records", "pending"] {
                let keys: Vec<Key> =
                    diesel::sql_query(format!("SELECT domain, mobile_id FROM {table} WHERE domain = ?"))
                        .bind::<Text, _>(domain)
                        .load(conn)?;
                ids.extend(
                    keys.into_iter().filter_map(|k| Some(RecordId::new(k.domain, k.mobile_id.parse().ok()?))),
                );
            }
            let mut r = SqliteReplica { conn };
            for batch in r.batches()? {
                ids.extend(batch.items.into_iter().map(|p| p.id).filter(|id| id.domain == domain));
            }
            ids.sort();
            ids.dedup();
            let mut views = Vec::with_capacity(ids.len());
            for id in ids {
                views.extend(view(&mut r, &id)?);
            }
            Ok(views)
        })
    }

    /// Every notice so far (conflicts and refusals), oldest first.
    pub fn notices(&self) -> Result<Vec<Notice>> {
        let mut conn = self.lock();
        let rows: Vec<Body> = diesel::sql_query("SELECT body FROM notices ORDER BY seq").load(&mut *conn)?;
        rows.iter().map(|b| from_json(&b.body)).collect()
    }

    /// The whole state, as the in-memory replica holds it (for tests and diagnostics).
    pub fn snapshot(&self) -> Result<MemoryReplica> {
        let mut conn = self.lock();
        conn.transaction::<_, Error, _>(|conn| {
            let mut r = SqliteReplica { conn };
            let mut m = MemoryReplica::new(r.meta()?);
            let records: Vec<Body> = diesel::sql_query("SELECT body FROM records").load(r.conn)?;
            for b in records {
                let s: ServerRecord = from_json(&b.body)?;
                m.records.insert(s.id.clone(), s);
            }
            for p in r.oldest_pending(usize::MAX)? {
                m.pending.insert(p.id.clone(), p);
            }
            m.batches = r.batches()?;
            m.notices = {
                let rows: Vec<Body> =
                    diesel::sql_query("SELECT body FROM notices ORDER BY seq").load(r.conn)?;
                rows.iter().map(|b| from_json(&b.body)).collect::<Result<_>>()?
            };
            Ok(m)
        })
    }
}

/// The core's view of the SQLite file, inside a transaction.
struct SqliteReplica<'a> {
    conn: &'a mut SqliteConnection,
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(Error::StoredJson)
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(Error::StoredJson)
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqliteReplica<'_> {
    fn one<T: DeserializeOwned>(&mut self, query: diesel::query_builder::SqlQuery) -> Result<Option<T>> {
        let rows: Vec<Body> = query.load(self.conn)?;
        rows.first().map(|b| from_json(&b.body)).transpose()
    }

    fn keyed(
        &self,
        sql: &'static str,
        id: &RecordId,
    ) -> diesel::query_builder::BoxedSqlQuery<'static, diesel::sqlite::Sqlite, diesel::query_builder::SqlQuery>
    {
        diesel::sql_query(sql)
            .into_boxed()
            .bind::<Text, _>(id.domain.clone())
            .bind::<Text, _>(id.mobile_id.to_string())
    }
}

impl Replica for SqliteReplica<'_> {
    fn meta(&mut self) -> Result<Meta> {
        self.one(diesel::sql_query("SELECT body FROM meta WHERE id = 1"))?
            .ok_or_else(|| Error::Protocol("the local store has no meta row".into()))
    }

    fn record(&mut self, id: &RecordId) -> Result<Option<ServerRecord>> {
        let rows: Vec<Body> =
            self.keyed("SELECT body FROM records WHERE domain = ? AND mobile_id = ?", id).load(self.conn)?;
        rows.first().map(|b| from_json(&b.body)).transpose()
    }

    fn pending(&mut self, id: &RecordId) -> Result<Option<Pending>> {
        let rows: Vec<Body> =
            self.keyed("SELECT body FROM pending WHERE domain = ? AND mobile_id = ?", id).load(self.conn)?;
        rows.first().map(|b| from_json(&b.body)).transpose()
    }

    fn oldest_pending(&mut self, limit: usize) -> Result<Vec<Pending>> {
        let rows: Vec<Body> = diesel::sql_query("SELECT body FROM pending ORDER BY seq LIMIT ?")
            .bind::<BigInt, _>(int(limit as u64))
            .load(self.conn)?;
        rows.iter().map(|b| from_json(&b.body)).collect()
    }

    fn batches(&mut self) -> Result<Vec<Batch>> {
        let rows: Vec<Body> = diesel::sql_query("SELECT body FROM batches ORDER BY seq").load(self.conn)?;
        rows.iter().map(|b| from_json(&b.body)).collect()
    }

    fn base(&mut self, id: &RecordId, version: i64) -> Result<Option<Value>> {
        #[derive(QueryableByName)]
        struct Data {
            #[diesel(sql_type = Text)]
            data: String,
        }
        let rows: Vec<Data> = self
            .keyed("SELECT data FROM bases WHERE domain = ? AND mobile_id = ? AND version = ?", id)
            .bind::<BigInt, _>(version)
            .load(self.conn)?;
        rows.first().map(|d| from_json(&d.data)).transpose()
    }

    fn records_before_epoch(&mut self, epoch: u64) -> Result<Vec<RecordId>> {
        let keys: Vec<Key> = diesel::sql_query("SELECT domain, mobile_id FROM records WHERE epoch < ?")
            .bind::<BigInt, _>(int(epoch))
            .load(self.conn)?;
        Ok(keys
            .into_iter()
            .filter_map(|k| Some(RecordId::new(k.domain, k.mobile_id.parse().ok()?)))
            .collect())
    }

    fn apply(&mut self, writes: &[Write]) -> Result<()> {
        for write in writes {
            self.write(write)?;
        }
        Ok(())
    }
}

impl SqliteReplica<'_> {
    fn write(&mut self, write: &Write) -> Result<()> {
        match write {
            Write::Meta(meta) => {
                diesel::sql_query("UPDATE meta SET body = ? WHERE id = 1")
                    .bind::<Text, _>(to_json(meta)?)
                    .execute(self.conn)?;
            }
            Write::Record(record) => {
                self.keyed(
                    "INSERT OR REPLACE INTO records (domain, mobile_id, epoch, body) VALUES (?, ?, ?, ?)",
                    &record.id,
                )
                .bind::<BigInt, _>(int(record.epoch))
                .bind::<Text, _>(to_json(record)?)
                .execute(self.conn)?;
            }
            Write::RemoveRecord(id) => {
                self.keyed("DELETE FROM records WHERE domain = ? AND mobile_id = ?", id)
                    .execute(self.conn)?;
                self.keyed("DELETE FROM bases WHERE domain = ? AND mobile_id = ?", id).execute(self.conn)?;
            }
            Write::Pending(pending) => {
                self.keyed(
                    "INSERT OR REPLACE INTO pending (domain, mobile_id, seq, body) VALUES (?, ?, ?, ?)",
                    &pending.id,
                )
                .bind::<BigInt, _>(int(pending.seq))
                .bind::<Text, _>(to_json(pending)?)
                .execute(self.conn)?;
            }
            Write::RemovePending(id) => {
                self.keyed("DELETE FROM pending WHERE domain = ? AND mobile_id = ?", id)
                    .execute(self.conn)?;
            }
            Write::Batch(batch) => {
                diesel::sql_query("INSERT INTO batches (key, body) VALUES (?, ?)")
                    .bind::<Text, _>(&batch.key)
                    .bind::<Text, _>(to_json(batch)?)
                    .execute(self.conn)?;
            }
            Write::RemoveBatch(key) => {
                diesel::sql_query("DELETE FROM batches WHERE key = ?")
                    .bind::<Text, _>(key)
                    .execute(self.conn)?;
            }
            Write::Base { id, version, data } => {
                self.keyed(
                    "INSERT OR REPLACE INTO bases (domain, mobile_id, version, data) VALUES (?, ?, ?, ?)",
                    id,
                )
                .bind::<BigInt, _>(*version)
                .bind::<Text, _>(to_json(data)?)
                .execute(self.conn)?;
                self.keyed(
                    "DELETE FROM bases WHERE domain = ? AND mobile_id = ? AND version NOT IN \
                     (SELECT version FROM bases WHERE domain = ?1 AND mobile_id = ?2 ORDER BY version DESC LIMIT ?)",
                    id,
                )
                .bind::<BigInt, _>(int(KEPT_BASES as u64))
                .execute(self.conn)?;
            }
            Write::Notice(notice) => {
                diesel::sql_query("INSERT INTO notices (body) VALUES (?)")
                    .bind::<Text, _>(to_json(notice)?)
                    .execute(self.conn)?;
            }
        }
        Ok(())
    }
}
