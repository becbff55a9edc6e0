//! Snapshots of the OpenAPI document and the GraphQL schema: a change to either is a change of
//! the public contract and must be reviewed.

#[test]
fn openapi_document() {
    let document: serde_json::Value = serde_json::from_str(&sync_api::openapi::document_json()).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/api/v1/sync/push",
        "/api/v1/sync/pull",
        "/api/v1/sync/queue-status",
        "/api/v1/sync/partial",
        "/api/v1/sync/optimal-time",
        "/api/v1/sync/policies",
        "/api/v1/sync/policies/{domain}",
        "/api/v1/sync/conflicts",
        "/api/v1/sync/conflicts/{id}/resolve",
        "/api/sync/dashboard/",
        "/api/sync/snapshot/create/",
        "/api/sync/device-health/",
        "/graphql",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI document");
    }
    insta::assert_json_snapshot!("openapi", document);
}

/// The checked-in GraphQL schema (clients generate their types from it).
const SDL_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
/// Set to rewrite [`SDL_PATH`] from the code instead of comparing.
const UPDATE_VAR: &str = "SYNC_UPDATE_GRAPHQL_SCHEMA";

#[test]
fn graphql_schema() {
    let sdl = sync_api::graphql::sdl();
    if std::env::var_os(UPDATE_VAR).is_some() {
        std::fs::write(SDL_PATH, &sdl).unwrap();
        return;
    }
    let stored = std::fs::read_to_string(SDL_PATH).unwrap_or_default();
    if stored != sdl {
        let line = stored
            .lines()
            .zip(sdl.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| stored.lines().count().min(sdl.lines().count()));
        panic!(
            "the GraphQL schema differs from {SDL_PATH} at line {}:\n  checked in: {:?}\n  generated:  {:?}\n\
             A change of the schema is a change of the public contract: review it, then run\n  \
             {UPDATE_VAR}=1 cargo test -p sync-api --test it schema::graphql_schema\n\
             and commit schema.graphql.",
            line + 1,
            stored.lines().nth(line).unwrap_or("<end>"),
            sdl.lines().nth(line).unwrap_or("<end>"),
        );
    }
}
