//! Idempotency records: a push's stored response, keyed by (tenant, user, device, key).

use diesel::prelude::*;

use crate::db::DbConnection;
use crate::error::Result;
use crate::schema::idempotency_keys;

/// A stored push response (table `idempotency_keys`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys)]
pub struct IdempotencyRow {
    /// Tenant of the caller.
    pub tenant_id: String,
    /// User of the caller.
    pub user_id: String,
    /// Device of the push.
    pub device_id: String,
    /// The `Idempotency-Key` header.
    pub key: String,
    /// Hash of the request body: the same key with another body is refused.
    pub request_hash: String,
    /// The response body, replayed byte for byte.
    pub response: String,
    /// When the key was first used (µs), for expiry.
    pub created_at: i64,
}

/// The stored response for a key, if any.
pub fn get_idempotency(
    conn: &mut DbConnection,
    tenant: &str,
    user: &str,
    device: &str,
    key: &str,
) -> Result<Option<IdempotencyRow>> {
    Ok(idempotency_keys::table
        .filter(idempotency_keys::tenant_id.eq(tenant))
        .filter(idempotency_keys::user_id.eq(user))
        .filter(idempotency_keys::device_id.eq(device))
        .filter(idempotency_keys::key.eq(key))
        .select(IdempotencyRow::as_select())
        .first(conn)
        .optional()?)
}

/// Stores a response; returns false (and changes nothing) when the key already exists, which
/// inside a push transaction means a concurrent push with the same key committed first:
/// roll back and replay its response.
pub fn put_idempotency(conn: &mut DbConnection, row: &IdempotencyRow) -> Result<bool> {
    let inserted = crate::dispatch!(conn, c => diesel::insert_into(idempotency_keys::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

/// Deletes keys created before `before` (µs), for one tenant or all (`None`); returns how
/// many.
pub fn purge_expired_idempotency(
    conn: &mut DbConnection,
    tenant: Option<&str>,
    before: i64,
) -> Result<usize> {
    let n = match tenant {
        Some(tenant) => diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::tenant_id.eq(tenant))
                .filter(idempotency_keys::created_at.lt(before)),
        )
        .execute(conn)?,
        None => diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(before)))
            .execute(conn)?,
    };
    Ok(n)
}
