//! Authentication: `Authorization: Bearer <token>` to a [`Principal`].
//!
//! Two kinds of bearer credential are accepted. Tokens issued by `sync-server token create`
//! (`sf_…`) are looked up by their hash. When a JWT secret is configured, a token that looks
//! like a JWT (three dot-separated parts) is verified as HS256 with claims `tenant`, `sub`,
//! `role`, `units` and `exp`, so that an existing login system can issue credentials without
//! touching the database. Authorization (roles, tenant and unit scoping) is not done here but
//! in the engine, which every transport calls through the operation interface.

use std::fmt;

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

/// Turns credentials into principals. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    db: Database,
    jwt: Option<(DecodingKey, Validation)>,
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
        Self { db, jwt }
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
        let token = credential.to_owned();
        let now = sync_domain::micros::now();
        let principal = self.db.run(move |conn| store::authenticate_token(conn, &token, now)).await?;
        principal.ok_or_else(|| ApiError::Unauthorized("invalid, revoked or expired token".into()))
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
