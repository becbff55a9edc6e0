//! Tenant policies and manual conflicts (PROTOCOL.md section 4).

use std::collections::HashMap;

use serde_json::Value;
use sync_conflict::{Policy, PolicySource, RecordState, TenantPolicy, Winner};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    SyncEngine,
    decide::NewVersion,
    health::{SyncRecord, elapsed_ms, record_sync},
    pull::record_envelope,
    push::{effective_policy, record_state, write_versions},
};
use crate::{
    Error, Result,
    live::{CommitKind, Committed},
    micros,
    store::{self, ConflictQuery, ConflictStatus, PolicyRow, Principal, RecordKey, Role, SyncEventKind},
};

// The policy and conflict wire types live in sync-protocol; re-exported from `engine` as before.
pub use sync_protocol::{Choice, ConflictView, PolicyUpdate, PolicyView, ResolveRequest, ResolveResponse};

pub(crate) fn require_admin(principal: &Principal) -> Result<()> {
    if principal.role == Role::Admin {
        Ok(())
    } else {
        Err(Error::Forbidden("this needs the admin role".into()))
    }
}

fn json_text(text: Option<&str>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

impl SyncEngine {
    /// The effective policy of every domain for the caller's tenant.
    pub async fn policies(&self, principal: &Principal) -> Result<Vec<PolicyView>> {
        let tenant = principal.tenant.clone();
        let engine = self.clone();
        self.db
            .run(move |conn| {
                let rows = store::get_policies(conn, &tenant)?;
                Ok(engine.domains.names().map(|domain| engine.policy_view(domain, &rows)).collect())
            })
            .await
    }

    fn policy_view(&self, domain: &str, rows: &[PolicyRow]) -> PolicyView {
        let override_ = rows.iter().find(|r| r.domain == domain).and_then(|r| {
            TenantPolicy::new(r.policy.parse().ok()?, r.auto_resolve, r.notify_on_conflict).ok()
        });
        let default = self.domains.get(domain).map_or(Policy::Manual, |d| d.default_policy());
        let effective = effective_policy(default, domain, override_.as_ref());
        PolicyView {
            domain: domain.to_owned(),
            policy: effective.policy,
            configured_policy: effective.configured,
            auto_resolve: effective.auto_resolve,
            notify_on_conflict: effective.notify_on_conflict,
            source: if override_.is_some() { PolicySource::Tenant } else { PolicySource::Default },
        }
    }

    /// Sets the tenant's policy for one domain (admin).
    pub async fn set_policy(
        &self,
        principal: &Principal,
        domain: &str,
        update: PolicyUpdate,
    ) -> Result<PolicyView> {
        require_admin(principal)?;
        if self.domains.get(domain).is_none() {
            return Err(Error::NotFound(format!("unknown domain `{domain}`")));
        }
        // A manual policy never resolves by itself (PROTOCOL.md 4.1): `{"policy": "manual"}`
        // alone, or with the default `auto_resolve: true`, is stored with `auto_resolve: false`.
        let auto_resolve = update.auto_resolve && update.policy != Policy::Manual;
        let policy = TenantPolicy::new(update.policy, auto_resolve, update.notify_on_conflict)
            .map_err(|e| Error::Unprocessable { code: "invalid_policy", message: e.to_string() })?;
        let row = PolicyRow {
            tenant_id: principal.tenant.clone(),
            domain: domain.to_owned(),
            policy: policy.policy().to_string(),
            auto_resolve: policy.auto_resolve(),
            notify_on_conflict: policy.notify_on_conflict(),
            updated_at: micros::now(),
        };
        let engine = self.clone();
        let domain = domain.to_owned();
        let fact = Committed::new(CommitKind::Policy, principal.tenant.clone(), 0);
        let told = fact.clone();
        let view = self
            .retrying_write(move |conn| {
                store::upsert_policy(conn, &row)?;
                engine.notify_in_tx(conn, &told)?;
                let rows = store::get_policies(conn, &row.tenant_id)?;
                Ok(engine.policy_view(&domain, &rows))
            })
            .await?;
        self.publish(&[fact]);
        Ok(view)
    }

    /// Logged conflicts of the caller's tenant, newest first (admin). `status`: `pending`,
    /// `resolved`, `auto`, or `None` for all.
    pub async fn conflicts(
        &self,
        principal: &Principal,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ConflictView>> {
        require_admin(principal)?;
        let status = status
            .filter(|s| *s != "all")
            .map(|s| {
                // The exact words, as the query parameter's pattern says.
                ConflictStatus::ALL.iter().copied().find(|c| c.as_str() == s).ok_or_else(|| {
                    Error::BadRequest {
                        code: "invalid_status",
                        message: format!("status must be pending, resolved, auto or all (got `{s}`)"),
                    }
                })
            })
            .transpose()?;
        let tenant = principal.tenant.clone();
        let limit = limit.clamp(1, 1000);
        self.db
            .run(move |conn| {
                let query = ConflictQuery { status, limit: Some(limit), ..ConflictQuery::default() };
                store::list_conflicts(conn, &tenant, &query)?.into_iter().map(conflict_view).collect()
            })
            .await
    }

    /// Resolves a pending conflict by an admin's choice; the result is a new version.
    pub async fn resolve_conflict(
        &self,
        principal: &Principal,
        id: &str,
        request: ResolveRequest,
    ) -> Result<ResolveResponse> {
        require_admin(principal)?;
        if Uuid::parse_str(id).is_err() {
            return Err(Error::NotFound(format!("no conflict `{id}`")));
        }
        if request.choose != Choice::Custom && request.data.is_some() {
            return Err(Error::BadRequest {
                code: "validation",
                message: "data: only with choose = custom".into(),
            });
        }
        let engine = self.clone();
        let principal = principal.clone();
        let id = id.to_owned();
        let (response, fact) = self
            .retrying_write(move |conn| {
                let started = std::time::Instant::now();
                let tenant = principal.tenant.as_str();
                let conflict = store::get_conflict(conn, tenant, &id)?
                    .ok_or_else(|| Error::NotFound(format!("no conflict `{id}`")))?;
                if conflict.status != ConflictStatus::Pending {
                    return Err(Error::Conflict(format!(
                        "conflict `{id}` is not pending (it is {})",
                        conflict.status.as_str()
                    )));
                }
                let service = engine.domains.get(&conflict.domain).ok_or_else(|| Error::Unprocessable {
                    code: "unknown_domain",
                    message: format!("unknown domain `{}`", conflict.domain),
                })?;
                let key = RecordKey::new(conflict.domain.clone(), conflict.mobile_id.clone());
                let mut rows = store::get_records_for_update(conn, tenant, std::slice::from_ref(&key))?;
                let row = rows
                    .remove(&key)
                    .ok_or_else(|| Error::NotFound(format!("record of conflict `{id}` is gone")))?;
                let current = record_state(&row)?;
                let now = OffsetDateTime::now_utc();
                let chosen: RecordState = match request.choose {
                    Choice::Server => current.clone(),
                    Choice::Client => {
                        let text = conflict.client_state.as_deref().unwrap_or("null");
                        serde_json::from_str(text)
                            .map_err(|e| Error::Corrupt(format!("stored client state: {e}")))?
                    }
                    Choice::Custom => match &request.data {
                        Some(Value::Object(data)) => {
                            RecordState::new(data.clone(), now, format!("admin:{}", principal.user))
                        }
                        _ => {
                            return Err(Error::BadRequest {
                                code: "validation",
                                message: "data: a JSON object is required with choose = custom".into(),
                            });
                        }
                    },
                };
                if !chosen.deleted {
                    service
                        .validate(&chosen.data)
                        .map_err(|e| Error::Unprocessable { code: "validation", message: e.to_string() })?;
                    if let (Some(from), Some(to)) = (
                        (!current.deleted)
                            .then(|| current.data.get("status").and_then(Value::as_str))
                            .flatten(),
                        chosen.data.get("status").and_then(Value::as_str),
                    ) {
                        sync_state_machine::StateMachine::default()
                            .check(service.workflow(), from, to)
                            .map_err(|e| Error::Unprocessable {
                                code: "invalid_transition",
                                message: e.to_string(),
                            })?;
                    }
                }
                let now_us = micros::from_datetime(now);
                let version = row.version + 1;
                let modified_at = chosen.modified_at.max(current.modified_at);
                let write = NewVersion {
                    version,
                    state: RecordState { modified_at, ..chosen },
                    bu: row.bu.clone(),
                    priority: row.priority,
                };
                let stored = HashMap::from([(key.clone(), row)]);
                let (fact, mut rows) = write_versions(conn, tenant, &[(key, write)], &stored, now_us)?
                    .ok_or_else(|| Error::Internal("resolving wrote no version".into()))?;
                let new = rows.pop().ok_or_else(|| Error::Internal("resolving wrote no row".into()))?;
                engine.notify_in_tx(conn, &fact)?;
                let winner = match request.choose {
                    Choice::Client => Winner::Client,
                    Choice::Server => Winner::Server,
                    Choice::Custom => Winner::Merged,
                };
                if !store::mark_conflict_resolved(
                    conn,
                    tenant,
                    &id,
                    &principal.user,
                    now_us,
                    Some(new.version),
                    winner,
                )? {
                    return Err(Error::WriteConflict(format!("conflict `{id}` changed while resolving it")));
                }
                record_sync(
                    conn,
                    &SyncRecord {
                        principal: &principal,
                        device_id: &conflict.device_id,
                        kind: SyncEventKind::Resolve,
                        success: true,
                        duration_ms: elapsed_ms(started),
                        at: now,
                        changes: 1,
                        conflicts: 0,
                        manual: 0,
                        bytes_raw: 0,
                        bytes_sent: 0,
                        domains: [(conflict.domain.clone(), (1, 0))].into_iter().collect(),
                        network: None,
                        clock_skew_ms: None,
                    },
                )?;
                let response = ResolveResponse {
                    conflict_id: id.clone(),
                    status: ConflictStatus::Resolved,
                    version: new.version,
                    record: record_envelope(&new)?,
                };
                Ok((response, fact))
            })
            .await?;
        self.publish(&[fact]);
        Ok(response)
    }
}

pub(crate) fn conflict_view(row: store::ConflictRow) -> Result<ConflictView> {
    Ok(ConflictView {
        details: serde_json::from_str(&row.details).unwrap_or(Value::Null),
        client_state: json_text(row.client_state.as_deref()),
        server_state: json_text(row.server_state.as_deref()),
        created_at: micros::stored(row.created_at)?,
        resolved_at: row.resolved_at.map(micros::stored).transpose()?,
        id: row.id,
        domain: row.domain,
        mobile_id: row.mobile_id,
        server_version: row.server_version,
        client_base_version: row.client_base_version,
        client_version: row.client_version,
        strategy: row.strategy,
        result: row.result,
        winner: row.winner,
        status: row.status,
        device_id: row.device_id,
        user_id: row.user_id,
        resolved_by: row.resolved_by,
    })
}
