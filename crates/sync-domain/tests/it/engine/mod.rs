//! Engine tests: push, pull, conflicts, queue, analytics and purge through the public
//! `SyncEngine` API, each on SQLite and PostgreSQL.

mod activity;
mod analytics;
mod concurrency;
mod conflicts;
mod convergence;
mod group_commit;
mod insight;
mod pull;
mod push;

use serde_json::{Value, json};
use sync_domain::engine::Identity;
use sync_domain::{
    Database, SyncConfig, SyncEngine,
    domains::DomainRegistry,
    protocol::{Change, Op, PullRequest, PullResponse, PushRequest, PushResponse},
    store::{Principal, Role},
};
use time::{OffsetDateTime, macros::datetime};
use uuid::Uuid;

pub fn engine(db: Database) -> SyncEngine {
    db.migrate().unwrap();
    SyncEngine::new(db, SyncConfig::default(), DomainRegistry::builtin())
}

pub fn device(tenant: &str, user: &str) -> Principal {
    Principal { tenant: tenant.into(), user: user.into(), role: Role::Device, units: None }
}

pub fn admin(tenant: &str) -> Principal {
    Principal { tenant: tenant.into(), user: "boss".into(), role: Role::Admin, units: None }
}

pub fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

pub const T0: OffsetDateTime = datetime!(2026-11-22 09:00:00 UTC);

pub fn at(minutes: i64) -> OffsetDateTime {
    T0 + time::Duration::minutes(minutes)
}

pub fn upsert(domain: &str, mobile_id: Uuid, base: i64, data: Value, minute: i64) -> Change {
    Change {
        domain: domain.into(),
        mobile_id,
        base_version: base,
        op: Op::Upsert,
        data: Some(data),
        patch: None,
        modified_at: at(minute),
        priority: None,
        bu: None,
    }
}

pub fn patch(domain: &str, mobile_id: Uuid, base: i64, ops: Value, minute: i64) -> Change {
    Change {
        op: Op::Patch,
        data: None,
        patch: Some(ops),
        ..upsert(domain, mobile_id, base, Value::Null, minute)
    }
}

pub fn delete(domain: &str, mobile_id: Uuid, base: i64, minute: i64) -> Change {
    Change { op: Op::Delete, data: None, ..upsert(domain, mobile_id, base, Value::Null, minute) }
}

pub fn task(title: &str, status: &str) -> Value {
    json!({"title": title, "status": status})
}

/// Pushes and parses the response; the push must succeed as a whole.
pub async fn push(
    engine: &SyncEngine,
    who: &Principal,
    device_id: &str,
    key: &str,
    changes: Vec<Change>,
) -> PushResponse {
    let request = PushRequest { device_id: device_id.into(), client_time: None, changes };
    let reply = engine.push(who, key, request, None).await.unwrap();
    serde_json::from_str(&reply.body).unwrap()
}

/// Pulls every page after `cursor`, returning the changes and the final cursor.
pub async fn pull_all(
    engine: &SyncEngine,
    who: &Principal,
    cursor: Option<String>,
    delta: bool,
) -> (Vec<sync_domain::protocol::RecordEnvelope>, String) {
    let mut cursor = cursor;
    let mut all = Vec::new();
    loop {
        let request = PullRequest { cursor: cursor.clone(), limit: Some(7), delta, ..PullRequest::default() };
        let PullResponse { changes, cursor: next, has_more, .. } =
            engine.pull(who, request, &Identity).await.unwrap().response().unwrap();
        all.extend(changes);
        cursor = Some(next);
        if !has_more {
            return (all, cursor.unwrap_or_default());
        }
    }
}

pub fn outcomes(response: &PushResponse) -> Vec<&'static str> {
    response.results.iter().map(|r| r.outcome.as_str()).collect()
}
