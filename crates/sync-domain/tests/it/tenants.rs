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
    assert!(db.write_tx(move |c| store::revoke_token(c, &token, 25)).await.unwrap());
    assert_eq!(lookup(device.clone(), 20).await, None, "revoked");
    assert!(!db.write_tx(move |c| store::revoke_token(c, &device, 26)).await.unwrap());

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

const MINUTE: i64 = store::LAST_USED_RESOLUTION_MICROS;

async fn token_lifecycle(db: Database) {
    let (a, b, c) = db
        .write_tx(|c| {
            Ok((
                store::create_token(c, "acme", "alice", Role::Device, None, None, 100)?,
                store::create_token(c, "acme", "alice", Role::Device, None, Some(10 * MINUTE), 200)?,
                store::create_token(c, "acme", "bob", Role::Admin, None, None, 300)?,
            ))
        })
        .await
        .unwrap();
    db.write_tx(|c| store::create_token(c, "other", "alice", Role::Device, None, None, 400)).await.unwrap();
    let list = |db: &Database| {
        let db = db.clone();
        async move { db.run(|c| store::list_tokens(c, "acme")).await.unwrap() }
    };
    let tokens = list(&db).await;
    assert_eq!(tokens.len(), 3, "only the tenant's tokens");
    assert_eq!(tokens.iter().map(|t| t.created_at).collect::<Vec<_>>(), [100, 200, 300]);
    assert_eq!(tokens[1].expires_at, Some(10 * MINUTE));
    assert!(tokens.iter().all(|t| t.last_used_at.is_none() && !t.revoked && t.revoked_at.is_none()));
    let ids: std::collections::BTreeSet<&str> = tokens.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "ids are unique");
    for t in &tokens {
        for secret in [&a, &b, &c] {
            assert!(!t.id.contains(&secret[3..]) && !secret.contains(&t.id));
        }
    }

    // Authentication records the use, at most once a minute.
    let auth = |token: &str, now: i64| {
        let (db, token) = (db.clone(), token.to_owned());
        async move { db.run(move |c| store::authenticate_token(c, &token, now)).await.unwrap() }
    };
    assert_eq!(auth(&a, MINUTE).await.unwrap().principal.user, "alice");
    assert_eq!(list(&db).await[0].last_used_at, Some(MINUTE));
    auth(&a, MINUTE + MINUTE / 2).await.unwrap();
    assert_eq!(list(&db).await[0].last_used_at, Some(MINUTE), "not written again within a minute");
    auth(&a, 2 * MINUTE + 1).await.unwrap();
    assert_eq!(list(&db).await[0].last_used_at, Some(2 * MINUTE + 1));
    // Expired: refused, and its last use is not touched.
    assert!(auth(&b, 10 * MINUTE).await.is_none());
    assert_eq!(list(&db).await[1].last_used_at, None);
    assert!(auth(&b, 10 * MINUTE - 1).await.is_some());

    // Revoke by id, then every token of a user.
    let id = tokens[2].id.clone();
    assert!(db.write_tx(move |c| store::revoke_token_id(c, &id, 500)).await.unwrap());
    let id = tokens[2].id.clone();
    assert!(!db.write_tx(move |c| store::revoke_token_id(c, &id, 501)).await.unwrap(), "already revoked");
    assert!(!db.write_tx(|c| store::revoke_token_id(c, "no-such-id", 501)).await.unwrap());
    assert!(auth(&c, 3 * MINUTE).await.is_none());
    assert_eq!(db.write_tx(|c| store::revoke_user_tokens(c, "acme", "alice", 600)).await.unwrap(), 2);
    assert_eq!(db.write_tx(|c| store::revoke_user_tokens(c, "acme", "alice", 601)).await.unwrap(), 0);
    assert!(auth(&a, 3 * MINUTE).await.is_none());
    let tokens = list(&db).await;
    assert_eq!(tokens.iter().map(|t| t.revoked_at).collect::<Vec<_>>(), [Some(600), Some(600), Some(500)]);
    assert!(tokens.iter().all(|t| t.revoked && !t.is_active(0)));
    // The other tenant's alice keeps her token.
    let others = db.run(|c| store::list_tokens(c, "other")).await.unwrap();
    assert!(others[0].is_active(1_000) && !others[0].revoked);
}

sync_domain::backend_tests!(tokens_round_trip, tenants_are_listed_once, token_lifecycle);

#[test]
fn roles_parse_and_print() {
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>().unwrap(), *role);
        assert_eq!(serde_json::to_string(role).unwrap(), format!("\"{role}\""));
    }
    let err = "root".parse::<Role>().unwrap_err();
    assert_eq!(err.to_string(), r#"unknown Role "root""#);
}
