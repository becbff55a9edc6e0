//! Authentication: `Authorization: Bearer <token>` to a [`Principal`].
//!
//! Two kinds of bearer credential are accepted. Tokens issued by `sync-server token create`
//! (`sf_…`) are looked up by their hash. When a JWT secret is configured, a token that looks
//! like a JWT (three dot-separated parts) is verified as HS256 with claims `tenant`, `sub`,
//! `role`, `units` and `exp`, so that an existing login system can issue credentials without
//! touching the database. Authorization (roles, tenant and unit scoping) is not done here but
//! in the engine, which every transport calls through the operation interface.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sync_domain::Database;
use sync_domain::store::{self, Principal, Role};

use crate::error::{ApiError, Result};

/// Longest bearer credential we look at (a token is 67 bytes; a JWT with many units is more).
const MAX_CREDENTIAL_LEN: usize = 8 * 1024;

/// Claims of an accepted JWT.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    pub tenant: String,
    pub sub: String,
    pub role: Role,
    #[serde(default)]
    pub units: Option<Vec<String>>,
    pub exp: u64,
}

/// Most token look-ups one node caches; beyond, the cache starts again empty.
const MAX_CACHED_TOKENS: usize = 100_000;

/// Turns credentials into principals. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    db: Database,
    jwt: Option<(DecodingKey, Validation)>,
    cache: Option<TokenCache>,
}

/// Token look-ups of this node, by token hash, trusted while the live hub's LISTEN connection
/// is up (it hears every node's and the command line's revocations) and only at the cache
/// generation they were filled at. An entry is also re-checked in the database once a
/// [`store::LAST_USED_RESOLUTION_MICROS`], which records the token's use as an uncached
/// look-up does, and never used past the token's expiry.
#[derive(Clone)]
struct TokenCache {
    hub: sync_live::Hub,
    entries: Arc<Mutex<HashMap<String, CachedToken>>>,
}

#[derive(Debug, Clone)]
struct CachedToken {
    principal: Principal,
    expires_at: Option<i64>,
    checked_at: i64,
    generation: u64,
}

impl TokenCache {
    /// The generation to trust entries at, or `None` when the cache must not be used.
    fn generation(&self) -> Option<u64> {
        self.hub.listening().then(|| self.hub.cache_generation())
    }

    fn get(&self, hash: &str, now: i64, generation: u64) -> Option<Principal> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(hash)?;
        let fresh = entry.generation == generation
            && entry.expires_at.is_none_or(|at| now < at)
            && now.saturating_sub(entry.checked_at) < store::LAST_USED_RESOLUTION_MICROS;
        fresh.then(|| entry.principal.clone())
    }

    fn put(&self, hash: String, token: CachedToken) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_CACHED_TOKENS && !entries.contains_key(&hash) {
            entries.clear();
        }
        entries.insert(hash, token);
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").field("jwt", &self.jwt.is_some()).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Looks tokens up in `db`; also accepts HS256 JWTs signed with `jwt_secret` when given.
    pub fn new(db: Database, jwt_secret: Option<&[u8]>) -> Self {
        let jwt = jwt_secret.filter(|s| !s.is_empty()).map(|secret| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_required_spec_claims(&["exp", "sub"]);
            validation.leeway = 30;
            (DecodingKey::from_secret(secret), validation)
        });
        Self { db, jwt, cache: None }
    }

    /// Caches token look-ups while `hub` hears every node's revocations (PostgreSQL with the
    /// LISTEN connection up; on SQLite the command line revokes from another process without
    /// a channel to this one, so every look-up reads the database).
    pub fn with_cache(mut self, hub: sync_live::Hub) -> Self {
        self.cache = Some(TokenCache { hub, entries: Arc::default() });
        self
    }

    /// The principal of an `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal> {
        let header = authorization.ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
        let (scheme, credential) = header
            .trim()
            .split_once(' ')
            .ok_or_else(|| ApiError::Unauthorized("expected `Authorization: Bearer <token>`".into()))?;
        let credential = credential.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
            return Err(ApiError::Unauthorized("expected `Authorization: Bearer <token>`".into()));
        }
        if credential.len() > MAX_CREDENTIAL_LEN {
            return Err(ApiError::Unauthorized("invalid token".into()));
        }
        if let Some((key, validation)) = &self.jwt
            && !credential.starts_with(store::TOKEN_PREFIX)
            && credential.split('.').count() == 3
        {
            return verify_jwt(credential, key, validation);
        }
        let now = sync_domain::micros::now();
        let cached = self.cache.as_ref().and_then(|cache| Some((cache, cache.generation()?)));
        let hash = cached.map(|_| store::hash_token(credential));
        if let (Some((cache, generation)), Some(hash)) = (cached, &hash)
            && let Some(principal) = cache.get(hash, now, generation)
        {
            return Ok(principal);
        }
        let token = credential.to_owned();
        let active = self.db.run(move |conn| store::authenticate_token(conn, &token, now)).await?;
        let active =
            active.ok_or_else(|| ApiError::Unauthorized("invalid, revoked or expired token".into()))?;
        if let (Some((cache, generation)), Some(hash)) = (cached, hash) {
            let entry = CachedToken {
                principal: active.principal.clone(),
                expires_at: active.expires_at,
                checked_at: now,
                generation,
            };
            cache.put(hash, entry);
        }
        Ok(active.principal)
    }
}

fn verify_jwt(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Principal> {
    let data = jsonwebtoken::decode::<Claims>(token, key, validation)
        .map_err(|e| ApiError::Unauthorized(format!("invalid JWT: {e}")))?;
    let claims = data.claims;
    if claims.tenant.is_empty() || claims.sub.is_empty() {
        return Err(ApiError::Unauthorized("invalid JWT: empty tenant or sub".into()));
    }
    Ok(Principal { tenant: claims.tenant, user: claims.sub, role: claims.role, units: claims.units })
}
