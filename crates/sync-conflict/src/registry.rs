//! Which policy applies: domain defaults, tenant overrides, and the registry holding them.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    hash::Hash,
};

use serde::{Deserialize, Serialize};
use sync_model::DomainName;

use crate::{ConflictError, Policy};

/// The protocol's default policy of a domain (PROTOCOL.md 4.1); `manual` for a domain it
/// does not name.
pub fn default_policy(domain: &str) -> Policy {
    match domain {
        DomainName::JOURNAL | DomainName::VOICE_NOTE => Policy::ClientWins,
        DomainName::ATTENDANCE => Policy::ServerWins,
        DomainName::TASK | DomainName::WORK_ORDER => Policy::MostRecentWins,
        DomainName::TICKET => Policy::PreserveEscalation,
        _ => Policy::Manual,
    }
}

/// A tenant's override of a domain's policy (`PUT /api/v1/sync/policies/{domain}`).
///
/// `manual` with `auto_resolve = true` is refused (a manual policy never resolves by
/// itself, so the combination can only be a mistake): [`TenantPolicy::new`] returns
/// [`ConflictError::InconsistentPolicy`], and so does deserialising it. When
/// `auto_resolve` is left out it means "resolve automatically unless the policy is
/// `manual`"; `notify_on_conflict` defaults to false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "TenantPolicyWire")]
pub struct TenantPolicy {
    policy: Policy,
    auto_resolve: bool,
    notify_on_conflict: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantPolicyWire {
    policy: Policy,
    auto_resolve: Option<bool>,
    #[serde(default)]
    notify_on_conflict: bool,
}

impl TryFrom<TenantPolicyWire> for TenantPolicy {
    type Error = ConflictError;

    fn try_from(wire: TenantPolicyWire) -> Result<Self, Self::Error> {
        let auto_resolve = wire.auto_resolve.unwrap_or(wire.policy.is_automatic());
        Self::new(wire.policy, auto_resolve, wire.notify_on_conflict)
    }
}

impl TenantPolicy {
    pub fn new(policy: Policy, auto_resolve: bool, notify_on_conflict: bool) -> Result<Self, ConflictError> {
        if policy == Policy::Manual && auto_resolve {
            return Err(ConflictError::InconsistentPolicy { policy });
        }
        Ok(Self { policy, auto_resolve, notify_on_conflict })
    }

    /// The configured policy (see [`EffectivePolicy::policy`] for the one that applies).
    pub const fn policy(&self) -> Policy {
        self.policy
    }

    pub const fn auto_resolve(&self) -> bool {
        self.auto_resolve
    }

    pub const fn notify_on_conflict(&self) -> bool {
        self.notify_on_conflict
    }
}

/// Where an effective policy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[cfg_attr(feature = "graphql", graphql(rename_items = "lowercase"))]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    /// The protocol's domain default.
    Default,
    /// The tenant's override.
    Tenant,
}

/// The policy that applies to a domain's conflicts for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EffectivePolicy {
    /// The policy to resolve with: `manual` whenever `auto_resolve` is off.
    pub policy: Policy,
    /// The policy as configured (the override's, else the default).
    pub configured: Policy,
    pub auto_resolve: bool,
    pub notify_on_conflict: bool,
    pub source: PolicySource,
}

/// The effective policy of `domain` given the tenant's override, if any. This is the
/// whole rule; the database layer calls it with the override it stored.
pub fn effective_policy(domain: &str, tenant: Option<&TenantPolicy>) -> EffectivePolicy {
    match tenant {
        Some(t) => EffectivePolicy {
            policy: if t.auto_resolve { t.policy } else { Policy::Manual },
            configured: t.policy,
            auto_resolve: t.auto_resolve,
            notify_on_conflict: t.notify_on_conflict,
            source: PolicySource::Tenant,
        },
        None => {
            let policy = default_policy(domain);
            EffectivePolicy {
                policy,
                configured: policy,
                auto_resolve: policy.is_automatic(),
                notify_on_conflict: false,
                source: PolicySource::Default,
            }
        }
    }
}

/// Tenant overrides held in memory, keyed by any tenant key.
pub struct PolicyRegistry<K> {
    overrides: HashMap<K, BTreeMap<DomainName, TenantPolicy>>,
}

impl<K> Default for PolicyRegistry<K> {
    fn default() -> Self {
        Self { overrides: HashMap::new() }
    }
}

impl<K: fmt::Debug> fmt::Debug for PolicyRegistry<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyRegistry").field("overrides", &self.overrides).finish()
    }
}

impl<K: Eq + Hash> PolicyRegistry<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the tenant's override of a domain; returns the one it replaced.
    pub fn set(&mut self, tenant: K, domain: DomainName, policy: TenantPolicy) -> Option<TenantPolicy> {
        self.overrides.entry(tenant).or_default().insert(domain, policy)
    }

    /// Removes the tenant's override of a domain (back to the default); returns it.
    pub fn remove(&mut self, tenant: &K, domain: &str) -> Option<TenantPolicy> {
        let domains = self.overrides.get_mut(tenant)?;
        let removed = domains.remove(domain);
        if domains.is_empty() {
            self.overrides.remove(tenant);
        }
        removed
    }

    /// The tenant's override of a domain, if any.
    pub fn get(&self, tenant: &K, domain: &str) -> Option<&TenantPolicy> {
        self.overrides.get(tenant)?.get(domain)
    }

    /// The effective policy of a domain for a tenant.
    pub fn effective(&self, tenant: &K, domain: &str) -> EffectivePolicy {
        effective_policy(domain, self.get(tenant, domain))
    }

    /// The effective policy of every built-in domain (in the protocol's order) and of every
    /// other domain the tenant overrides (by name) — `GET /api/v1/sync/policies`.
    pub fn list(&self, tenant: &K) -> Vec<(String, EffectivePolicy)> {
        let overrides = self.overrides.get(tenant);
        let mut out: Vec<(String, EffectivePolicy)> = DomainName::BUILT_IN
            .iter()
            .map(|d| ((*d).to_owned(), effective_policy(d, overrides.and_then(|o| o.get(*d)))))
            .collect();
        for (domain, policy) in overrides.into_iter().flatten() {
            if !DomainName::BUILT_IN.contains(&domain.as_str()) {
                out.push((domain.to_string(), effective_policy(domain.as_str(), Some(policy))));
            }
        }
        out
    }
}
