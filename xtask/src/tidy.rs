//! House-style checks over every tracked Rust file; also run as an ordinary test.

use std::collections::{BTreeMap, VecDeque};
use std::process::Command;
use std::{fs, path::Path};

use anyhow::Result;
use serde_json::Value;

/// Directories never checked: build output, and trybuild fixtures whose exact text is
/// the point of the test.
const SKIP_DIRS: &[&str] = &["target", ".git", "ui"];

/// Every problem found below `root`, as `path: what`.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    visit(root, root, &mut problems)?;
    problems.extend(client_rules(root)?);
    problems.extend(dependency_rules(&metadata(root)?));
    Ok(problems)
}

/// What sync-client's `core` module must not name: it does no IO and reads no clock.
const CORE_FORBIDDEN: &[&str] =
    &["reqwest", "tokio", "diesel", "std::fs", "std::net", "now_utc", "SystemTime"];

/// sync-client's core (docs/ARCHITECTURE.md): the names it must not use.
fn client_rules(root: &Path) -> Result<Vec<String>> {
    let client = root.join("crates/sync-client");
    if !client.exists() {
        return Ok(Vec::new());
    }
    let mut problems = Vec::new();
    let core = client.join("src/core");
    let mut files: Vec<_> = fs::read_dir(&core)?.collect::<Result<_, _>>()?;
    files.sort_by_key(|e| e.path());
    for file in files {
        let text = fs::read_to_string(file.path())?;
        let shown = format!("crates/sync-client/src/core/{}", file.file_name().to_string_lossy());
        problems.extend(check_core_file(&text).into_iter().map(|p| format!("{shown}: {p}")));
    }
    Ok(problems)
}

fn check_core_file(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        for word in CORE_FORBIDDEN {
            if code.contains(word) {
                problems.push(format!("line {}: the sans-IO core names `{word}`", number + 1));
            }
        }
    }
    problems
}

fn visit(root: &Path, dir: &Path, problems: &mut Vec<String>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !SKIP_DIRS.iter().any(|skip| name == *skip) && !name.to_string_lossy().starts_with('.') {
                visit(root, &path, problems)?;
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let text = fs::read_to_string(&path)?;
            let shown = path.strip_prefix(root).unwrap_or(&path).display().to_string();
            problems.extend(check_file(&text).into_iter().map(|p| format!("{shown}: {p}")));
        }
    }
    Ok(())
}

/// The problems of one file's text.
fn check_file(text: &str) -> Vec<String> {
    // Spelled in pieces so that this file does not trip its own checks.
    let ignore_attr = concat!("#[", "ignore");
    let dbg_macro = concat!("dbg", "!(");
    let mut problems = Vec::new();
    if !text.trim_start_matches('\u{feff}').starts_with("//!") {
        problems.push("does not start with a `//!` line saying what the file is for".to_owned());
    }
    for (number, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        if code.contains(ignore_attr) {
            problems.push(format!("line {}: tests are never ignored; fix or delete the test", number + 1));
        }
        if code.contains(dbg_macro) {
            problems.push(format!("line {}: leftover dbg! call", number + 1));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// The dependency rules of docs/ARCHITECTURE.md ("Dependency rules"), on `cargo metadata`'s
// resolved graph. The list below is the one place they are written; the document quotes it.

/// Crates that do IO: a database, the network, an async runtime.
const IO_CRATES: &[&str] = &[
    "diesel",
    "diesel_migrations",
    "r2d2",
    "libsqlite3-sys",
    "pq-sys",
    "tokio",
    "tokio-postgres",
    "mio",
    "reqwest",
    "hyper",
    "hyper-util",
    "axum",
    "tower-http",
];

/// HTTP, which only sync-api (the server's side) and the clients speak.
const HTTP_CRATES: &[&str] = &["axum", "hyper", "hyper-util", "reqwest", "tower-http"];

/// One rule: `krate` must not reach any of `forbidden` through its dependencies (transitively;
/// with `dev`, its own dev-dependencies count too).
struct Rule {
    krate: &'static str,
    forbidden: &'static [&'static str],
    dev: bool,
    why: &'static str,
}

const SANS_IO: &str = "the logic crates are sans-IO";

/// The rules. Also: nothing depends on sync-server (checked apart, on every package).
const RULES: &[Rule] = &[
    Rule { krate: "sync-model", forbidden: IO_CRATES, dev: false, why: SANS_IO },
    Rule { krate: "sync-model-derive", forbidden: IO_CRATES, dev: false, why: SANS_IO },
    Rule { krate: "sync-state-machine", forbidden: IO_CRATES, dev: false, why: SANS_IO },
    Rule { krate: "sync-conflict", forbidden: IO_CRATES, dev: false, why: SANS_IO },
    Rule { krate: "sync-bandwidth", forbidden: IO_CRATES, dev: false, why: SANS_IO },
    Rule { krate: "sync-metrics", forbidden: IO_CRATES, dev: false, why: SANS_IO },
    Rule { krate: "sync-insight", forbidden: IO_CRATES, dev: false, why: SANS_IO },
    Rule { krate: "sync-protocol", forbidden: IO_CRATES, dev: false, why: SANS_IO },
    Rule {
        krate: "sync-client",
        forbidden: &["sync-domain", "sync-api", "sync-live", "sync-server", "sync-sim", "pq-sys"],
        dev: true,
        why: "what apps embed holds no server code and no PostgreSQL driver, even for its tests",
    },
    Rule {
        krate: "sync-sim",
        forbidden: &["sync-domain", "sync-api", "sync-live", "sync-server"],
        dev: true,
        why: "the simulator runs sync-client against servers over HTTP, and reads their database only with SQL of its own",
    },
    Rule {
        krate: "sync-domain",
        forbidden: &["sync-live", "sync-api", "axum", "hyper", "hyper-util", "reqwest", "tower-http"],
        dev: false,
        why: "sync-domain knows nothing of HTTP or of live transports",
    },
    Rule { krate: "sync-live", forbidden: HTTP_CRATES, dev: false, why: "sync-live knows no HTTP" },
];

/// `cargo metadata` of the workspace at `root`.
fn metadata(root: &Path) -> Result<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// A resolved dependency graph: package names, and each package's dependencies with whether
/// the edge is a dev-dependency only.
struct Graph {
    names: BTreeMap<String, String>,
    deps: BTreeMap<String, Vec<(String, bool)>>,
}

impl Graph {
    fn of(metadata: &Value) -> Graph {
        let list = |v: &Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let names = list(metadata, "packages").iter().map(|p| (text(&p["id"]), text(&p["name"]))).collect();
        let deps = list(&metadata["resolve"], "nodes")
            .iter()
            .map(|node| {
                let edges = list(node, "deps")
                    .iter()
                    .map(|dep| {
                        let kinds = list(dep, "dep_kinds");
                        let dev_only = !kinds.is_empty() && kinds.iter().all(|k| k["kind"] == "dev");
                        (text(&dep["pkg"]), dev_only)
                    })
                    .collect();
                (text(&node["id"]), edges)
            })
            .collect();
        Graph { names, deps }
    }

    fn name<'a>(&'a self, id: &'a str) -> &'a str {
        self.names.get(id).map_or(id, String::as_str)
    }

    /// The shortest path from `from` to a package named in `forbidden`, if any; dev edges are
    /// followed from `from` itself only, and only with `dev`.
    fn reaches(&self, from: &str, forbidden: &[&str], dev: bool) -> Vec<Vec<String>> {
        let mut found = Vec::new();
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(at) = queue.pop_front() {
            for (dep, dev_only) in self.deps.get(at).into_iter().flatten() {
                if (*dev_only && !(dev && at == from)) || parent.contains_key(dep.as_str()) || dep == from {
                    continue;
                }
                parent.insert(dep, at);
                if forbidden.contains(&self.name(dep)) {
                    let mut path = vec![self.name(dep).to_owned()];
                    let mut step = at;
                    while step != from {
                        path.push(self.name(step).to_owned());
                        step = parent[step];
                    }
                    path.push(self.name(from).to_owned());
                    path.reverse();
                    found.push(path);
                } else {
                    queue.push_back(dep);
                }
            }
        }
        found
    }
}

/// Every break of [`RULES`], and every package that depends on sync-server.
fn dependency_rules(metadata: &Value) -> Vec<String> {
    let graph = Graph::of(metadata);
    let mut problems = Vec::new();
    for rule in RULES {
        for id in graph.names.iter().filter(|(_, name)| *name == rule.krate).map(|(id, _)| id) {
            for path in graph.reaches(id, rule.forbidden, rule.dev) {
                problems.push(format!(
                    "dependencies: {} ({}; docs/ARCHITECTURE.md)",
                    path.join(" -> "),
                    rule.why
                ));
            }
        }
    }
    for (id, deps) in &graph.deps {
        if deps.iter().any(|(dep, _)| graph.name(dep) == "sync-server") {
            problems.push(format!(
                "dependencies: {} depends on sync-server (nothing does: it only wires crates together)",
                graph.name(id)
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_tidy() {
        let problems = check(&crate::root()).unwrap();
        assert!(problems.is_empty(), "tidy problems:\n{}", problems.join("\n"));
    }

    #[test]
    fn tidy_catches_each_rule() {
        assert_eq!(check_file("//! Fine.\nfn main() {}\n"), Vec::<String>::new());
        assert_eq!(check_file("fn main() {}\n").len(), 1);
        let ignored = format!("//! x\n{}]\nfn t() {{}}\n", concat!("#[", "ignore"));
        assert_eq!(check_file(&ignored), ["line 2: tests are never ignored; fix or delete the test"]);
        let debug = format!("//! x\nfn f() {{ {}1); }}\n", concat!("dbg", "!("));
        assert_eq!(check_file(&debug), ["line 2: leftover dbg! call"]);
    }

    #[test]
    fn client_core_rule_catches_a_break() {
        assert_eq!(
            check_core_file("//! Core.\n// tokio is fine in a comment\nfn f() {}\n"),
            Vec::<String>::new()
        );
        assert_eq!(
            check_core_file("//! Core.\nuse tokio::time;\n"),
            ["line 2: the sans-IO core names `tokio`"]
        );
    }

    /// A fabricated graph: sync-protocol reaching tokio through sync-metrics, sync-sim's tests
    /// using sync-domain, sync-client fine, and a tool depending on sync-server.
    #[test]
    fn dependency_rules_catch_each_break() {
        let package = |id: &str| serde_json::json!({"id": id, "name": id});
        let dep =
            |id: &str, kind: Option<&str>| serde_json::json!({"pkg": id, "dep_kinds": [{"kind": kind}]});
        let node = |id: &str, deps: Vec<Value>| serde_json::json!({"id": id, "deps": deps});
        let ids = [
            "sync-protocol",
            "sync-metrics",
            "tokio",
            "sync-sim",
            "sync-client",
            "sync-domain",
            "sync-server",
            "tool",
        ];
        let metadata = |metrics_tokio: Option<&str>| {
            serde_json::json!({
                "packages": ids.iter().map(|id| package(id)).collect::<Vec<_>>(),
                "resolve": {"nodes": [
                    node("sync-protocol", vec![dep("sync-metrics", None)]),
                    node("sync-metrics", vec![dep("tokio", metrics_tokio)]),
                    node("sync-sim", vec![dep("sync-client", None), dep("sync-domain", Some("dev"))]),
                    node("sync-client", vec![dep("sync-protocol", None), dep("tokio", None)]),
                    node("sync-domain", vec![dep("tokio", None)]),
                    node("tool", vec![dep("sync-server", Some("dev"))]),
                ]}
            })
        };
        let problems = dependency_rules(&metadata(None));
        let has = |text: &str| problems.iter().any(|p| p.contains(text));
        assert!(has("sync-protocol -> sync-metrics -> tokio"), "{problems:#?}");
        assert!(has("sync-metrics -> tokio"), "{problems:#?}");
        assert!(has("sync-sim -> sync-domain"), "a dev-dependency counts for sync-sim: {problems:#?}");
        assert!(has("tool depends on sync-server"), "{problems:#?}");
        // sync-client reaches tokio, which is allowed, and nothing forbidden.
        assert!(!problems.iter().any(|p| p.contains(": sync-client ->")), "{problems:#?}");
        assert_eq!(problems.len(), 4, "{problems:#?}");
        // A logic crate may use tokio in its own tests, and that reaches no one.
        let dev_only = dependency_rules(&metadata(Some("dev")));
        assert!(!dev_only.iter().any(|p| p.contains("tokio")), "{dev_only:#?}");
        assert_eq!(dev_only.len(), 2, "{dev_only:#?}");
    }
}
