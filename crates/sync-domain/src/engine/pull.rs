//! The pull engine (PROTOCOL.md section 5): what changed after a cursor, in change-sequence
//! order, as full records or deltas, and the device's remembered cursor.

use std::collections::BTreeMap;

use serde_json::Value;
use serde_json::value::RawValue;
use sync_bandwidth::{self as delta, Encoding};
use time::OffsetDateTime;

use super::{
    SyncEngine,
    health::{FailedSync, SyncRecord, WireBytes, elapsed_ms, record_sync, record_time_per_item},
    push::check_device_id,
};
use crate::{
    Error, Result, micros,
    protocol::{Cursor, PullRequest, PullResponse, RecordEnvelope},
    store::{self, Principal, PullFilter, RecordKey, RecordRow, SyncEventKind},
};

/// A pull's answer: its JSON body (a [`PullResponse`]) encoded for the wire, and what the
/// transports need to know of it without decoding it.
#[derive(Debug, Clone, PartialEq)]
pub struct PullReply {
    /// The JSON body, gzip-encoded when the caller accepts gzip and it pays.
    pub body: Vec<u8>,
    /// `Some("gzip")` when `body` is compressed.
    pub content_encoding: Option<&'static str>,
    /// The JSON body's length before compression.
    pub json_len: usize,
    /// The response's `cursor`.
    pub cursor: String,
    /// The response's `has_more`.
    pub has_more: bool,
    /// The response's `remaining`.
    pub remaining: i64,
    /// How many records the response holds.
    pub changes: usize,
}

impl PullReply {
    /// The response as a value, decoded from the body (for a transport that needs it so,
    /// such as GraphQL; the others send the body as it is).
    pub fn response(&self) -> Result<PullResponse> {
        Ok(serde_json::from_slice(&self.json()?)?)
    }

    /// The JSON body, uncompressed.
    pub fn json(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        match self.content_encoding {
            Some(_) => delta::decompress(&self.body, Encoding::Gzip, self.json_len)
                .map_err(|e| Error::Internal(format!("decoding a pull's own body: {e}"))),
            None => Ok(std::borrow::Cow::Borrowed(self.body.as_slice())),
        }
    }
}

/// How a transport encodes a JSON body for the wire: compression is the transport's, and the
/// engine asks it only so that a pull's sync event counts the bytes really sent.
pub trait BodyEncoding: Send + Sync {
    /// The body as sent, and its `Content-Encoding` (`None`: identity).
    fn encode(&self, json: Vec<u8>) -> Result<(Vec<u8>, Option<&'static str>)>;
}

/// The body as it is (no `Content-Encoding`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl BodyEncoding for Identity {
    fn encode(&self, json: Vec<u8>) -> Result<(Vec<u8>, Option<&'static str>)> {
        Ok((json, None))
    }
}

/// A record of a pull page as the wire shows it ([`RecordEnvelope`]'s JSON, field for field):
/// `data` is the stored JSON text passed through, never parsed and written again, which was
/// most of a pull's cost per record (docs/benchmarks.md, "Pull pass-through").
#[derive(Debug, serde::Serialize)]
struct WireRecord<'a> {
    domain: &'a str,
    mobile_id: uuid::Uuid,
    version: i64,
    deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<&'a Value>,
    #[serde(with = "time::serde::rfc3339")]
    modified_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    server_modified_at: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    modified_by_device: Option<&'a str>,
    priority: sync_model::Priority,
    #[serde(skip_serializing_if = "Option::is_none")]
    bu: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict_risk: Option<f64>,
}

impl<'a> WireRecord<'a> {
    /// The record in full, its data as stored.
    fn full(row: &'a RecordRow) -> Result<Self> {
        let data: &RawValue = serde_json::from_str(&row.data)?;
        Ok(WireRecord {
            domain: &row.domain,
            mobile_id: mobile_uuid(row)?,
            version: row.version,
            deleted: row.deleted,
            data: Some(data),
            base_version: None,
            patch: None,
            modified_at: micros::stored(row.modified_at)?,
            server_modified_at: micros::stored(row.server_modified_at)?,
            modified_by_device: Some(&row.modified_by_device),
            priority: row.priority,
            bu: row.bu.as_deref(),
            conflict_risk: None,
        })
    }
}

/// A pull response ([`PullResponse`]'s JSON) made of [`WireRecord`]s.
#[derive(Debug, serde::Serialize)]
struct WirePage<'a> {
    changes: Vec<WireRecord<'a>>,
    cursor: String,
    has_more: bool,
    remaining: i64,
}

/// A page as read, before it is written as JSON.
struct Page {
    rows: Vec<RecordRow>,
    /// Per row, the patch from the version the caller holds, where it is smaller.
    patches: Vec<Option<(i64, Value)>>,
    risks: Vec<Option<f64>>,
    cursor: String,
    has_more: bool,
    remaining: i64,
    /// What the deltas saved against sending every record in full.
    delta_saved: usize,
}

impl Page {
    fn to_json(&self) -> Result<Vec<u8>> {
        let mut changes = Vec::with_capacity(self.rows.len());
        for ((row, patch), risk) in self.rows.iter().zip(&self.patches).zip(&self.risks) {
            let mut record = WireRecord::full(row)?;
            if let Some((base, patch)) = patch {
                record.data = None;
                record.base_version = Some(*base);
                record.patch = Some(patch);
            }
            record.conflict_risk = *risk;
            changes.push(record);
        }
        let page = WirePage {
            changes,
            cursor: self.cursor.clone(),
            has_more: self.has_more,
            remaining: self.remaining,
        };
        Ok(serde_json::to_vec(&page)?)
    }
}

/// A pull's `remaining` is exact up to this many records, an estimate beyond.
const REMAINING_EXACT_UP_TO: i64 = 10_000;

/// Parses an optional cursor; a cursor the server did not make is a 400.
pub fn parse_cursor(cursor: Option<&str>) -> Result<Cursor> {
    match cursor {
        None | Some("") => Ok(Cursor::default()),
        Some(text) => Cursor::parse(text).ok_or_else(|| Error::BadRequest {
            code: "invalid_cursor",
            message: format!("`{text}` is not a cursor this server handed out"),
        }),
    }
}

impl SyncEngine {
    /// Checks a list of domain names against the registry.
    pub(crate) fn check_domains(&self, domains: Option<&[String]>) -> Result<()> {
        for domain in domains.unwrap_or_default() {
            if self.domains.get(domain).is_none() {
                return Err(Error::BadRequest {
                    code: "unknown_domain",
                    message: format!("unknown domain `{domain}`"),
                });
            }
        }
        Ok(())
    }

    /// The page size for a request: its `limit`, else the network quality's batch size, at
    /// most `max_pull_limit`.
    fn page_size(&self, limit: Option<u32>, network: Option<&str>) -> Result<i64> {
        let limit = limit.unwrap_or_else(|| {
            u32::try_from(self.config.batch_sizes.for_header(network)).unwrap_or(self.config.max_pull_limit)
        });
        if limit == 0 {
            return Err(Error::BadRequest {
                code: "invalid_limit",
                message: "limit must be at least 1".into(),
            });
        }
        Ok(i64::from(limit.min(self.config.max_pull_limit)))
    }

    /// Everything in the caller's tenant and units after `request.cursor`. With a
    /// `device_id`, the pull is recorded as a sync of that device, failed or not, and its
    /// time per item is measured.
    pub async fn pull(
        &self,
        principal: &Principal,
        request: PullRequest,
        encoding: &dyn BodyEncoding,
    ) -> Result<PullReply> {
        let started = std::time::Instant::now();
        let device_id = request.device_id.clone();
        let network = request.network_quality.clone();
        let result = self.pull_from(principal, request, encoding, started).await;
        if let (Err(error), Some(device_id)) = (&result, device_id) {
            let failed = FailedSync {
                device_id,
                kind: SyncEventKind::Pull,
                duration: started.elapsed(),
                wire: WireBytes::default(),
                network,
            };
            self.note_failure(principal, error, failed).await;
        }
        result
    }

    async fn pull_from(
        &self,
        principal: &Principal,
        request: PullRequest,
        encoding: &dyn BodyEncoding,
        started: std::time::Instant,
    ) -> Result<PullReply> {
        let cursor = parse_cursor(request.cursor.as_deref())?;
        let limit = self.page_size(request.limit, request.network_quality.as_deref())?;
        self.check_domains(request.domains.as_deref())?;
        if let Some(device) = &request.device_id {
            check_device_id(device)?;
        }
        let tenant = principal.tenant.clone();
        let units = principal.units.clone();
        let domains = request.domains.clone();
        let delta = request.delta;
        let hints = request.hints.then_some(self.config.conflict_risk_threshold);
        let page = self
            .db
            .read_tx(move |conn| {
                let mark = store::get_purge_mark(conn, &tenant)?;
                if cursor.seq() > 0 && cursor.seq() < mark {
                    return Err(Error::ResyncRequired);
                }
                // Read before the page: every sequence number up to here is committed and
                // so in the page if it matches, which makes it a safe cursor when the page
                // ends the stream.
                let committed = store::current_seq(conn, &tenant)?;
                let filter =
                    PullFilter { domains: domains.as_deref(), units: units.as_deref(), priorities: None };
                let mut rows = store::pull_page(conn, &tenant, cursor.seq(), limit + 1, &filter)?;
                let has_more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
                rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                let last = rows.last().map_or(cursor.seq(), |r| r.seq);
                let next = if has_more { last } else { last.max(committed).max(cursor.seq()) };
                let remaining = if has_more {
                    store::estimate_after(conn, &tenant, next, committed, &filter, REMAINING_EXACT_UP_TO)?
                } else {
                    0
                };
                let held = if delta && cursor.seq() > 0 {
                    store::versions_as_of(conn, &tenant, &rows, cursor.seq())?
                } else {
                    Default::default()
                };
                // A patch starts only from a version the caller could have received: one of its
                // units (a record may have moved in from another unit since).
                let received = |h: &store::VersionRow| {
                    units.as_deref().is_none_or(|units| h.bu.as_ref().is_none_or(|bu| units.contains(bu)))
                };
                let mut delta_saved = 0;
                let mut patches = Vec::with_capacity(rows.len());
                for row in &rows {
                    let held = held
                        .get(&row.key())
                        .filter(|h| h.version < row.version && !h.deleted && !row.deleted && received(h));
                    let mut patched = None;
                    if let Some(held) = held {
                        // The stored text is the record's compact JSON: its length is the full
                        // record's on the wire.
                        let full_len = row.data.len();
                        let old: Value = serde_json::from_str(&held.data)?;
                        let new: Value = serde_json::from_str(&row.data)?;
                        let patch = delta::diff(&old, &new).to_value();
                        let patch_len = delta::serialized_len(&patch);
                        if patch_len < full_len {
                            delta_saved += full_len - patch_len;
                            patched = Some((held.version, patch));
                        }
                    }
                    patches.push(patched);
                }
                let risks = match hints {
                    Some(threshold) => {
                        let keys: Vec<RecordKey> = rows.iter().map(RecordRow::key).collect();
                        let risks = store::risks_of(conn, &tenant, &keys, threshold)?;
                        keys.iter().map(|key| risks.get(key).copied()).collect()
                    }
                    None => vec![None; rows.len()],
                };
                Ok(Page {
                    rows,
                    patches,
                    risks,
                    cursor: Cursor(next).to_string(),
                    has_more,
                    remaining,
                    delta_saved,
                })
            })
            .await?;

        let json = page.to_json()?;
        let json_len = json.len();
        let (body, content_encoding) = encoding.encode(json)?;
        let reply = PullReply {
            body,
            content_encoding,
            json_len,
            cursor: page.cursor.clone(),
            has_more: page.has_more,
            remaining: page.remaining,
            changes: page.rows.len(),
        };
        if let Some(device) = request.device_id.clone() {
            let principal = principal.clone();
            let next = parse_cursor(Some(&page.cursor))?.seq();
            let network = request.network_quality.clone();
            let mut domains: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for row in &page.rows {
                domains.entry(row.domain.clone()).or_default().0 += 1;
            }
            let changes = page.rows.len();
            // On the wire: the body as sent; raw: before compression and deltas.
            let sent = reply.body.len();
            let raw = json_len + page.delta_saved;
            let tenant = principal.tenant.clone();
            self.retrying_grouped_write(&tenant, move |conn| {
                let now = OffsetDateTime::now_utc();
                store::set_device_cursor(
                    conn,
                    &principal.tenant,
                    &device,
                    &principal.user,
                    next,
                    micros::from_datetime(now),
                )?;
                let duration_ms = elapsed_ms(started);
                record_time_per_item(conn, &principal, &device, duration_ms, changes, now)?;
                record_sync(
                    conn,
                    &SyncRecord {
                        principal: &principal,
                        device_id: &device,
                        kind: SyncEventKind::Pull,
                        success: true,
                        duration_ms,
                        at: now,
                        changes,
                        conflicts: 0,
                        manual: 0,
                        bytes_raw: raw,
                        bytes_sent: sent,
                        domains: domains.clone(),
                        network: network.as_deref(),
                        clock_skew_ms: None,
                    },
                )
            })
            .await?;
        }
        Ok(reply)
    }
}

/// A stored record's `mobile_id` as the UUID the wire shows.
fn mobile_uuid(row: &RecordRow) -> Result<uuid::Uuid> {
    row.mobile_id
        .parse()
        .map_err(|_| Error::Corrupt(format!("stored mobile_id `{}` is not a UUID", row.mobile_id)))
}

/// A stored record as the wire shows it, with full data.
pub(crate) fn record_envelope(row: &RecordRow) -> Result<RecordEnvelope> {
    Ok(RecordEnvelope {
        domain: row.domain.clone(),
        mobile_id: mobile_uuid(row)?,
        version: row.version,
        deleted: row.deleted,
        data: Some(serde_json::from_str(&row.data)?),
        base_version: None,
        patch: None,
        modified_at: micros::stored(row.modified_at)?,
        server_modified_at: micros::stored(row.server_modified_at)?,
        modified_by_device: Some(row.modified_by_device.clone()),
        priority: row.priority,
        bu: row.bu.clone(),
        conflict_risk: None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::{WireRecord, record_envelope};
    use crate::store::RecordRow;

    /// Any JSON value a record's field may hold: numbers of every kind, escapes, nesting.
    pub(crate) fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "\\PC*".prop_map(Value::String),
            "[\u{0}-\u{1f}\"\\\\/é😀]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn row(data: &Map<String, Value>, deleted: bool, bu: Option<String>) -> RecordRow {
        RecordRow {
            tenant_id: "t".into(),
            domain: "task".into(),
            mobile_id: uuid::Uuid::now_v7().to_string(),
            version: 7,
            // As the push path stores it.
            data: serde_json::to_string(data).unwrap(),
            deleted,
            modified_at: 1_700_000_000_123_456,
            server_modified_at: 1_700_000_001_000_001,
            modified_by_device: "phone-1".into(),
            bu,
            priority: sync_model::Priority::High,
            seq: 42,
        }
    }

    proptest! {
        /// Passing the stored data through gives, byte for byte, the JSON of the envelope
        /// the data parsed and written again would give.
        #[test]
        fn the_pass_through_is_the_envelope_byte_for_byte(
            data in prop::collection::btree_map("\\PC{0,12}", json(), 0..8),
            deleted in any::<bool>(),
            bu in proptest::option::of("[a-z]{1,6}"),
        ) {
            let data: Map<String, Value> = data.into_iter().collect();
            let row = row(&data, deleted, bu);
            let wire = serde_json::to_vec(&WireRecord::full(&row).unwrap()).unwrap();
            let envelope = serde_json::to_vec(&record_envelope(&row).unwrap()).unwrap();
            prop_assert_eq!(String::from_utf8(wire).unwrap(), String::from_utf8(envelope).unwrap());
        }
    }
}
