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

#[test]
fn graphql_schema() {
    insta::assert_snapshot!("graphql_sdl", sync_api::graphql::sdl());
}
