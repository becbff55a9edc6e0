//! Records, their history, the change sequence, pulls and purge.

use std::collections::{BTreeMap, HashMap, HashSet};

use diesel::prelude::*;
use diesel::upsert::excluded;
use sync_model::Priority;

use super::{KEYS_PER_LOOKUP, rows_per_insert};
use crate::db::{DbConnection, MultiBackend, write_transaction};
use crate::error::{Error, Result};
use crate::schema::{change_counters, purge_marks, record_versions, records};

/// Identifies a record within a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    /// Domain name (`task`, `ticket`, …).
    pub domain: String,
    /// The id the creating device gave the record.
    pub mobile_id: String,
}

impl RecordKey {
    /// A key from its parts.
    pub fn new(domain: impl Into<String>, mobile_id: impl Into<String>) -> Self {
        RecordKey { domain: domain.into(), mobile_id: mobile_id.into() }
    }
}

/// Reads a `sync_model::Priority` from its TEXT column (`RecordRow::priority`).
///
/// Public only because derived diesel impls name it; use [`Priority`] directly.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, diesel::deserialize::FromSqlRow)]
pub struct PriorityText(pub Priority);

impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for PriorityText
where
    DB: diesel::backend::Backend,
    String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        let text = <String as diesel::deserialize::FromSql<diesel::sql_types::Text, DB>>::from_sql(bytes)?;
        Ok(PriorityText(text.parse::<Priority>()?))
    }
}

impl From<PriorityText> for Priority {
    fn from(p: PriorityText) -> Priority {
        p.0
    }
}

/// The latest state of a record (table `records`).
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = records)]
pub struct RecordRow {
    /// Owning tenant.
    pub tenant_id: String,
    /// Domain name.
    pub domain: String,
    /// Record id made by the creating device.
    pub mobile_id: String,
    /// 1 on create, +1 on every accepted change.
    pub version: i64,
    /// The domain's fields, as JSON text (for a tombstone: the last state).
    pub data: String,
    /// Tombstone flag.
    pub deleted: bool,
    /// Device time of the change, skew-corrected (µs).
    pub modified_at: i64,
    /// Server time of the change (µs).
    pub server_modified_at: i64,
    /// Device that made the change.
    pub modified_by_device: String,
    /// Business unit, if any.
    pub bu: Option<String>,
    /// How urgently the record should reach devices.
    #[diesel(deserialize_as = PriorityText)]
    pub priority: Priority,
    /// The change sequence number of this version (unique per tenant).
    pub seq: i64,
}

impl RecordRow {
    /// This record's key.
    pub fn key(&self) -> RecordKey {
        RecordKey::new(self.domain.clone(), self.mobile_id.clone())
    }

    /// `data` parsed as JSON.
    pub fn data_json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.data)?)
    }

    /// This state as a version: what goes to history once it is superseded (until then the
    /// record's row is its current version). The version was written at `server_modified_at`.
    pub fn to_version(&self) -> VersionRow {
        VersionRow {
            tenant_id: self.tenant_id.clone(),
            domain: self.domain.clone(),
            mobile_id: self.mobile_id.clone(),
            version: self.version,
            data: self.data.clone(),
            deleted: self.deleted,
            modified_at: self.modified_at,
            server_modified_at: self.server_modified_at,
            modified_by_device: self.modified_by_device.clone(),
            seq: self.seq,
            created_at: self.server_modified_at,
            bu: self.bu.clone(),
        }
    }
}

/// Borrowed insert view of a [`RecordRow`] (the priority goes in as its text).
#[derive(Insertable)]
#[diesel(table_name = records)]
#[diesel(treat_none_as_default_value = false)]
struct NewRecord<'a> {
    tenant_id: &'a str,
    domain: &'a str,
    mobile_id: &'a str,
    version: i64,
    data: &'a str,
    deleted: bool,
    modified_at: i64,
    server_modified_at: i64,
    modified_by_device: &'a str,
    bu: Option<&'a str>,
    priority: &'static str,
    seq: i64,
}

impl<'a> From<&'a RecordRow> for NewRecord<'a> {
    fn from(r: &'a RecordRow) -> Self {
        NewRecord {
            tenant_id: &r.tenant_id,
            domain: &r.domain,
            mobile_id: &r.mobile_id,
            version: r.version,
            data: &r.data,
            deleted: r.deleted,
            modified_at: r.modified_at,
            server_modified_at: r.server_modified_at,
            modified_by_device: &r.modified_by_device,
            bu: r.bu.as_deref(),
            priority: r.priority.as_str(),
            seq: r.seq,
        }
    }
}

/// One version of a record. Table `record_versions` holds the superseded ones; a record's
/// current version is its row in `records` ([`RecordRow::to_version`]), never in both: a new
/// record is written once, and each change moves the version it replaces into history. The
/// readers of versions ([`get_versions`], [`versions_as_of`], [`tenant_history`]) see both.
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = record_versions)]
#[diesel(treat_none_as_default_value = false)]
pub struct VersionRow {
    /// Owning tenant.
    pub tenant_id: String,
    /// Domain name.
    pub domain: String,
    /// Record id.
    pub mobile_id: String,
    /// The version number.
    pub version: i64,
    /// The record's data at this version (JSON text).
    pub data: String,
    /// Whether this version is a tombstone.
    pub deleted: bool,
    /// Device time of the change (µs).
    pub modified_at: i64,
    /// Server time of the change (µs).
    pub server_modified_at: i64,
    /// Device that made the change.
    pub modified_by_device: String,
    /// Change sequence number of this version.
    pub seq: i64,
    /// When the row was written (µs), for time-based retention.
    pub created_at: i64,
    /// The record's business unit at this version, if any: a user limited to units never held
    /// a version of another unit, so a delta pull does not start from one.
    pub bu: Option<String>,
}

impl VersionRow {
    /// This version's record key.
    pub fn key(&self) -> RecordKey {
        RecordKey::new(self.domain.clone(), self.mobile_id.clone())
    }

    /// `data` parsed as JSON.
    pub fn data_json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.data)?)
    }
}

/// Which records a pull or a count sees, besides the tenant and the cursor.
#[derive(Debug, Clone, Copy, Default)]
pub struct PullFilter<'a> {
    /// Only these domains (`None`: all).
    pub domains: Option<&'a [String]>,
    /// Only records whose `bu` is one of these, or that have no unit (a record without a unit
    /// belongs to the whole tenant); `None`: all records.
    pub units: Option<&'a [String]>,
    /// Only these priorities (`None`: all), e.g. `[High]` for queue status or partial sync.
    pub priorities: Option<&'a [Priority]>,
}

type BoxedRecords<'a> = records::BoxedQuery<'a, MultiBackend>;

impl<'a> PullFilter<'a> {
    fn apply(&self, mut query: BoxedRecords<'a>) -> BoxedRecords<'a> {
        if let Some(domains) = self.domains {
            query = query.filter(records::domain.eq_any(domains));
        }
        if let Some(units) = self.units {
            // A record without a unit belongs to the whole tenant.
            query = query.filter(records::bu.is_null().or(records::bu.eq_any(units)));
        }
        if let Some(priorities) = self.priorities {
            query = query.filter(records::priority.eq_any(priorities.iter().map(|p| p.as_str())));
        }
        query
    }
}

/// `tenant`'s records after `after_seq` that pass `filter`: the base of a pull page, its count
/// and its estimate.
fn records_after<'q>(tenant: &'q str, after_seq: i64, filter: &PullFilter<'q>) -> BoxedRecords<'q> {
    filter.apply(
        records::table
            .filter(records::tenant_id.eq(tenant))
            .filter(records::seq.gt(after_seq))
            .into_boxed::<MultiBackend>(),
    )
}

/// Takes `n` consecutive sequence numbers for `tenant` and returns the first.
///
/// Call it inside the write transaction, as late as possible (just before writing the
/// records): the counter row stays locked until commit, which is what makes one tenant's
/// sequence numbers commit in order (see the crate docs). The counter row is created on first
/// use. `n` must be at least 1.
pub fn allocate_seqs(conn: &mut DbConnection, tenant: &str, n: i64) -> Result<i64> {
    if n < 1 {
        return Err(Error::InvalidArgument(format!("allocate_seqs needs n >= 1, got {n}")));
    }
    // One statement, creating the row or incrementing it; the row lock is held to commit.
    let last: i64 = crate::dispatch!(conn, c => diesel::insert_into(change_counters::table)
        .values((change_counters::tenant_id.eq(tenant), change_counters::last_seq.eq(n)))
        .on_conflict(change_counters::tenant_id)
        .do_update()
        .set(change_counters::last_seq.eq(change_counters::last_seq + excluded(change_counters::last_seq)))
        .returning(change_counters::last_seq)
        .get_result(c))?;
    Ok(last - n + 1)
}

/// The last sequence number handed out for `tenant` (0 if none) as seen by this transaction.
pub fn current_seq(conn: &mut DbConnection, tenant: &str) -> Result<i64> {
    Ok(change_counters::table
        .filter(change_counters::tenant_id.eq(tenant))
        .select(change_counters::last_seq)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0))
}

/// Splits `groups` (a condition value and the ids that share it) into batches of at most
/// `max` ids, so that no statement binds too many values. Ids are sorted and deduplicated.
fn batches<'k, K: Ord + Copy>(groups: BTreeMap<K, Vec<&'k str>>, max: usize) -> Vec<Vec<(K, Vec<&'k str>)>> {
    let mut out: Vec<Vec<(K, Vec<&'k str>)>> = Vec::new();
    let mut current: Vec<(K, Vec<&'k str>)> = Vec::new();
    let mut size = 0;
    for (key, mut ids) in groups {
        ids.sort_unstable();
        ids.dedup();
        for part in ids.chunks(max) {
            if size + part.len() > max && !current.is_empty() {
                out.push(std::mem::take(&mut current));
                size = 0;
            }
            size += part.len();
            current.push((key, part.to_vec()));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Keys grouped by domain, in batches of at most [`KEYS_PER_LOOKUP`] ids.
fn by_domain(keys: &[RecordKey]) -> Vec<Vec<(&str, Vec<&str>)>> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for key in keys {
        groups.entry(key.domain.as_str()).or_default().push(key.mobile_id.as_str());
    }
    batches(groups, KEYS_PER_LOOKUP)
}

/// PostgreSQL's look-ups by key: one statement for any number of keys, the keys bound as arrays
/// (`unnest`) and each joined `LATERAL` to a probe of the primary key by its whole key. The
/// simpler `domain = ? AND mobile_id = ANY(?)` leaves the index to the planner's estimate of the
/// tenant's rows, and with no statistics yet (a new table, autovacuum not yet run) PostgreSQL
/// expected a few rows for the `(tenant_id, domain)` prefix, walked it and filtered the ids:
/// every row of the tenant, 26 ms for a push's 100 keys at 40,000 records (docs/benchmarks.md,
/// "PostgreSQL: look-ups by key and ordered pages"). Each subquery has a `LIMIT` (or `FOR
/// UPDATE`) so that the planner keeps it a probe per key: flattened into a plain join with
/// `unnest`, PostgreSQL hash-joins the keys against a scan of the tenant. The statements are
/// public for the test that reads their plans: `$1` is the tenant, then the keys' arrays.
pub mod by_key_sql {
    /// The current rows of keys `($2 domains, $3 ids)`.
    pub const RECORDS: &str = "SELECT r.* FROM unnest($2::text[], $3::text[]) AS k(domain, mobile_id) \
         CROSS JOIN LATERAL (SELECT * FROM records WHERE tenant_id = $1 AND domain = k.domain \
         AND mobile_id = k.mobile_id LIMIT 1) AS r";
    /// [`RECORDS`], locked (`FOR UPDATE`) in the order of the arrays.
    pub const RECORDS_FOR_UPDATE: &str = "SELECT r.* \
         FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS k(domain, mobile_id, n) \
         CROSS JOIN LATERAL (SELECT * FROM records WHERE tenant_id = $1 AND domain = k.domain \
         AND mobile_id = k.mobile_id FOR UPDATE) AS r ORDER BY k.n";
    /// The versions `($2 domains, $3 ids, $4 versions)` from history.
    pub const VERSIONS: &str = "SELECT v.* \
         FROM unnest($2::text[], $3::text[], $4::int8[]) AS k(domain, mobile_id, version) \
         CROSS JOIN LATERAL (SELECT * FROM record_versions WHERE tenant_id = $1 \
         AND domain = k.domain AND mobile_id = k.mobile_id AND version = k.version LIMIT 1) AS v";
    /// For each key `($2 domains, $3 ids)`, its latest version in history with `seq <= $4`.
    pub const VERSIONS_AS_OF: &str = "SELECT v.* FROM unnest($2::text[], $3::text[]) AS k(domain, mobile_id) \
         CROSS JOIN LATERAL (SELECT * FROM record_versions WHERE tenant_id = $1 \
         AND domain = k.domain AND mobile_id = k.mobile_id AND seq <= $4 \
         ORDER BY version DESC LIMIT 1) AS v";
}

/// `keys` sorted and without duplicates.
fn sorted_keys(keys: &[RecordKey]) -> Vec<&RecordKey> {
    let mut sorted: Vec<&RecordKey> = keys.iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

type TextArray = diesel::sql_types::Array<diesel::sql_types::Text>;

/// `sql`, one of [`by_key_sql`], with its first three parameters bound: the tenant and the
/// arrays of `keys`' domains and ids, in the order given.
fn by_key<'a>(
    sql: &'a str,
    tenant: &'a str,
    keys: &[&'a RecordKey],
) -> diesel::query_builder::BoxedSqlQuery<'a, diesel::pg::Pg, diesel::query_builder::SqlQuery> {
    let (domains, ids): (Vec<&str>, Vec<&str>) =
        keys.iter().map(|k| (k.domain.as_str(), k.mobile_id.as_str())).unzip();
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<diesel::sql_types::Text, _>(tenant)
        .bind::<TextArray, _>(domains)
        .bind::<TextArray, _>(ids)
}

/// Loads the current rows of `keys` (missing records are absent from the map).
///
/// PostgreSQL: see [`by_key_sql`]. SQLite: one statement per 500 keys,
/// `(tenant_id = ? AND domain = ? AND mobile_id IN (…)) OR …` with one branch per domain, the
/// tenant repeated in every branch rather than put outside the `OR`, so that it probes the key
/// (its planner statistics are seeded by a migration).
pub fn get_records(
    conn: &mut DbConnection,
    tenant: &str,
    keys: &[RecordKey],
) -> Result<HashMap<RecordKey, RecordRow>> {
    if let DbConnection::Pg(pg) = conn {
        let rows: Vec<RecordRow> = by_key(by_key_sql::RECORDS, tenant, &sorted_keys(keys)).load(pg)?;
        return Ok(rows.into_iter().map(|row| (row.key(), row)).collect());
    }
    let mut found = HashMap::with_capacity(keys.len());
    for batch in by_domain(keys) {
        let mut query = records::table.into_boxed::<MultiBackend>();
        for (i, (domain, ids)) in batch.into_iter().enumerate() {
            let branch = records::tenant_id
                .eq(tenant)
                .and(records::domain.eq(domain))
                .and(records::mobile_id.eq_any(ids));
            query = if i == 0 { query.filter(branch) } else { query.or_filter(branch) };
        }
        for row in query.select(RecordRow::as_select()).load::<RecordRow>(conn)? {
            found.insert(row.key(), row);
        }
    }
    Ok(found)
}

/// Like [`get_records`], but on PostgreSQL also locks the rows (`SELECT … FOR UPDATE`) until
/// the transaction ends, so a concurrent push of the same records waits instead of failing
/// with [`Error::WriteConflict`]. On SQLite the write transaction already excludes other
/// writers.
///
/// The keys are locked in sorted order, the same for every push, so concurrent pushes do not
/// deadlock on each other (one that PostgreSQL did detect would be retried as a
/// [`Error::WriteConflict`]).
pub fn get_records_for_update(
    conn: &mut DbConnection,
    tenant: &str,
    keys: &[RecordKey],
) -> Result<HashMap<RecordKey, RecordRow>> {
    let DbConnection::Pg(pg) = conn else {
        return get_records(conn, tenant, keys);
    };
    let rows: Vec<RecordRow> = by_key(by_key_sql::RECORDS_FOR_UPDATE, tenant, &sorted_keys(keys)).load(pg)?;
    Ok(rows.into_iter().map(|row| (row.key(), row)).collect())
}

/// Loads the given versions, superseded ones from history and current ones from `records`
/// (missing ones are absent from the map): [`superseded_versions`], then `records` for what
/// history lacks.
pub fn get_versions(
    conn: &mut DbConnection,
    tenant: &str,
    wanted: &[(RecordKey, i64)],
) -> Result<HashMap<(RecordKey, i64), VersionRow>> {
    let mut found = superseded_versions(conn, tenant, wanted)?;
    let missing: Vec<RecordKey> =
        wanted.iter().filter(|w| !found.contains_key(*w)).map(|(key, _)| key.clone()).collect();
    if !missing.is_empty() {
        let wanted: HashSet<&(RecordKey, i64)> = wanted.iter().collect();
        for (key, row) in get_records(conn, tenant, &missing)? {
            let id = (key, row.version);
            if wanted.contains(&id) {
                found.insert(id, row.to_version());
            }
        }
    }
    Ok(found)
}

/// Loads the given versions from history alone: for a caller that already holds the records'
/// current rows and asks only for versions they have moved on from (a push's base versions),
/// so that `records` is not read again. Missing ones are absent from the map.
///
/// PostgreSQL: see [`by_key_sql`]. SQLite: one statement per 500 wanted versions, one `OR`
/// branch per (domain, version) shared by their records (`tenant_id = ? AND domain = ? AND
/// version = ? AND mobile_id IN (…)`): few branches for a typical push, and no row that was not
/// asked for.
pub fn superseded_versions(
    conn: &mut DbConnection,
    tenant: &str,
    wanted: &[(RecordKey, i64)],
) -> Result<HashMap<(RecordKey, i64), VersionRow>> {
    if let DbConnection::Pg(pg) = conn {
        let mut sorted: Vec<&(RecordKey, i64)> = wanted.iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        let keys: Vec<&RecordKey> = sorted.iter().map(|(key, _)| key).collect();
        let versions: Vec<i64> = sorted.iter().map(|(_, version)| *version).collect();
        let rows: Vec<VersionRow> = by_key(by_key_sql::VERSIONS, tenant, &keys)
            .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(versions)
            .load(pg)?;
        return Ok(rows.into_iter().map(|row| ((row.key(), row.version), row)).collect());
    }
    let mut groups: BTreeMap<(&str, i64), Vec<&str>> = BTreeMap::new();
    for (key, version) in wanted {
        groups.entry((key.domain.as_str(), *version)).or_default().push(key.mobile_id.as_str());
    }
    let mut found = HashMap::with_capacity(wanted.len());
    for batch in batches(groups, KEYS_PER_LOOKUP) {
        let mut query = record_versions::table.into_boxed::<MultiBackend>();
        for (i, ((domain, version), ids)) in batch.into_iter().enumerate() {
            let branch = record_versions::tenant_id
                .eq(tenant)
                .and(record_versions::domain.eq(domain))
                .and(record_versions::mobile_id.eq_any(ids))
                .and(record_versions::version.eq(version));
            query = if i == 0 { query.filter(branch) } else { query.or_filter(branch) };
        }
        for row in query.select(VersionRow::as_select()).load::<VersionRow>(conn)? {
            found.insert((row.key(), row.version), row);
        }
    }
    Ok(found)
}

/// Every retained version of a tenant's records (history and the current rows), ordered by
/// record and version: for audits, and for the simulator's invariants (every acknowledged
/// change is in the history, and no version was made twice).
pub fn tenant_history(conn: &mut DbConnection, tenant: &str) -> Result<Vec<VersionRow>> {
    let mut versions: Vec<VersionRow> = record_versions::table
        .filter(record_versions::tenant_id.eq(tenant))
        .select(VersionRow::as_select())
        .load(conn)?;
    let current: Vec<RecordRow> =
        records::table.filter(records::tenant_id.eq(tenant)).select(RecordRow::as_select()).load(conn)?;
    versions.extend(current.iter().map(|row| row.to_version()));
    versions.sort_unstable_by(|a, b| {
        (&a.domain, &a.mobile_id, a.version).cmp(&(&b.domain, &b.mobile_id, b.version))
    });
    Ok(versions)
}

/// For each of `current`, a record's current row, the latest retained version whose sequence
/// number is at most `seq`: the version a device held when its cursor was `seq` (the base of a
/// delta pull). That is the row itself when its `seq` is at most `seq`, else a superseded
/// version from history. Records without such a version are absent.
///
/// History: PostgreSQL: one statement, a probe of each key's versions from the newest down
/// ([`by_key_sql`]). SQLite: two statements per 500 keys, the keys' retained version numbers
/// and sequence numbers, then the chosen versions; the `seq` bound is applied
/// here rather than in SQL, since given `seq <= ?` the planner may take the `(tenant_id, seq)`
/// index and read the tenant's whole history up to the cursor instead of probing the primary
/// key for these records (measured: a 1000-record delta pull ran at a tenth of the speed of a
/// full one). Retained versions per record are few.
pub fn versions_as_of(
    conn: &mut DbConnection,
    tenant: &str,
    current: &[RecordRow],
    seq: i64,
) -> Result<HashMap<RecordKey, VersionRow>> {
    let mut held = HashMap::with_capacity(current.len());
    let mut moved_on = Vec::with_capacity(current.len());
    for row in current {
        if row.seq <= seq {
            held.insert(row.key(), row.to_version());
        } else {
            moved_on.push(row.key());
        }
    }
    if !moved_on.is_empty() {
        held.extend(superseded_as_of(conn, tenant, &moved_on, seq)?);
    }
    Ok(held)
}

/// [`versions_as_of`] from history alone, for records that have moved on since `seq`.
fn superseded_as_of(
    conn: &mut DbConnection,
    tenant: &str,
    keys: &[RecordKey],
    seq: i64,
) -> Result<HashMap<RecordKey, VersionRow>> {
    if let DbConnection::Pg(pg) = conn {
        let rows: Vec<VersionRow> = by_key(by_key_sql::VERSIONS_AS_OF, tenant, &sorted_keys(keys))
            .bind::<diesel::sql_types::BigInt, _>(seq)
            .load(pg)?;
        return Ok(rows.into_iter().map(|row| (row.key(), row)).collect());
    }
    let mut latest: HashMap<RecordKey, i64> = HashMap::with_capacity(keys.len());
    for batch in by_domain(keys) {
        let mut query = record_versions::table
            .select((
                record_versions::domain,
                record_versions::mobile_id,
                record_versions::version,
                record_versions::seq,
            ))
            .into_boxed::<MultiBackend>();
        for (i, (domain, ids)) in batch.into_iter().enumerate() {
            let branch = record_versions::tenant_id
                .eq(tenant)
                .and(record_versions::domain.eq(domain))
                .and(record_versions::mobile_id.eq_any(ids));
            query = if i == 0 { query.filter(branch) } else { query.or_filter(branch) };
        }
        let versions: Vec<(String, String, i64, i64)> = query.load(conn)?;
        for (domain, mobile_id, version, at) in versions {
            if at <= seq {
                let held = latest.entry(RecordKey::new(domain, mobile_id)).or_insert(version);
                *held = (*held).max(version);
            }
        }
    }
    let wanted: Vec<(RecordKey, i64)> = latest.into_iter().collect();
    Ok(superseded_versions(conn, tenant, &wanted)?.into_iter().map(|((key, _), row)| (key, row)).collect())
}

/// `SET` list of the records upsert: every column but the key, from the proposed row.
macro_rules! record_update_set {
    () => {
        (
            records::version.eq(excluded(records::version)),
            records::data.eq(excluded(records::data)),
            records::deleted.eq(excluded(records::deleted)),
            records::modified_at.eq(excluded(records::modified_at)),
            records::server_modified_at.eq(excluded(records::server_modified_at)),
            records::modified_by_device.eq(excluded(records::modified_by_device)),
            records::bu.eq(excluded(records::bu)),
            records::priority.eq(excluded(records::priority)),
            records::seq.eq(excluded(records::seq)),
        )
    };
}

/// Writes the latest state of records: one multi-row
/// `INSERT … ON CONFLICT (tenant_id, domain, mobile_id) DO UPDATE … WHERE records.version <
/// excluded.version` per chunk.
///
/// Rows with the same key are reduced to the highest version first. On PostgreSQL the `WHERE`
/// guards against lost updates: if a concurrent transaction has already stored the same or a
/// newer version of one of these records, nothing of it is overwritten and the call fails
/// with [`Error::WriteConflict`] (retry the whole transaction). On SQLite writers never run
/// concurrently (see [`Database::write_tx`](crate::Database::write_tx)), so there is no guard.
pub fn upsert_records(conn: &mut DbConnection, rows: &[RecordRow]) -> Result<()> {
    let mut latest: HashMap<(&str, &str, &str), &RecordRow> = HashMap::with_capacity(rows.len());
    for row in rows {
        let key = (row.tenant_id.as_str(), row.domain.as_str(), row.mobile_id.as_str());
        match latest.get(&key) {
            Some(kept) if kept.version >= row.version => {}
            _ => {
                latest.insert(key, row);
            }
        }
    }
    let values: Vec<NewRecord<'_>> = if latest.len() == rows.len() {
        rows.iter().map(NewRecord::from).collect()
    } else {
        rows.iter()
            .filter(|r| {
                latest
                    .get(&(r.tenant_id.as_str(), r.domain.as_str(), r.mobile_id.as_str()))
                    .is_some_and(|kept| std::ptr::eq(*kept, *r))
            })
            .map(NewRecord::from)
            .collect()
    };
    for chunk in values.chunks(rows_per_insert(12)) {
        // `MultiBackend` has no ON CONFLICT, so the statement is built per backend. Only
        // PostgreSQL needs the version guard: on SQLite the IMMEDIATE write transaction
        // excludes concurrent writers (and diesel cannot put a WHERE on a SQLite batch upsert).
        let written = match &mut *conn {
            DbConnection::Sqlite(c) => diesel::insert_into(records::table)
                .values(chunk)
                .on_conflict((records::tenant_id, records::domain, records::mobile_id))
                .do_update()
                .set(record_update_set!())
                .execute(c)?,
            DbConnection::Pg(c) => diesel::query_dsl::methods::FilterDsl::filter(
                diesel::insert_into(records::table)
                    .values(chunk)
                    .on_conflict((records::tenant_id, records::domain, records::mobile_id))
                    .do_update()
                    .set(record_update_set!()),
                records::version.lt(excluded(records::version)),
            )
            .execute(c)?,
        };
        if written != chunk.len() {
            return Err(Error::WriteConflict(format!(
                "{} of {} records already had the same or a newer version",
                chunk.len() - written,
                chunk.len()
            )));
        }
    }
    Ok(())
}

/// Appends superseded versions to history: one multi-row `INSERT` per chunk. A version that
/// already exists (a concurrent writer stored it first) fails with [`Error::WriteConflict`].
pub fn insert_versions(conn: &mut DbConnection, rows: &[VersionRow]) -> Result<()> {
    for chunk in rows.chunks(rows_per_insert(12)) {
        // Multi-row INSERT is not available through `MultiBackend` either.
        crate::dispatch!(&mut *conn, c => {
            diesel::insert_into(record_versions::table).values(chunk).execute(c)
        })?;
    }
    Ok(())
}

/// The benchmark's baseline: the same multi-row upserts of `records` and `versions` (the
/// versions they supersede; none for new records) as a push does, in one write transaction, and
/// nothing else.
pub fn raw_upsert_baseline(
    conn: &mut DbConnection,
    records: &[RecordRow],
    versions: &[VersionRow],
) -> Result<()> {
    write_transaction(conn, |conn| {
        upsert_records(conn, records)?;
        insert_versions(conn, versions)
    })
}

/// Runs `f`, a statement that reads a tenant's records in `seq` order up to a `LIMIT`, so that
/// PostgreSQL walks the `(tenant_id, seq)` index and stops at the limit.
///
/// Without statistics on `tenant_id` (migration `tenant_statistics`) PostgreSQL guesses any
/// tenant at a sliver of the table, so reading all of its records after the cursor and sorting
/// them looks cheaper than the ordered walk: every page of a first sync read the whole rest of
/// the tenant, 12.5 ms a page of 1,000 at 100,000 records (11.9 ms against 0.3 ms in
/// `EXPLAIN ANALYZE`), which made a first sync quadratic. `SET LOCAL enable_sort = off` leaves
/// the walk as the planner's only sort-free choice; it lasts until the statement is done. A pull
/// limited to units is left to the planner: `(tenant_id, bu, seq)` serves it, and the walk would
/// read every record of the other units.
fn in_seq_order<T>(
    conn: &mut DbConnection,
    filter: &PullFilter<'_>,
    f: impl FnOnce(&mut DbConnection) -> Result<T>,
) -> Result<T> {
    use diesel::connection::SimpleConnection;
    let DbConnection::Pg(pg) = conn else { return f(conn) };
    if filter.units.is_some() {
        return f(conn);
    }
    pg.batch_execute("SET LOCAL enable_sort = off")?;
    let result = f(conn);
    if let DbConnection::Pg(pg) = conn
        && result.is_ok()
    {
        pg.batch_execute("SET LOCAL enable_sort = on")?;
    }
    result
}

/// The statement of [`pull_page`].
fn pull_page_query<'q>(
    tenant: &'q str,
    after_seq: i64,
    limit: i64,
    filter: &PullFilter<'q>,
) -> diesel::dsl::Select<BoxedRecords<'q>, diesel::dsl::AsSelect<RecordRow, MultiBackend>> {
    records_after(tenant, after_seq, filter)
        .order(records::seq.asc())
        .limit(limit.max(0))
        .select(RecordRow::as_select())
}

/// Records with `seq > after_seq` that pass `filter`, ordered by `seq`, at most `limit`.
pub fn pull_page(
    conn: &mut DbConnection,
    tenant: &str,
    after_seq: i64,
    limit: i64,
    filter: &PullFilter<'_>,
) -> Result<Vec<RecordRow>> {
    in_seq_order(conn, filter, |conn| Ok(pull_page_query(tenant, after_seq, limit, filter).load(conn)?))
}

/// PostgreSQL's plan of [`pull_page`], one line per row of `EXPLAIN`, for the test that reads
/// it. Not for SQLite, whose `EXPLAIN` is a program.
#[doc(hidden)]
pub fn explain_pull_page(
    conn: &mut DbConnection,
    tenant: &str,
    after_seq: i64,
    limit: i64,
    filter: &PullFilter<'_>,
) -> Result<Vec<String>> {
    in_seq_order(conn, filter, |conn| {
        Ok(super::Explain(pull_page_query(tenant, after_seq, limit, filter)).load(conn)?)
    })
}

/// How many records with `seq > after_seq` pass `filter` (the pull's `remaining`, a queue's
/// pending items).
pub fn count_after(
    conn: &mut DbConnection,
    tenant: &str,
    after_seq: i64,
    filter: &PullFilter<'_>,
) -> Result<i64> {
    Ok(records_after(tenant, after_seq, filter).count().get_result(conn)?)
}

/// [`count_after`] for a pull's `remaining`, which may be an estimate (PROTOCOL.md): exact
/// while fewer than `exact_up_to` records are left; beyond that, extrapolated up to `head_seq`
/// from how densely the first `exact_up_to` records fill their sequence range. Counting a large
/// tenant exactly on every page of a first sync made the whole sync quadratic (on PostgreSQL
/// 30–55 ms per page at 100,000 records). The database finds the `exact_up_to`-th record by
/// skipping along the index; nothing but that one number comes back.
pub fn estimate_after(
    conn: &mut DbConnection,
    tenant: &str,
    after_seq: i64,
    head_seq: i64,
    filter: &PullFilter<'_>,
    exact_up_to: i64,
) -> Result<i64> {
    let cap = exact_up_to.max(1);
    let nth: Option<i64> = in_seq_order(conn, filter, |conn| {
        Ok(records_after(tenant, after_seq, filter)
            .order(records::seq.asc())
            .offset(cap - 1)
            .limit(1)
            .select(records::seq)
            .first(conn)
            .optional()?)
    })?;
    match nth {
        None => count_after(conn, tenant, after_seq, filter),
        Some(last) => {
            let density = cap as f64 / (last - after_seq).max(1) as f64;
            let beyond = ((head_seq - last).max(0) as f64 * density).round() as i64;
            Ok(cap.saturating_add(beyond))
        }
    }
}

/// What [`purge`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeStats {
    /// Tombstoned records removed from `records`.
    pub tombstones: usize,
    /// History rows removed from `record_versions`.
    pub versions: usize,
}

/// Purges `tenant`'s history below `below_seq`: tombstoned records whose last change is below
/// it, and every superseded version below it (current versions live in `records`). Records
/// the new purge mark (never lowered), so a cursor below it can be told to resync.
///
/// Choose `below_seq` no higher than the oldest cursor of any active device
/// ([`oldest_active_cursor`](super::oldest_active_cursor)); run it in a write transaction.
pub fn purge(conn: &mut DbConnection, tenant: &str, below_seq: i64, now: i64) -> Result<PurgeStats> {
    let tombstones = diesel::delete(
        records::table
            .filter(records::tenant_id.eq(tenant))
            .filter(records::deleted.eq(true))
            .filter(records::seq.lt(below_seq)),
    )
    .execute(conn)?;
    let versions = diesel::delete(
        record_versions::table
            .filter(record_versions::tenant_id.eq(tenant))
            .filter(record_versions::seq.lt(below_seq)),
    )
    .execute(conn)?;
    // The mark only rises.
    crate::dispatch!(&mut *conn, c => {
        let upsert = diesel::insert_into(purge_marks::table)
            .values((
                purge_marks::tenant_id.eq(tenant),
                purge_marks::purged_below_seq.eq(below_seq),
                purge_marks::purged_at.eq(now),
            ))
            .on_conflict(purge_marks::tenant_id)
            .do_update()
            .set((
                purge_marks::purged_below_seq.eq(excluded(purge_marks::purged_below_seq)),
                purge_marks::purged_at.eq(excluded(purge_marks::purged_at)),
            ));
        let rising = purge_marks::purged_below_seq.lt(excluded(purge_marks::purged_below_seq));
        diesel::query_dsl::methods::FilterDsl::filter(upsert, rising).execute(c)
    })?;
    Ok(PurgeStats { tombstones, versions })
}

/// The sequence number below which `tenant`'s history was purged (0: never). A pull cursor
/// below it must resync.
pub fn get_purge_mark(conn: &mut DbConnection, tenant: &str) -> Result<i64> {
    Ok(purge_marks::table
        .filter(purge_marks::tenant_id.eq(tenant))
        .select(purge_marks::purged_below_seq)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0))
}
