//! The pull engine (PROTOCOL.md section 5): what changed after a cursor, in change-sequence
//! order, as full records or deltas, and the device's remembered cursor.

use std::collections::BTreeMap;

use serde_json::Value;
use sync_bandwidth::{self as delta, CompressionConfig, CompressionMode, Encoding};
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

/// A pull's answer: the response, and its JSON body encoded for the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct PullReply {
    pub response: PullResponse,
    /// The JSON body, gzip-encoded when the caller accepts gzip and it pays.
    pub body: Vec<u8>,
    /// `Some("gzip")` when `body` is compressed.
    pub content_encoding: Option<&'static str>,
    /// The JSON body's length before compression.
    pub json_len: usize,
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
        accept_gzip: bool,
    ) -> Result<PullReply> {
        let started = std::time::Instant::now();
        let device_id = request.device_id.clone();
        let network = request.network_quality.clone();
        let result = self.pull_from(principal, request, accept_gzip, started).await;
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
        accept_gzip: bool,
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
        let (response, delta_saved) = self
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
                    let keys: Vec<RecordKey> = rows.iter().map(RecordRow::key).collect();
                    store::versions_as_of(conn, &tenant, &keys, cursor.seq())?
                } else {
                    Default::default()
                };
                // What the deltas saved against sending every record in full.
                let mut delta_saved = 0;
                let mut changes = Vec::with_capacity(rows.len());
                // A patch starts only from a version the caller could have received: one of its
                // units (a record may have moved in from another unit since).
                let received = |h: &store::VersionRow| {
                    units.as_deref().is_none_or(|units| h.bu.as_ref().is_none_or(|bu| units.contains(bu)))
                };
                for row in &rows {
                    let mut envelope = record_envelope(row)?;
                    let data = envelope.data.take().unwrap_or(Value::Null);
                    let full_len = delta::serialized_len(&data);
                    envelope.data = Some(data);
                    if let Some(held) = held
                        .get(&row.key())
                        .filter(|h| h.version < row.version && !h.deleted && !row.deleted && received(h))
                    {
                        let old: Value = serde_json::from_str(&held.data)?;
                        if let Some(new) = &envelope.data {
                            let patch = delta::diff(&old, new).to_value();
                            let patch_len = delta::serialized_len(&patch);
                            if patch_len < full_len {
                                delta_saved += full_len - patch_len;
                                envelope.data = None;
                                envelope.base_version = Some(held.version);
                                envelope.patch = Some(patch);
                            }
                        }
                    }
                    changes.push(envelope);
                }
                if let Some(threshold) = hints {
                    super::insight::add_risk_hints(conn, &tenant, threshold, &mut changes)?;
                }
                let response =
                    PullResponse { changes, cursor: Cursor(next).to_string(), has_more, remaining };
                Ok((response, delta_saved))
            })
            .await?;

        let (body, content_encoding, json_len) = self.encode_measured(&response, accept_gzip)?;
        if let Some(device) = request.device_id.clone() {
            let principal = principal.clone();
            let next = parse_cursor(Some(&response.cursor))?.seq();
            let network = request.network_quality.clone();
            let mut domains: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for change in &response.changes {
                domains.entry(change.domain.clone()).or_default().0 += 1;
            }
            let changes = response.changes.len();
            // On the wire: the body as sent; raw: before compression and deltas.
            let sent = body.len();
            let raw = json_len + delta_saved;
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
        Ok(PullReply { response, body, content_encoding, json_len })
    }

    /// Serialises a response and compresses it by the configured rules when the caller
    /// accepts gzip.
    pub fn encode<T: serde::Serialize>(
        &self,
        response: &T,
        accept_gzip: bool,
    ) -> Result<(Vec<u8>, Option<&'static str>)> {
        self.encode_measured(response, accept_gzip).map(|(body, encoding, _)| (body, encoding))
    }

    /// [`SyncEngine::encode`], with the length of the JSON before compression.
    pub fn encode_measured<T: serde::Serialize>(
        &self,
        response: &T,
        accept_gzip: bool,
    ) -> Result<(Vec<u8>, Option<&'static str>, usize)> {
        let json = serde_json::to_vec(response)?;
        let json_len = json.len();
        if !accept_gzip {
            return Ok((json, None, json_len));
        }
        let config = CompressionConfig {
            mode: CompressionMode::Adaptive,
            compression_threshold_bytes: self.config.compression_threshold_bytes,
            min_compression_ratio: self.config.min_compression_ratio,
            gzip_level: self.config.compression_level,
            ..CompressionConfig::default()
        };
        let compressed = config
            .compress_as(json, Encoding::Gzip)
            .map_err(|e| Error::Internal(format!("compressing a response: {e}")))?;
        let encoding = compressed.content_encoding();
        Ok((compressed.body, encoding, json_len))
    }
}

/// A stored record as the wire shows it, with full data.
pub(crate) fn record_envelope(row: &RecordRow) -> Result<RecordEnvelope> {
    Ok(RecordEnvelope {
        domain: row.domain.clone(),
        mobile_id: row
            .mobile_id
            .parse()
            .map_err(|_| Error::Corrupt(format!("stored mobile_id `{}` is not a UUID", row.mobile_id)))?,
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
