//! Tenants, users and hashed tokens.

use sync_domain::Database;
use sync_domain::store::{self, Principal, Role};

async fn tokens_round_trip(db: Database) {
    let units = vec!["north".to_owned(), "south".to_owned()];
    let (device, admin) = db
        .write_tx(move |c| {
            Ok((
                store::create_token(c, "acme", "alice", Role::Device, Some(&units), None, 10)?,
                store::create_token(c, "acme", "bob", Role::Admin, None, Some(1_000), 10)?,
            ))
        })
        .await
        .unwrap();
    assert!(device.starts_with(store::TOKEN_PREFIX));
    assert_eq!(device.len(), 3 + 64);
    assert!(device[3..].chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(device, admin);

    let lookup = |token: String, now: i64| {
        let db = db.clone();
        async move { db.run(move |c| store::lookup_token(c, &token, now)).await.unwrap() }
    };
    assert_eq!(
        lookup(device.clone(), 20).await,
        Some(Principal {
            tenant: "acme".into(),
            user: "alice".into(),
            role: Role::Device,
            units: Some(vec!["north".into(), "south".into()]),
        })
    );
    let bob = lookup(admin.clone(), 999).await.unwrap();
    assert_eq!((bob.role, bob.units), (Role::Admin, None));
    assert_eq!(lookup(admin.clone(), 1_000).await, None, "expired");
    assert_eq!(lookup("sf_not-a-token".into(), 20).await, None);
    assert_eq!(lookup(String::new(), 20).await, None);

    // Only the hash is stored.
    let hashed = db
        .run(|c| {
            use diesel::prelude::*;
            use sync_domain::schema::api_tokens;
            Ok(api_tokens::table.select(api_tokens::token_hash).load::<String>(c)?)
        })
        .await
        .unwrap();
    assert!(hashed.contains(&store::hash_token(&device)));
    assert!(!hashed.contains(&device));

    let token = device.clone();
    assert!(db.write_tx(move |c| store::revoke_token(c, &token)).await.unwrap());
    assert_eq!(lookup(device.clone(), 20).await, None, "revoked");
    assert!(!db.write_tx(move |c| store::revoke_token(c, &device)).await.unwrap());

    // Tenant and users were created.
    assert_eq!(db.run(store::tenant_ids).await.unwrap(), ["acme"]);
    let alice = db.run(|c| store::get_user(c, "acme", "alice")).await.unwrap().unwrap();
    assert_eq!(alice.role, Role::Device);
    assert_eq!(alice.units_list().unwrap(), Some(vec!["north".to_owned(), "south".to_owned()]));
    assert!(db.run(|c| store::get_user(c, "other", "alice")).await.unwrap().is_none());
    // A new token updates the user's role; empty names are refused.
    db.write_tx(|c| store::create_token(c, "acme", "alice", Role::Admin, None, None, 30)).await.unwrap();
    let alice = db.run(|c| store::get_user(c, "acme", "alice")).await.unwrap().unwrap();
    assert_eq!((alice.role, alice.units), (Role::Admin, None));
    let err = db.write_tx(|c| store::create_token(c, "", "x", Role::Admin, None, None, 1)).await.unwrap_err();
    assert!(matches!(err, sync_domain::Error::InvalidArgument(_)));
}

async fn tenants_are_listed_once(db: Database) {
    db.write_tx(|c| {
        store::ensure_tenant(c, "b", 1)?;
        store::ensure_tenant(c, "b", 2)?;
        store::allocate_seqs(c, "a", 1)?; // a tenant known only by its counter (e.g. from a JWT)
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(db.run(store::tenant_ids).await.unwrap(), ["a", "b"]);
}

sync_domain::backend_tests!(tokens_round_trip, tenants_are_listed_once);

#[test]
fn roles_parse_and_print() {
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>().unwrap(), *role);
        assert_eq!(serde_json::to_string(role).unwrap(), format!("\"{role}\""));
    }
    let err = "root".parse::<Role>().unwrap_err();
    assert_eq!(err.to_string(), r#"unknown Role "root""#);
}
