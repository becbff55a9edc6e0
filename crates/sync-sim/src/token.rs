//! Bearer tokens for simulated users: HS256 JWTs signed with the server's configured secret
//! (PROTOCOL.md section 2), so that a fleet of any size needs no database rows.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

use crate::error::Result;

/// How long a minted token stays valid.
const TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

#[derive(Serialize)]
struct Claims<'a> {
    tenant: &'a str,
    sub: &'a str,
    role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    units: Option<&'a [String]>,
    exp: u64,
}

/// Signs tokens with a server's JWT secret (`SYNC_JWT_SECRET`).
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer").finish_non_exhaustive()
    }
}

impl TokenIssuer {
    pub fn new(secret: &str) -> Self {
        TokenIssuer { key: EncodingKey::from_secret(secret.as_bytes()) }
    }

    /// A token of role `device` for `user` of `tenant`, limited to `units` when given.
    pub fn device(&self, tenant: &str, user: &str, units: Option<&[String]>) -> Result<String> {
        self.sign(tenant, user, "device", units)
    }

    /// A token of role `admin` for `user` of `tenant`.
    pub fn admin(&self, tenant: &str, user: &str) -> Result<String> {
        self.sign(tenant, user, "admin", None)
    }

    fn sign(&self, tenant: &str, sub: &str, role: &str, units: Option<&[String]>) -> Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let claims = Claims { tenant, sub, role, units, exp: now + TOKEN_LIFETIME_SECS };
        Ok(jsonwebtoken::encode(&Header::default(), &claims, &self.key)?)
    }
}
