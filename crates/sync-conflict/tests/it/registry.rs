//! Domain defaults, tenant overrides and the in-memory registry.

use serde_json::json;
use sync_conflict::{
    ConflictError, EffectivePolicy, Policy, PolicyRegistry, PolicySource, TenantPolicy, default_policy,
    effective_policy,
};
use sync_model::DomainName;

#[test]
fn domain_defaults_follow_the_protocol() {
    let expected = [
        ("task", Policy::MostRecentWins),
        ("ticket", Policy::PreserveEscalation),
        ("journal", Policy::ClientWins),
        ("attendance", Policy::ServerWins),
        ("work_order", Policy::MostRecentWins),
        ("voice_note", Policy::ClientWins),
        ("invoice", Policy::Manual),
        ("", Policy::Manual),
    ];
    for (domain, policy) in expected {
        assert_eq!(default_policy(domain), policy, "{domain}");
        let effective = effective_policy(domain, None);
        assert_eq!(effective.policy, policy);
        assert_eq!(effective.source, PolicySource::Default);
        assert_eq!(effective.auto_resolve, policy != Policy::Manual);
        assert!(!effective.notify_on_conflict);
    }
}

#[test]
fn a_tenant_override_replaces_the_default() {
    let tenant = TenantPolicy::new(Policy::ClientWins, true, true).unwrap();
    let effective = effective_policy("task", Some(&tenant));
    assert_eq!(
        effective,
        EffectivePolicy {
            policy: Policy::ClientWins,
            configured: Policy::ClientWins,
            auto_resolve: true,
            notify_on_conflict: true,
            source: PolicySource::Tenant,
        }
    );
}

#[test]
fn manual_with_auto_resolve_is_refused() {
    let err = TenantPolicy::new(Policy::Manual, true, false).unwrap_err();
    assert_eq!(err, ConflictError::InconsistentPolicy { policy: Policy::Manual });
    assert_eq!(err.code(), "inconsistent_policy");
    assert!(TenantPolicy::new(Policy::Manual, false, true).is_ok());
    let body = json!({"policy": "manual", "auto_resolve": true, "notify_on_conflict": false});
    let err = serde_json::from_value::<TenantPolicy>(body).unwrap_err();
    assert!(err.to_string().contains("cannot be combined with auto_resolve"), "{err}");
}

#[test]
fn tenant_policy_bodies_deserialise_with_defaults_and_reject_unknown_fields() {
    let manual: TenantPolicy = serde_json::from_value(json!({"policy": "manual"})).unwrap();
    assert!(!manual.auto_resolve());
    let merge: TenantPolicy = serde_json::from_value(json!({"policy": "field_merge"})).unwrap();
    assert!(merge.auto_resolve());
    assert!(!merge.notify_on_conflict());
    assert!(serde_json::from_value::<TenantPolicy>(json!({"policy": "manual", "x": 1})).is_err());
    assert!(serde_json::from_value::<TenantPolicy>(json!({"auto_resolve": true})).is_err());
    let back = serde_json::to_value(merge).unwrap();
    assert_eq!(back, json!({"policy": "field_merge", "auto_resolve": true, "notify_on_conflict": false}));
}

#[test]
fn the_registry_is_per_tenant() {
    let mut registry: PolicyRegistry<u64> = PolicyRegistry::new();
    let journal = DomainName::new("journal").unwrap();
    let custom = DomainName::new("inspection").unwrap();
    let off = TenantPolicy::new(Policy::ServerWins, false, true).unwrap();
    assert_eq!(registry.set(1, journal.clone(), off), None);
    registry.set(1, custom, TenantPolicy::new(Policy::FieldMerge, true, false).unwrap());

    assert_eq!(registry.effective(&1, "journal").policy, Policy::Manual);
    assert_eq!(registry.effective(&1, "journal").configured, Policy::ServerWins);
    assert_eq!(registry.effective(&2, "journal").policy, Policy::ClientWins);
    assert_eq!(registry.effective(&1, "inspection").policy, Policy::FieldMerge);
    assert_eq!(registry.effective(&2, "inspection").policy, Policy::Manual);
    assert_eq!(registry.get(&1, "journal"), Some(&off));

    let listed: Vec<(String, Policy)> = registry.list(&1).into_iter().map(|(d, e)| (d, e.policy)).collect();
    assert_eq!(
        listed,
        [
            ("task".to_owned(), Policy::MostRecentWins),
            ("ticket".to_owned(), Policy::PreserveEscalation),
            ("journal".to_owned(), Policy::Manual),
            ("attendance".to_owned(), Policy::ServerWins),
            ("work_order".to_owned(), Policy::MostRecentWins),
            ("voice_note".to_owned(), Policy::ClientWins),
            ("inspection".to_owned(), Policy::FieldMerge),
        ]
    );
    assert_eq!(registry.list(&2).len(), 6);

    assert_eq!(registry.remove(&1, "journal"), Some(off));
    assert_eq!(registry.effective(&1, "journal").policy, Policy::ClientWins);
    assert_eq!(registry.remove(&1, "journal"), None);
    assert_eq!(registry.remove(&9, "journal"), None);
}

#[test]
fn the_registry_takes_any_tenant_key() {
    let mut registry: PolicyRegistry<String> = PolicyRegistry::default();
    let task = DomainName::new("task").unwrap();
    registry.set("acme".into(), task, TenantPolicy::new(Policy::FieldMerge, true, false).unwrap());
    assert_eq!(registry.effective(&"acme".to_owned(), "task").policy, Policy::FieldMerge);
    assert!(format!("{registry:?}").contains("acme"));
}
