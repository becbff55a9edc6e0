//! The push engine (PROTOCOL.md section 3): each push all or nothing (a savepoint of a group
//! commit, see [`crate::Database::write_grouped`]), exactly once per idempotency key, one
//! outcome per change.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sync_conflict::{EffectivePolicy, RecordState, Resolution, TenantPolicy};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{
    SyncEngine,
    decide::{ChangeContext, ConflictEntry, Current, Decision, NewVersion, decide},
    health::{FailedSync, SyncRecord, WireBytes, elapsed_ms, record_sync},
};
use crate::{
    Error, Result,
    db::DbConnection,
    live::{CommitKind, Committed},
    micros,
    protocol::{
        Change, ChangeResult, ConflictSummary, Cursor, Outcome, PushRequest, PushResponse, RecordEnvelope,
    },
    store::{self, ConflictRow, ConflictStatus, IdempotencyRow, Principal, RecordKey, RecordRow},
};

/// A push's answer: the response body, byte for byte as first stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReply {
    pub body: String,
    /// Whether this is a stored response replayed for a repeated idempotency key.
    pub replayed: bool,
}

/// Checks an `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<()> {
    if !sync_protocol::limits::is_valid_idempotency_key(key) {
        return Err(Error::BadRequest {
            code: "invalid_idempotency_key",
            message: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        });
    }
    Ok(())
}

/// Checks a device id: 1 to 128 characters, none of them control characters.
pub fn check_device_id(device_id: &str) -> Result<()> {
    if !sync_protocol::limits::is_valid_device_id(device_id) {
        return Err(Error::BadRequest {
            code: "invalid_device_id",
            message: "device_id must be 1 to 128 characters without control characters".into(),
        });
    }
    Ok(())
}

/// JSON with object keys sorted at every level, whatever order they arrived in: the
/// request hash must not depend on the transport's key order.
fn canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            out.push(b'{');
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // Serialising a string into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, key);
                out.push(b':');
                canonical_json(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

/// The hash that ties an idempotency key to one request: its device and changes.
/// `client_time` is left out: it says when this try was sent (for the skew correction), so a
/// retry carries a fresh one and is still the same request.
///
/// The hashed bytes are [`canonical_json`] of the request as a JSON value without
/// `client_time`, written straight from the typed request: building that value first (a copy
/// of every change's data) was three quarters of the hashing, 6 % of the server's CPU in a push
/// benchmark. The bytes must not change, or a retry across an upgrade would no longer match
/// its stored hash; a property test compares them with the value's.
pub fn request_hash(request: &PushRequest) -> Result<String> {
    let mut canonical = Vec::with_capacity(1024);
    canonical_request(request, &mut canonical)?;
    Ok(hex::encode(Sha256::digest(&canonical)))
}

/// The canonical JSON of `request` without `client_time`: each object's keys in sorted order,
/// optional fields left out when absent (as serde leaves them out).
fn canonical_request(request: &PushRequest, out: &mut Vec<u8>) -> Result<()> {
    let PushRequest { device_id, client_time: _, changes } = request;
    out.extend_from_slice(b"{\"changes\":[");
    for (i, change) in changes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        canonical_change(change, out)?;
    }
    out.extend_from_slice(b"],\"device_id\":");
    scalar_json(device_id, out)?;
    out.push(b'}');
    Ok(())
}

/// One change of [`canonical_request`]. Destructured without `..`, so that a new field of
/// `Change` does not compile until it is hashed here too.
fn canonical_change(change: &Change, out: &mut Vec<u8>) -> Result<()> {
    let Change { domain, mobile_id, base_version, op, data, patch, modified_at, priority, bu } = change;
    let modified_at = modified_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::Internal(format!("serialising a push: {e}")))?;
    // The keys in sorted order.
    out.extend_from_slice(b"{\"base_version\":");
    scalar_json(base_version, out)?;
    if let Some(bu) = bu {
        out.extend_from_slice(b",\"bu\":");
        scalar_json(bu, out)?;
    }
    if let Some(data) = data {
        out.extend_from_slice(b",\"data\":");
        canonical_json(data, out);
    }
    out.extend_from_slice(b",\"domain\":");
    scalar_json(domain, out)?;
    out.extend_from_slice(b",\"mobile_id\":");
    scalar_json(mobile_id, out)?;
    out.extend_from_slice(b",\"modified_at\":");
    scalar_json(&modified_at, out)?;
    out.extend_from_slice(b",\"op\":");
    scalar_json(op, out)?;
    if let Some(patch) = patch {
        out.extend_from_slice(b",\"patch\":");
        canonical_json(patch, out);
    }
    if let Some(priority) = priority {
        out.extend_from_slice(b",\"priority\":");
        scalar_json(priority, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// A value that serialises to a JSON scalar, as `serde_json` writes it.
fn scalar_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    serde_json::to_writer(out, value).map_err(|e| Error::Internal(format!("serialising a push: {e}")))
}

pub(crate) fn record_state(row: &RecordRow) -> Result<RecordState> {
    versioned_state(&row.data, row.deleted, row.modified_at, &row.modified_by_device)
}

pub(crate) fn versioned_state(
    data: &str,
    deleted: bool,
    modified_at: i64,
    device: &str,
) -> Result<RecordState> {
    let data = match serde_json::from_str(data)? {
        Value::Object(map) => map,
        _ => return Err(Error::Corrupt("stored record data is not a JSON object".into())),
    };
    let modified_at = micros::stored(modified_at)?;
    Ok(RecordState { data, deleted, modified_at, device_id: device.to_owned() })
}

/// The envelope of a record as it stands after this push.
pub(crate) fn envelope(
    domain: &str,
    mobile_id: uuid::Uuid,
    version: i64,
    state: &RecordState,
    server_modified_at: OffsetDateTime,
    current: &Current,
) -> RecordEnvelope {
    RecordEnvelope {
        domain: domain.to_owned(),
        mobile_id,
        version,
        deleted: state.deleted,
        data: Some(Value::Object(state.data.clone())),
        base_version: None,
        patch: None,
        modified_at: state.modified_at,
        server_modified_at,
        modified_by_device: Some(state.device_id.clone()),
        priority: current.priority,
        bu: current.bu.clone(),
        conflict_risk: None,
    }
}

struct PushContext<'a> {
    engine: &'a SyncEngine,
    principal: &'a Principal,
    key: &'a str,
    hash: &'a str,
    request: &'a PushRequest,
    server_now: OffsetDateTime,
    network: Option<&'a str>,
    started: std::time::Instant,
    wire: WireBytes,
}

impl SyncEngine {
    /// Applies a push exactly once per `(tenant, user, device, key)`.
    ///
    /// A repeated key with the same request returns the stored response unchanged; with a
    /// different request it is [`Error::IdempotencyKeyReused`]. Everything a push changes
    /// is written in one transaction together with its idempotency record. A push that fails
    /// is recorded as a failed sync of its device, after its transaction rolled back.
    ///
    /// Its bytes are counted as the request re-serialised; a transport that read the request
    /// off the wire gives the real counts to [`SyncEngine::push_from_wire`].
    pub async fn push(
        &self,
        principal: &Principal,
        key: &str,
        request: PushRequest,
        network: Option<&str>,
    ) -> Result<PushReply> {
        let len = serde_json::to_vec(&request).map_or(0, |v| v.len() as u64);
        self.push_from_wire(principal, key, request, network, WireBytes { raw: len, sent: len }).await
    }

    /// [`SyncEngine::push`] of a request that arrived as `wire` bytes.
    pub async fn push_from_wire(
        &self,
        principal: &Principal,
        key: &str,
        request: PushRequest,
        network: Option<&str>,
        wire: WireBytes,
    ) -> Result<PushReply> {
        let started = std::time::Instant::now();
        let device_id = request.device_id.clone();
        let result = self.apply_push(principal, key, request, network, started, wire).await;
        if let Err(error) = &result {
            let failed = FailedSync {
                device_id,
                kind: store::SyncEventKind::Push,
                duration: started.elapsed(),
                wire,
                network: network.map(str::to_owned),
            };
            self.note_failure(principal, error, failed).await;
        }
        result
    }

    async fn apply_push(
        &self,
        principal: &Principal,
        key: &str,
        request: PushRequest,
        network: Option<&str>,
        started: std::time::Instant,
        wire: WireBytes,
    ) -> Result<PushReply> {
        check_idempotency_key(key)?;
        check_device_id(&request.device_id)?;
        if request.changes.len() > self.config.max_push_changes {
            return Err(Error::PayloadTooLarge(format!(
                "a push may carry at most {} changes (got {})",
                self.config.max_push_changes,
                request.changes.len()
            )));
        }
        let hash = request_hash(&request)?;
        let engine = self.clone();
        let principal = principal.clone();
        let key = key.to_owned();
        let network = network.map(str::to_owned);
        let tenant = principal.tenant.clone();
        self.retrying_grouped_write(&tenant, move |conn| {
            let ctx = PushContext {
                engine: &engine,
                principal: &principal,
                key: &key,
                hash: &hash,
                request: &request,
                server_now: OffsetDateTime::now_utc(),
                network: network.as_deref(),
                started,
                wire,
            };
            push_tx(conn, &ctx)
        })
        .await
        .map(|(reply, facts)| {
            self.publish(&facts);
            reply
        })
    }
}

/// One push in its transaction, in four phases: look up the idempotency key (a replay ends
/// there), load what the changes touch, decide each change (pure), write the new versions,
/// and record the conflicts, the wake-ups, the idempotency record and the sync event.
fn push_tx(conn: &mut DbConnection, ctx: &PushContext<'_>) -> Result<(PushReply, Vec<Committed>)> {
    let principal = ctx.principal;
    let tenant = principal.tenant.as_str();
    let device_id = ctx.request.device_id.as_str();
    if let Some(stored) = store::get_idempotency(conn, tenant, &principal.user, device_id, ctx.key)? {
        if stored.request_hash == ctx.hash {
            return Ok((PushReply { body: stored.response, replayed: true }, Vec::new()));
        }
        return Err(Error::IdempotencyKeyReused);
    }
    let skew = clock_skew(ctx)?;
    let mut loaded = load(conn, ctx)?;
    let stored = std::mem::take(&mut loaded.stored);
    let plan = plan(ctx, loaded, skew);
    let now_us = micros::from_datetime(ctx.server_now);
    let written = write_versions(conn, tenant, &plan.writes, &stored, now_us)?.map(|(fact, _)| fact);
    if let Some(fault) = &ctx.engine.fault {
        fault(ctx.request)?;
    }
    record(conn, ctx, plan, written, skew)
}

/// What a push's changes touch, read in its transaction.
struct Loaded {
    /// The records' rows as they stand (locked on PostgreSQL): what a write supersedes.
    stored: HashMap<RecordKey, RecordRow>,
    /// The same records, decoded.
    current: HashMap<RecordKey, Current>,
    /// The base versions the changes name, where the record has moved on since.
    history: HashMap<(RecordKey, i64), RecordState>,
    /// The tenant's policy overrides, by domain.
    overrides: HashMap<String, TenantPolicy>,
}

/// What a push does, decided before anything is written.
struct Plan {
    /// One result per change, in request order.
    results: Vec<ChangeResult>,
    /// The new versions, in the order decided (a record written twice appears twice).
    writes: Vec<(RecordKey, NewVersion)>,
    conflicts: Vec<(RecordKey, ConflictEntry)>,
    /// Per domain: changes and conflicts.
    domain_counts: BTreeMap<String, (u64, u64)>,
    overrides: HashMap<String, TenantPolicy>,
}

/// The device's clock skew, applied to every change's `modified_at`.
fn clock_skew(ctx: &PushContext<'_>) -> Result<Duration> {
    let max_skew = Duration::milliseconds(ctx.engine.config.max_clock_skew_ms);
    Ok(ctx
        .request
        .client_time
        .map(|client_time| {
            sync_conflict::correct_clock_skew(ctx.server_now, client_time, ctx.server_now, max_skew)
        })
        .transpose()
        .map_err(|e| Error::BadRequest { code: "invalid_client_time", message: e.to_string() })?
        .map(|c| c.applied_skew())
        .unwrap_or(Duration::ZERO))
}

/// Phase 1: the current records, the base versions that conflicts need, the tenant's
/// policies.
fn load(conn: &mut DbConnection, ctx: &PushContext<'_>) -> Result<Loaded> {
    let engine = ctx.engine;
    let tenant = ctx.principal.tenant.as_str();
    let changes = &ctx.request.changes;
    let keys: Vec<RecordKey> = changes
        .iter()
        .filter(|c| engine.domains.get(&c.domain).is_some())
        .map(|c| RecordKey::new(c.domain.clone(), c.mobile_id.to_string()))
        .collect();
    let rows = store::get_records_for_update(conn, tenant, &keys)?;
    let wanted: Vec<(RecordKey, i64)> = changes
        .iter()
        .zip(&keys)
        .filter(|(c, key)| c.base_version > 0 && rows.get(*key).is_some_and(|r| r.version != c.base_version))
        .map(|(c, key)| (key.clone(), c.base_version))
        .collect();
    let mut history = HashMap::new();
    // The current versions are `rows`; the bases that differ from them can only be in history.
    for ((key, version), row) in store::superseded_versions(conn, tenant, &wanted)? {
        let state = versioned_state(&row.data, row.deleted, row.modified_at, &row.modified_by_device)?;
        history.insert((key, version), state);
    }
    let overrides = engine
        .tenant_policies(conn, tenant)?
        .iter()
        .filter_map(|p| {
            let policy = p.policy.parse().ok()?;
            TenantPolicy::new(policy, p.auto_resolve, p.notify_on_conflict)
                .ok()
                .map(|t| (p.domain.clone(), t))
        })
        .collect();
    let mut current = HashMap::with_capacity(rows.len());
    for (key, row) in &rows {
        let state = record_state(row)?;
        current.insert(
            key.clone(),
            Current { version: row.version, state, bu: row.bu.clone(), priority: row.priority },
        );
    }
    Ok(Loaded { stored: rows, current, history, overrides })
}

/// Phase 2 (no IO): each change decided in request order, each seeing what the earlier
/// changes of the push wrote.
fn plan(ctx: &PushContext<'_>, loaded: Loaded, skew: Duration) -> Plan {
    let Loaded { mut current, mut history, overrides, .. } = loaded;
    let request = ctx.request;
    // The records that more than one change of this push names: only there does a later change
    // need to see the version an earlier one wrote (a push of new records has none, and copying
    // every written state for nothing was 3 % of the group-commit leader's time).
    let mut named = HashSet::with_capacity(request.changes.len());
    let repeated: HashSet<(&str, Uuid)> = request
        .changes
        .iter()
        .map(|c| (c.domain.as_str(), c.mobile_id))
        .filter(|key| !named.insert(*key))
        .collect();
    let mut plan = Plan {
        results: Vec::with_capacity(request.changes.len()),
        writes: Vec::new(),
        conflicts: Vec::new(),
        domain_counts: BTreeMap::new(),
        overrides,
    };
    for change in &request.changes {
        let Some(service) = ctx.engine.domains.get(&change.domain) else {
            plan.results.push(invalid_result(
                change,
                "unknown_domain",
                format!("unknown domain `{}`", change.domain),
            ));
            continue;
        };
        let key = RecordKey::new(change.domain.clone(), change.mobile_id.to_string());
        let policy =
            effective_policy(service.default_policy(), &change.domain, plan.overrides.get(&change.domain));
        let modified_at = change.modified_at.checked_add(skew).unwrap_or(change.modified_at);
        let version_state = |version: i64| history.get(&(key.clone(), version)).cloned();
        let decision = decide(&ChangeContext {
            change,
            service: service.as_ref(),
            current: current.get(&key),
            version_state: &version_state,
            policy,
            device_id: &request.device_id,
            modified_at,
            units: ctx.principal.units.as_deref(),
        });
        let counts = plan.domain_counts.entry(change.domain.clone()).or_default();
        counts.0 += 1;
        counts.1 += u64::from(decision.conflict.is_some());
        plan.results.push(result_of(change, &decision, current.get(&key), ctx.server_now));
        let Decision { write, conflict, .. } = decision;
        if let Some(conflict) = conflict {
            plan.conflicts.push((key.clone(), conflict));
        }
        if let Some(write) = write {
            // Later changes of this push to the same record see this version.
            if repeated.contains(&(change.domain.as_str(), change.mobile_id)) {
                let next = Current {
                    version: write.version,
                    state: write.state.clone(),
                    bu: write.bu.clone(),
                    priority: write.priority,
                };
                if let Some(previous) = current.insert(key.clone(), next) {
                    history.insert((key.clone(), previous.version), previous.state);
                }
            }
            plan.writes.push((key, write));
        }
    }
    plan
}

/// Phase 3, shared with conflict resolution: writes new versions of a tenant's records. The
/// sequence numbers are taken here, last, so that the tenant's counter row stays locked only
/// for the writes; each record's latest version becomes its row, and every version it
/// supersedes goes to the history: its `stored` row (as read in this transaction), and any
/// version of `writes` that a later one of the same record replaces. Returns the commit's
/// fact and the records' rows as written (by sequence), or `None` when there is nothing to
/// write.
pub(crate) fn write_versions(
    conn: &mut DbConnection,
    tenant: &str,
    writes: &[(RecordKey, NewVersion)],
    stored: &HashMap<RecordKey, RecordRow>,
    now_us: i64,
) -> Result<Option<(Committed, Vec<RecordRow>)>> {
    if writes.is_empty() {
        return Ok(None);
    }
    let count = i64::try_from(writes.len()).map_err(|e| Error::Internal(e.to_string()))?;
    let first = store::allocate_seqs(conn, tenant, count)?;
    let mut superseded = Vec::new();
    let mut latest: HashMap<&RecordKey, RecordRow> = HashMap::with_capacity(writes.len());
    for (offset, (key, write)) in (0..).zip(writes) {
        let row = RecordRow {
            tenant_id: tenant.to_owned(),
            domain: key.domain.clone(),
            mobile_id: key.mobile_id.clone(),
            version: write.version,
            data: serde_json::to_string(&write.state.data)?,
            deleted: write.state.deleted,
            modified_at: micros::from_datetime(write.state.modified_at),
            server_modified_at: now_us,
            modified_by_device: write.state.device_id.clone(),
            bu: write.bu.clone(),
            priority: write.priority,
            seq: first + offset,
        };
        let replaced = match latest.insert(key, row) {
            Some(earlier) => Some(earlier.to_version()),
            None => stored.get(key).map(|old| old.to_version()),
        };
        superseded.extend(replaced);
    }
    let mut fact = Committed::new(CommitKind::Changes, tenant, first + count - 1);
    for row in latest.values() {
        fact.domains.insert(row.domain.clone());
        fact.units.insert(row.bu.clone());
    }
    let mut latest: Vec<RecordRow> = latest.into_values().collect();
    latest.sort_unstable_by_key(|r| r.seq);
    store::upsert_records(conn, &latest)?;
    store::insert_versions(conn, &superseded)?;
    Ok(Some((fact, latest)))
}

/// Phase 4: the conflict log, the wake-ups, the idempotency record with the response, the
/// sync event.
fn record(
    conn: &mut DbConnection,
    ctx: &PushContext<'_>,
    plan: Plan,
    written: Option<Committed>,
    skew: Duration,
) -> Result<(PushReply, Vec<Committed>)> {
    let principal = ctx.principal;
    let tenant = principal.tenant.as_str();
    let device_id = ctx.request.device_id.as_str();
    let now_us = micros::from_datetime(ctx.server_now);
    let Plan { results, conflicts, domain_counts, overrides, .. } = plan;
    let cursor = match &written {
        Some(fact) => fact.seq,
        None => store::current_seq(conn, tenant)?,
    };
    let mut facts: Vec<Committed> = written.into_iter().collect();

    let conflict_rows = conflicts
        .iter()
        .map(|(key, entry)| conflict_row(principal, device_id, key, entry, now_us))
        .collect::<Result<Vec<_>>>()?;
    store::insert_conflicts(conn, &conflict_rows)?;
    // Admins hear of every manual conflict, and of all conflicts of a domain whose policy
    // asks for it.
    let told: Vec<String> = conflicts
        .iter()
        .filter(|(key, entry)| {
            entry.resolution == Resolution::ManualRequired
                || overrides.get(&key.domain).is_some_and(TenantPolicy::notify_on_conflict)
        })
        .map(|(_, entry)| entry.id.to_string())
        .collect();
    if !told.is_empty() {
        let mut fact = Committed::new(CommitKind::Conflict, tenant, cursor);
        fact.conflicts = told;
        facts.push(fact);
    }
    for fact in &facts {
        ctx.engine.notify_in_tx(conn, fact)?;
    }

    let response = PushResponse { results, cursor: Cursor(cursor).to_string() };
    let body = serde_json::to_string(&response)?;
    let stored = store::put_idempotency(
        conn,
        &IdempotencyRow {
            tenant_id: tenant.to_owned(),
            user_id: principal.user.clone(),
            device_id: device_id.to_owned(),
            key: ctx.key.to_owned(),
            request_hash: ctx.hash.to_owned(),
            response: body.clone(),
            created_at: now_us,
        },
    )?;
    if !stored {
        // A concurrent push with the same key committed first: retry, which replays it.
        return Err(Error::WriteConflict("idempotency key taken by a concurrent push".into()));
    }

    let manual = conflicts.iter().filter(|(_, c)| c.resolution == Resolution::ManualRequired).count();
    record_sync(
        conn,
        &SyncRecord {
            principal,
            device_id,
            kind: store::SyncEventKind::Push,
            success: true,
            duration_ms: elapsed_ms(ctx.started),
            at: ctx.server_now,
            changes: ctx.request.changes.len(),
            conflicts: conflicts.len(),
            manual,
            bytes_raw: usize::try_from(ctx.wire.raw).unwrap_or(usize::MAX),
            bytes_sent: usize::try_from(ctx.wire.sent).unwrap_or(usize::MAX),
            domains: domain_counts,
            network: ctx.network,
            clock_skew_ms: Some(skew.whole_milliseconds().clamp(i64::MIN.into(), i64::MAX.into()) as i64),
        },
    )?;
    Ok((PushReply { body, replayed: false }, facts))
}

/// The policy in force for a domain: the tenant's override, else the domain's default.
pub(crate) fn effective_policy(
    default: sync_conflict::Policy,
    domain: &str,
    tenant: Option<&TenantPolicy>,
) -> EffectivePolicy {
    let mut effective = sync_conflict::effective_policy(domain, tenant);
    if tenant.is_none() {
        effective.policy = default;
        effective.configured = default;
    }
    effective
}

fn invalid_result(change: &crate::protocol::Change, code: &str, message: String) -> ChangeResult {
    ChangeResult {
        mobile_id: change.mobile_id,
        domain: change.domain.clone(),
        outcome: Outcome::Invalid,
        version: None,
        record: None,
        conflict: None,
        error: Some(crate::protocol::ItemError { code: code.to_owned(), message }),
    }
}

fn result_of(
    change: &crate::protocol::Change,
    decision: &Decision,
    current: Option<&Current>,
    server_now: OffsetDateTime,
) -> ChangeResult {
    let record = match (decision.return_record, &decision.write, current) {
        (false, _, _) => None,
        (true, Some(write), Some(current)) => {
            Some(envelope(&change.domain, change.mobile_id, write.version, &write.state, server_now, current))
        }
        (true, None, Some(current)) => Some(envelope(
            &change.domain,
            change.mobile_id,
            current.version,
            &current.state,
            server_now,
            current,
        )),
        (true, _, None) => None,
    };
    ChangeResult {
        mobile_id: change.mobile_id,
        domain: change.domain.clone(),
        outcome: decision.outcome,
        version: decision.version,
        record,
        conflict: decision.conflict.as_ref().map(|c| ConflictSummary {
            id: c.id,
            strategy: c.strategy,
            winner: c.winner,
            details: c.details.clone(),
        }),
        error: decision.error.clone(),
    }
}

fn conflict_row(
    principal: &Principal,
    device_id: &str,
    key: &RecordKey,
    entry: &ConflictEntry,
    now_us: i64,
) -> Result<ConflictRow> {
    let status = if entry.resolution == Resolution::ManualRequired {
        ConflictStatus::Pending
    } else {
        ConflictStatus::Auto
    };
    Ok(ConflictRow {
        tenant_id: principal.tenant.clone(),
        id: entry.id.to_string(),
        domain: key.domain.clone(),
        mobile_id: key.mobile_id.clone(),
        server_version: entry.server_version,
        client_base_version: entry.client_base_version,
        client_version: entry.result_version,
        strategy: entry.strategy,
        result: entry.resolution,
        winner: entry.winner,
        details: serde_json::to_string(&entry.details)?,
        device_id: device_id.to_owned(),
        user_id: principal.user.clone(),
        created_at: now_us,
        status,
        client_state: Some(serde_json::to_string(&entry.client_state)?),
        server_state: Some(serde_json::to_string(&entry.server_state)?),
        resolved_at: None,
        resolved_by: None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};
    use time::{OffsetDateTime, UtcOffset};
    use uuid::Uuid;

    use super::{canonical_json, request_hash};
    use crate::engine::pull::tests::json;
    use crate::protocol::{Change, Op, PushRequest};

    /// The hash as it was first computed: the request as a JSON value, `client_time` removed,
    /// [`canonical_json`] of the rest. Stored idempotency records hold hashes made this way.
    fn hash_of_value(request: &PushRequest) -> Option<String> {
        let mut value = serde_json::to_value(request).ok()?;
        if let serde_json::Value::Object(fields) = &mut value {
            fields.remove("client_time");
        }
        let mut canonical = Vec::new();
        canonical_json(&value, &mut canonical);
        Some(hex::encode(Sha256::digest(&canonical)))
    }

    /// Mostly times RFC 3339 can write (years 0 to 9999, offsets in whole minutes), and some
    /// it cannot (other years, offsets with seconds).
    fn any_time() -> impl Strategy<Value = OffsetDateTime> {
        let writable =
            (-62_167_219_200_i64..253_402_300_799, -1_439..1_440_i32).prop_map(|(s, m)| (s, m * 60));
        let any = (-377_705_116_800_i64..253_402_300_799, -86_399..86_400_i32);
        (prop_oneof![9 => writable, 1 => any], 0..1_000_000_000_u32).prop_map(|((seconds, offset), nanos)| {
            let utc = OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let offset = UtcOffset::from_whole_seconds(offset).unwrap_or(UtcOffset::UTC);
            (utc + time::Duration::nanoseconds(i64::from(nanos))).to_offset(offset)
        })
    }

    fn any_change() -> impl Strategy<Value = Change> {
        let op = prop_oneof![Just(Op::Upsert), Just(Op::Patch), Just(Op::Delete)];
        let priority = prop::option::of(prop_oneof![
            Just(sync_model::Priority::High),
            Just(sync_model::Priority::Medium),
            Just(sync_model::Priority::Low),
        ]);
        (
            ("\\PC{0,12}", any::<u128>(), any::<i64>(), op),
            (prop::option::of(json()), prop::option::of(json()), any_time(), priority),
            prop::option::of("\\PC{0,8}"),
        )
            .prop_map(
                |((domain, id, base_version, op), (data, patch, modified_at, priority), bu)| Change {
                    domain,
                    mobile_id: Uuid::from_u128(id),
                    base_version,
                    op,
                    data,
                    patch,
                    modified_at,
                    priority,
                    bu,
                },
            )
    }

    proptest! {
        /// The streamed hash is the hash of the value, byte for byte, for any request: an
        /// idempotency key stored before the change still matches its retry after it. A
        /// `modified_at` that RFC 3339 cannot write fails both ways. `client_time` is not
        /// hashed; the value's way failed on one it could not write (never one read from the
        /// wire, which is RFC 3339 text), the streamed way ignores it.
        #[test]
        fn the_streamed_hash_equals_the_hash_of_the_value(
            device_id in "\\PC{1,16}",
            client_time in prop::option::of(any_time()),
            changes in prop::collection::vec(any_change(), 0..4),
        ) {
            let request = PushRequest { device_id, client_time, changes };
            let untimed = PushRequest { client_time: None, ..request.clone() };
            let hash = request_hash(&request).ok();
            prop_assert_eq!(&hash, &hash_of_value(&untimed));
            if let Some(timed) = hash_of_value(&request) {
                prop_assert_eq!(hash, Some(timed));
            }
        }
    }
}
