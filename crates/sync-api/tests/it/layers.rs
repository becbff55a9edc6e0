//! ARCHITECTURE.md's module rule for sync-api, checked: the modules import one way.

/// The `crate::` modules a source file of sync-api names.
fn uses(file: &str) -> Vec<String> {
    let path = format!("{}/src/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut found: Vec<String> = text
        .match_indices("crate::")
        .map(|(at, m)| {
            text[at + m.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
        })
        .collect();
    // `use crate::{a, b}` names several.
    for (at, m) in text.match_indices("crate::{") {
        let list = &text[at + m.len()..];
        let list = &list[..list.find('}').unwrap_or(0)];
        found.extend(list.split(',').map(|s| s.trim().split("::").next().unwrap_or("").to_owned()));
    }
    found.retain(|m| !m.is_empty());
    found
}

#[test]
fn sync_api_modules_import_one_way() {
    let transports = ["rest", "graphql", "live", "console", "openapi", "router", "http"];
    for file in ["operation.rs", "error.rs", "auth.rs", "limits.rs", "cors.rs", "webhooks.rs"] {
        let bad: Vec<String> = uses(file).into_iter().filter(|m| transports.contains(&m.as_str())).collect();
        assert!(bad.is_empty(), "{file} knows a transport: {bad:?}");
    }
    let shared = ["http.rs"];
    for file in shared {
        let bad: Vec<String> =
            uses(file).into_iter().filter(|m| transports.contains(&m.as_str()) && m != "http").collect();
        assert!(bad.is_empty(), "{file} (shared by every transport) uses one: {bad:?}");
    }
    for (file, forbidden) in [
        ("rest.rs", &["graphql", "router", "openapi", "console"][..]),
        ("graphql/mod.rs", &["rest", "router", "openapi", "console"][..]),
        ("graphql/schema.rs", &["rest", "router", "openapi", "console"][..]),
        ("live.rs", &["rest", "graphql", "router", "openapi", "console"][..]),
        ("console.rs", &["rest", "graphql", "router", "openapi", "live"][..]),
        ("openapi.rs", &["rest", "graphql", "router", "live", "console", "http"][..]),
    ] {
        let bad: Vec<String> = uses(file).into_iter().filter(|m| forbidden.contains(&m.as_str())).collect();
        assert!(bad.is_empty(), "{file} uses {bad:?}");
    }
    // The check reads real imports (it would pass vacuously on a renamed file otherwise).
    assert!(uses("router.rs").iter().any(|m| m == "graphql"));
    assert!(uses("graphql/schema.rs").iter().any(|m| m == "operation"));
}
