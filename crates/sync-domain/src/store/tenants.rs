//! Tenants, users and hashed API tokens.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::upsert::excluded;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{encode_units, parse_units, text_enum};
use crate::db::DbConnection;
use crate::error::{Error, Result};
use crate::schema::{api_tokens, change_counters, tenants, users};

text_enum! {
    /// What a user may do: `device` pushes, pulls and reads its own queue and health; `admin`
    /// also reads analytics, manages policies and resolves manual conflicts.
    pub enum Role {
        /// A field device.
        Device = "device",
        /// A tenant administrator.
        Admin = "admin",
    }
}

/// Who a token (or JWT) stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant every request of this principal is confined to.
    pub tenant: String,
    /// The user id.
    pub user: String,
    /// The role.
    pub role: Role,
    /// Business units the principal is limited to (`None`: all units).
    pub units: Option<Vec<String>>,
}

/// A user of a tenant (table `users`).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
#[diesel(treat_none_as_default_value = false)]
pub struct UserRow {
    /// Owning tenant.
    pub tenant_id: String,
    /// User id.
    pub id: String,
    /// Role.
    pub role: Role,
    /// JSON array of business units, or `None` for all units.
    pub units: Option<String>,
    /// Creation time (µs).
    pub created_at: i64,
}

impl UserRow {
    /// `units` parsed.
    pub fn units_list(&self) -> Result<Option<Vec<String>>> {
        parse_units(self.units.as_deref())
    }
}

/// Every token starts with this, so that a leaked one is easy to recognise (secret scanners).
pub const TOKEN_PREFIX: &str = "sf_";

/// Creates the tenant row (and its change counter) if missing. Idempotent.
pub fn ensure_tenant(conn: &mut DbConnection, tenant: &str, now: i64) -> Result<()> {
    crate::dispatch!(&mut *conn, c => diesel::insert_into(tenants::table)
        .values((tenants::id.eq(tenant), tenants::created_at.eq(now)))
        .on_conflict_do_nothing()
        .execute(c))?;
    crate::dispatch!(&mut *conn, c => diesel::insert_into(change_counters::table)
        .values((change_counters::tenant_id.eq(tenant), change_counters::last_seq.eq(0_i64)))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(())
}

/// Every tenant known to the database (with a tenant row or a change counter), sorted: for
/// the scheduled jobs that run per tenant.
pub fn tenant_ids(conn: &mut DbConnection) -> Result<Vec<String>> {
    let mut ids: BTreeSet<String> =
        tenants::table.select(tenants::id).load::<String>(conn)?.into_iter().collect();
    ids.extend(change_counters::table.select(change_counters::tenant_id).load::<String>(conn)?);
    Ok(ids.into_iter().collect())
}

/// Creates or updates a user (role and units are replaced).
pub fn upsert_user(conn: &mut DbConnection, user: &UserRow) -> Result<()> {
    crate::dispatch!(conn, c => diesel::insert_into(users::table)
        .values(user)
        .on_conflict((users::tenant_id, users::id))
        .do_update()
        .set((users::role.eq(excluded(users::role)), users::units.eq(excluded(users::units))))
        .execute(c))?;
    Ok(())
}

/// A user of `tenant`, if present.
pub fn get_user(conn: &mut DbConnection, tenant: &str, user: &str) -> Result<Option<UserRow>> {
    Ok(users::table
        .filter(users::tenant_id.eq(tenant))
        .filter(users::id.eq(user))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// SHA-256 of a token, hex-encoded: what the database stores instead of the token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// How stale `last_used_at` may get: a token's use is written at most once per this many
/// microseconds (one minute), so that authentication is not a write per request.
pub const LAST_USED_RESOLUTION_MICROS: i64 = 60_000_000;

/// A token as `token list` shows it: everything but the token (which is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
pub struct TokenRow {
    /// The token's public id (a UUID), for listing and revoking.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The user it stands for.
    pub user_id: String,
    /// Its role.
    pub role: Role,
    /// JSON array of business units, or `None` for all units.
    pub units: Option<String>,
    /// Creation time (µs).
    pub created_at: i64,
    /// Expiry (µs), `None`: never.
    pub expires_at: Option<i64>,
    /// Last authenticated use (µs, at most a minute stale), `None`: never used.
    pub last_used_at: Option<i64>,
    /// Whether it was revoked.
    pub revoked: bool,
    /// When it was revoked (µs; `None` for tokens revoked before this was recorded).
    pub revoked_at: Option<i64>,
}

impl TokenRow {
    /// `units` parsed.
    pub fn units_list(&self) -> Result<Option<Vec<String>>> {
        parse_units(self.units.as_deref())
    }

    /// Whether the token authenticates at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        !self.revoked && self.expires_at.is_none_or(|at| at > now)
    }
}

/// Creates a token for `user` of `tenant` with `role` and `units` (`None`: all units),
/// creating the tenant and the user if needed (an existing user takes the given role and
/// units), and returns the plaintext, the only time it exists: `sf_` + 64 hex digits
/// (32 random bytes from the operating system's CSPRNG). `expires_at` (µs) `None`: never.
pub fn create_token(
    conn: &mut DbConnection,
    tenant: &str,
    user: &str,
    role: Role,
    units: Option<&[String]>,
    expires_at: Option<i64>,
    now: i64,
) -> Result<String> {
    if tenant.is_empty() || user.is_empty() {
        return Err(Error::InvalidArgument("tenant and user must not be empty".into()));
    }
    let mut secret = [0_u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let units = encode_units(units);
    ensure_tenant(conn, tenant, now)?;
    upsert_user(
        conn,
        &UserRow { tenant_id: tenant.into(), id: user.into(), role, units: units.clone(), created_at: now },
    )?;
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::token_hash.eq(hash_token(&token)),
            api_tokens::id.eq(uuid::Uuid::new_v4().to_string()),
            api_tokens::tenant_id.eq(tenant),
            api_tokens::user_id.eq(user),
            api_tokens::role.eq(role),
            api_tokens::units.eq(units),
            api_tokens::created_at.eq(now),
            api_tokens::expires_at.eq(expires_at),
            api_tokens::revoked.eq(false),
        ))
        .execute(conn)?;
    Ok(token)
}

/// The principal of a token, if it is known, not revoked and not expired at `now`. A pure
/// read; authentication uses [`authenticate_token`], which also records the use.
pub fn lookup_token(conn: &mut DbConnection, token: &str, now: i64) -> Result<Option<Principal>> {
    Ok(active_token(conn, token, now)?.map(|(active, _)| active.principal))
}

/// A token authentication accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveToken {
    pub principal: Principal,
    /// When it expires (µs), if ever.
    pub expires_at: Option<i64>,
}

/// Authentication's one look-up: the principal of a token that is known, not revoked and not
/// expired at `now`, recording `now` as its last use when the recorded one is older than
/// [`LAST_USED_RESOLUTION_MICROS`] (so at most one write per token per minute; the update is
/// conditional, so several nodes do not write the same minute twice).
pub fn authenticate_token(conn: &mut DbConnection, token: &str, now: i64) -> Result<Option<ActiveToken>> {
    let Some((active, last_used_at)) = active_token(conn, token, now)? else { return Ok(None) };
    let stale_before = now.saturating_sub(LAST_USED_RESOLUTION_MICROS);
    if last_used_at.is_none_or(|at| at <= stale_before) {
        diesel::update(
            api_tokens::table
                .filter(api_tokens::token_hash.eq(hash_token(token)))
                .filter(api_tokens::last_used_at.is_null().or(api_tokens::last_used_at.le(stale_before))),
        )
        .set(api_tokens::last_used_at.eq(now))
        .execute(conn)?;
    }
    Ok(Some(active))
}

fn active_token(
    conn: &mut DbConnection,
    token: &str,
    now: i64,
) -> Result<Option<(ActiveToken, Option<i64>)>> {
    let row = api_tokens::table
        .filter(api_tokens::token_hash.eq(hash_token(token)))
        .filter(api_tokens::revoked.eq(false))
        .filter(api_tokens::expires_at.is_null().or(api_tokens::expires_at.gt(now)))
        .select((
            api_tokens::tenant_id,
            api_tokens::user_id,
            api_tokens::role,
            api_tokens::units,
            api_tokens::expires_at,
            api_tokens::last_used_at,
        ))
        .first::<(String, String, Role, Option<String>, Option<i64>, Option<i64>)>(conn)
        .optional()?;
    row.map(|(tenant, user, role, units, expires_at, last_used_at)| {
        let principal = Principal { tenant, user, role, units: parse_units(units.as_deref())? };
        Ok((ActiveToken { principal, expires_at }, last_used_at))
    })
    .transpose()
}

/// Every token of `tenant` (active, expired and revoked), oldest first.
pub fn list_tokens(conn: &mut DbConnection, tenant: &str) -> Result<Vec<TokenRow>> {
    Ok(api_tokens::table
        .filter(api_tokens::tenant_id.eq(tenant))
        .order((api_tokens::created_at.asc(), api_tokens::id.asc()))
        .select(TokenRow::as_select())
        .load(conn)?)
}

/// A token by its id.
pub fn token_by_id(conn: &mut DbConnection, id: &str) -> Result<Option<TokenRow>> {
    Ok(api_tokens::table
        .filter(api_tokens::id.eq(id))
        .select(TokenRow::as_select())
        .first(conn)
        .optional()?)
}

/// Tells every node that cached token look-ups are stale (PostgreSQL NOTIFY, delivered when
/// the revoking transaction commits; nothing on SQLite, whose one server reads through).
fn tokens_revoked(conn: &mut DbConnection, revoked: usize) -> Result<()> {
    if revoked > 0 {
        crate::live::pg_notify(conn, crate::live::CommitKind::Token, crate::live::WAKE_ALL, 0)?;
    }
    Ok(())
}

/// Revokes a token by its plaintext; returns whether it existed and was not yet revoked.
pub fn revoke_token(conn: &mut DbConnection, token: &str, now: i64) -> Result<bool> {
    let n = diesel::update(
        api_tokens::table
            .filter(api_tokens::token_hash.eq(hash_token(token)))
            .filter(api_tokens::revoked.eq(false)),
    )
    .set((api_tokens::revoked.eq(true), api_tokens::revoked_at.eq(now)))
    .execute(conn)?;
    tokens_revoked(conn, n)?;
    Ok(n > 0)
}

/// Revokes a token by its id (see [`TokenRow::id`]); returns whether it existed and was not
/// yet revoked.
pub fn revoke_token_id(conn: &mut DbConnection, id: &str, now: i64) -> Result<bool> {
    let n =
        diesel::update(api_tokens::table.filter(api_tokens::id.eq(id)).filter(api_tokens::revoked.eq(false)))
            .set((api_tokens::revoked.eq(true), api_tokens::revoked_at.eq(now)))
            .execute(conn)?;
    tokens_revoked(conn, n)?;
    Ok(n > 0)
}

/// Revokes every token of `user` of `tenant` not yet revoked; returns how many.
pub fn revoke_user_tokens(conn: &mut DbConnection, tenant: &str, user: &str, now: i64) -> Result<usize> {
    let n = diesel::update(
        api_tokens::table
            .filter(api_tokens::tenant_id.eq(tenant))
            .filter(api_tokens::user_id.eq(user))
            .filter(api_tokens::revoked.eq(false)),
    )
    .set((api_tokens::revoked.eq(true), api_tokens::revoked_at.eq(now)))
    .execute(conn)?;
    tokens_revoked(conn, n)?;
    Ok(n)
}
