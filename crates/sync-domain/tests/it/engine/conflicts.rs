//! Conflicts end to end: every policy through a push, the conflict log, tenant policies,
//! manual conflicts resolved by an admin.

use serde_json::{Value, json};
use sync_conflict::{Policy, PolicySource};
use sync_domain::{
    Database,
    engine::{Choice, PolicyUpdate, ResolveRequest},
};

use super::*;

/// The server holds version 2 (bob's edit at minute 5, based on ann's version 1); ann then
/// pushes her own edit of version 1 at `minute`. Returns ann's result.
async fn conflict(
    engine: &SyncEngine,
    domain: &str,
    base: Value,
    server: Value,
    client: Value,
    minute: i64,
) -> sync_domain::protocol::ChangeResult {
    let ann = device("acme", "ann");
    let bob = device("acme", "bob");
    push(engine, &ann, "d-ann", "k1", vec![upsert(domain, id(1), 0, base, 0)]).await;
    let r = push(engine, &bob, "d-bob", "k1", vec![upsert(domain, id(1), 1, server, 5)]).await;
    assert_eq!(outcomes(&r), ["applied"]);
    let r = push(engine, &ann, "d-ann", "k2", vec![upsert(domain, id(1), 1, client, minute)]).await;
    r.results.into_iter().next().unwrap()
}

async fn current(engine: &SyncEngine) -> Value {
    pull_all(engine, &device("acme", "ann"), None, false).await.0.remove(0).data.unwrap()
}

async fn journal_takes_the_client(db: Database) {
    let engine = engine(db);
    let r = conflict(
        &engine,
        "journal",
        json!({"title": "a"}),
        json!({"title": "server"}),
        json!({"title": "client"}),
        1,
    )
    .await;
    assert_eq!(r.outcome.as_str(), "client_won");
    assert_eq!(r.version, Some(3));
    let c = r.conflict.unwrap();
    assert_eq!((c.strategy.as_str(), c.winner.as_str()), ("client_wins", "client"));
    assert_eq!(current(&engine).await, json!({"title": "client"}));
}

async fn attendance_keeps_the_server(db: Database) {
    let engine = engine(db);
    let base = json!({"status": "PENDING"});
    let r = conflict(
        &engine,
        "attendance",
        base,
        json!({"status": "VERIFIED"}),
        json!({"status": "REJECTED"}),
        9,
    )
    .await;
    assert_eq!(r.outcome.as_str(), "server_won");
    assert_eq!(r.version, Some(2));
    assert_eq!(r.record.unwrap().data, Some(json!({"status": "VERIFIED"})));
    assert_eq!(current(&engine).await, json!({"status": "VERIFIED"}));
}

async fn task_takes_the_most_recent(db: Database) {
    let engine = engine(db);
    // ann edited at minute 1, before bob's minute 5: the server's state stands.
    let r =
        conflict(&engine, "task", task("T", "ASSIGNED"), task("Bob", "ASSIGNED"), task("Ann", "ASSIGNED"), 1)
            .await;
    assert_eq!(r.outcome.as_str(), "server_won");
    assert_eq!(current(&engine).await, task("Bob", "ASSIGNED"));
}

async fn ticket_keeps_its_escalation(db: Database) {
    let engine = engine(db);
    let base = json!({"title": "Leak", "status": "NEW", "escalation_level": 0});
    let server = json!({"title": "Leak", "status": "OPEN", "escalation_level": 2, "escalated_by": "sup"});
    let client =
        json!({"title": "Leak", "status": "INPROGRESS", "escalation_level": 0, "description": "on it"});
    let r = conflict(&engine, "ticket", base, server, client, 9).await;
    assert_eq!(r.outcome.as_str(), "merged");
    let merged = r.record.unwrap().data.unwrap();
    assert_eq!(merged["escalation_level"], 2);
    assert_eq!(merged["escalated_by"], "sup");
    assert_eq!(merged["status"], "INPROGRESS");
    assert_eq!(merged["description"], "on it");
    assert_eq!(current(&engine).await, merged);
    let c = r.conflict.unwrap();
    assert_eq!(c.strategy.as_str(), "preserve_escalation");
    assert!(c.details["from_client"].as_array().unwrap().contains(&json!("status")));
    // Logged, not pending.
    let log = engine.conflicts(&admin("acme"), Some("auto"), 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].result.as_str(), log[0].winner.as_str()), ("resolved", "merged"));
    assert_eq!((log[0].server_version, log[0].client_base_version, log[0].client_version), (2, 1, Some(3)));
}

async fn tenant_policy_overrides_the_default(db: Database) {
    let engine = engine(db);
    let boss = admin("acme");
    let view = engine
        .set_policy(
            &boss,
            "task",
            PolicyUpdate { policy: Policy::FieldMerge, auto_resolve: true, notify_on_conflict: true },
        )
        .await
        .unwrap();
    assert_eq!((view.policy, view.source), (Policy::FieldMerge, PolicySource::Tenant));
    let base = json!({"title": "T", "status": "ASSIGNED", "description": "d"});
    let server = json!({"title": "T", "status": "ASSIGNED", "description": "server"});
    let client = json!({"title": "Client", "status": "ASSIGNED", "description": "d"});
    let r = conflict(&engine, "task", base, server, client, 1).await;
    assert_eq!(r.outcome.as_str(), "merged");
    assert_eq!(
        current(&engine).await,
        json!({"title": "Client", "status": "ASSIGNED", "description": "server"})
    );
    let all = engine.policies(&device("acme", "ann")).await.unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all.iter().find(|p| p.domain == "journal").unwrap().policy, Policy::ClientWins);
    // Only an admin may set one; unknown domains are 404; manual with auto_resolve (the
    // default) is accepted and stored without it (PROTOCOL.md 4.1).
    let update = PolicyUpdate { policy: Policy::Manual, auto_resolve: true, notify_on_conflict: true };
    assert_eq!(
        engine.set_policy(&device("acme", "ann"), "task", update.clone()).await.unwrap_err().http_status(),
        403
    );
    assert_eq!(engine.set_policy(&boss, "nope", update.clone()).await.unwrap_err().http_status(), 404);
    let set = engine.set_policy(&boss, "task", update).await.unwrap();
    assert_eq!(
        (set.policy, set.configured_policy, set.auto_resolve, set.notify_on_conflict, set.source),
        (Policy::Manual, Policy::Manual, false, true, PolicySource::Tenant)
    );
    let listed = engine.policies(&boss).await.unwrap().into_iter().find(|p| p.domain == "task").unwrap();
    assert_eq!(listed, set, "the list shows what was stored");
}

async fn manual_conflicts_wait_for_an_admin(db: Database) {
    let engine = engine(db);
    let boss = admin("acme");
    let off = PolicyUpdate { policy: Policy::MostRecentWins, auto_resolve: false, notify_on_conflict: false };
    engine.set_policy(&boss, "work_order", off).await.unwrap();
    let r = conflict(
        &engine,
        "work_order",
        json!({"title": "WO"}),
        json!({"title": "server"}),
        json!({"title": "client"}),
        9,
    )
    .await;
    assert_eq!(r.outcome.as_str(), "manual_required");
    assert_eq!(r.version, Some(2));
    let summary = r.conflict.unwrap();
    assert_eq!((summary.strategy.as_str(), summary.winner.as_str()), ("manual", "none"));
    assert_eq!(current(&engine).await, json!({"title": "server"}), "the stored record stays");

    let pending = engine.conflicts(&boss, Some("pending"), 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, summary.id.to_string());
    assert_eq!(pending[0].client_state.as_ref().unwrap()["data"], json!({"title": "client"}));
    let resolved = engine
        .resolve_conflict(&boss, &pending[0].id, ResolveRequest { choose: Choice::Client, data: None })
        .await
        .unwrap();
    assert_eq!((resolved.status.as_str(), resolved.version), ("resolved", 3));
    assert_eq!(current(&engine).await, json!({"title": "client"}));
    assert!(engine.conflicts(&boss, Some("pending"), 10).await.unwrap().is_empty());
    // Resolving twice is a 409; a device may not resolve; unknown ids are 404.
    let again = engine
        .resolve_conflict(&boss, &pending[0].id, ResolveRequest { choose: Choice::Server, data: None })
        .await;
    assert_eq!(again.unwrap_err().http_status(), 409);
    let custom = ResolveRequest { choose: Choice::Custom, data: Some(json!({"title": "x"})) };
    assert_eq!(
        engine
            .resolve_conflict(&device("acme", "ann"), &pending[0].id, custom.clone())
            .await
            .unwrap_err()
            .http_status(),
        403
    );
    assert_eq!(
        engine.resolve_conflict(&boss, &id(77).to_string(), custom).await.unwrap_err().http_status(),
        404
    );
    // Another tenant's admin sees nothing of it.
    assert_eq!(
        engine
            .resolve_conflict(
                &admin("evil"),
                &pending[0].id,
                ResolveRequest { choose: Choice::Server, data: None }
            )
            .await
            .unwrap_err()
            .http_status(),
        404
    );
}

async fn delete_against_an_edit_is_a_conflict(db: Database) {
    let engine = engine(db);
    let ann = device("acme", "ann");
    let bob = device("acme", "bob");
    push(&engine, &ann, "d-ann", "k1", vec![upsert("journal", id(1), 0, json!({"title": "a"}), 0)]).await;
    push(&engine, &bob, "d-bob", "k1", vec![upsert("journal", id(1), 1, json!({"title": "b"}), 5)]).await;
    let r = push(&engine, &ann, "d-ann", "k2", vec![delete("journal", id(1), 1, 9)]).await;
    assert_eq!(outcomes(&r), ["client_won"], "journal: client_wins, so the delete stands");
    let (records, _) = pull_all(&engine, &ann, None, false).await;
    assert!(records[0].deleted);
}

sync_domain::backend_tests!(
    journal_takes_the_client,
    attendance_keeps_the_server,
    task_takes_the_most_recent,
    ticket_keeps_its_escalation,
    tenant_policy_overrides_the_default,
    manual_conflicts_wait_for_an_admin,
    delete_against_an_edit_is_a_conflict,
);
