//! House-style checks over every tracked Rust file; also run as an ordinary test.

use std::collections::{BTreeMap, VecDeque};
use std::process::Command;
use std::{fs, path::Path};

use anyhow::Result;

/// Directories never checked: build output, and trybuild fixtures whose exact text is
/// the point of the test.
const SKIP_DIRS: &[&str] = &["target", ".git", "ui"];

/// Every problem found below `root`, as `path: what`.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    visit(root, root, &mut problems)?;
    problems.extend(client_rules(root)?);
    let (trees, server) = dependency_trees(root)?;
    problems.extend(dependency_rules(&trees, &server));
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
// The dependency rules of docs/ARCHITECTURE.md ("Dependency rules"). The list below is the one
// place they are written; the document quotes it. Each rule reads `cargo tree -p <crate>`, the
// graph `cargo build -p <crate>` builds: `cargo metadata`'s one resolve unifies features over
// the whole workspace (there sync-client's diesel has PostgreSQL, because sync-sim's does),
// which is not what an app that embeds sync-client gets.

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
/// with `dev`, its own dev-dependencies and what they bring count too).
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

/// `cargo tree` at `root` with `args`, each package as `<depth><name> <version>…`.
fn cargo_tree(root: &Path, args: &[&str]) -> Result<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["tree", "--prefix", "depth", "--format", "{p}"])
        .args(args)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// The trees the rules read: each rule's crate, and who depends on sync-server.
fn dependency_trees(root: &Path) -> Result<(Vec<String>, String)> {
    let mut trees = Vec::new();
    for rule in RULES {
        let edges = if rule.dev { "normal,build,dev" } else { "normal,build" };
        trees.push(cargo_tree(root, &["-p", rule.krate, "-e", edges])?);
    }
    let server =
        cargo_tree(root, &["--workspace", "-i", "sync-server", "-e", "normal,build,dev", "--depth", "1"])?;
    Ok((trees, server))
}

/// A dependency graph read off `cargo tree --prefix depth` (packages by name).
struct Graph {
    deps: BTreeMap<String, Vec<String>>,
}

impl Graph {
    fn of_tree(text: &str) -> Graph {
        let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut stack: Vec<String> = Vec::new();
        for line in text.lines() {
            let digits = line.chars().take_while(char::is_ascii_digit).count();
            let Ok(depth) = line[..digits].parse::<usize>() else { continue };
            let name = line[digits..].split_whitespace().next().unwrap_or_default().to_owned();
            stack.truncate(depth);
            if let Some(parent) = stack.last() {
                let children = deps.entry(parent.clone()).or_default();
                if !children.contains(&name) {
                    children.push(name.clone());
                }
            }
            stack.push(name);
        }
        Graph { deps }
    }

    /// The shortest path from `from` to each package named in `forbidden` it reaches.
    fn reaches(&self, from: &str, forbidden: &[&str]) -> Vec<Vec<String>> {
        let mut found = Vec::new();
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(at) = queue.pop_front() {
            for dep in self.deps.get(at).into_iter().flatten() {
                if parent.contains_key(dep.as_str()) || dep == from {
                    continue;
                }
                parent.insert(dep, at);
                if forbidden.contains(&dep.as_str()) {
                    let mut path = vec![dep.clone()];
                    let mut step = at;
                    while step != from {
                        path.push(step.to_owned());
                        step = parent[step];
                    }
                    path.push(from.to_owned());
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

/// Every break of [`RULES`] (`trees[i]` is rule i's `cargo tree`), and every package that
/// depends on sync-server (`server` is `cargo tree -i sync-server --depth 1`).
fn dependency_rules(trees: &[String], server: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (rule, tree) in RULES.iter().zip(trees) {
        for path in Graph::of_tree(tree).reaches(rule.krate, rule.forbidden) {
            problems.push(format!(
                "dependencies: {} ({}; docs/ARCHITECTURE.md)",
                path.join(" -> "),
                rule.why
            ));
        }
    }
    let dependents = Graph::of_tree(server);
    for dependent in dependents.deps.get("sync-server").into_iter().flatten() {
        problems.push(format!(
            "dependencies: {dependent} depends on sync-server (nothing does: it only wires crates together)"
        ));
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

    /// Fabricated trees: sync-protocol reaching tokio through sync-metrics, sync-sim's tests
    /// using sync-domain, sync-client fine, and a tool depending on sync-server.
    #[test]
    fn dependency_rules_catch_each_break() {
        let tree_of = |krate: &str| match krate {
            "sync-protocol" => {
                "0sync-protocol v0.1.0\n1serde v1\n1sync-metrics v0.1.0\n2tokio v1\n3mio v1\n".into()
            }
            "sync-metrics" => "0sync-metrics v0.1.0\n1tokio v1\n2mio v1\n".into(),
            "sync-sim" => {
                "0sync-sim v0.1.0\n1sync-client v0.1.0\n2tokio v1\n1sync-domain v0.1.0 (dev)\n".into()
            }
            "sync-client" => "0sync-client v0.1.0\n1diesel v2\n2libsqlite3-sys v0.30\n1tokio v1\n".into(),
            other => format!("0{other} v0.1.0\n"),
        };
        let trees: Vec<String> = RULES.iter().map(|rule| tree_of(rule.krate)).collect();
        let server = "0sync-server v0.1.0\n1tool v0.1.0\n";
        let problems = dependency_rules(&trees, server);
        let has = |text: &str| problems.iter().any(|p| p.contains(text));
        // The shortest path to the first IO crate, not every crate beyond it.
        assert!(has("dependencies: sync-protocol -> sync-metrics -> tokio ("), "{problems:#?}");
        assert!(has("dependencies: sync-metrics -> tokio ("), "{problems:#?}");
        assert!(has("dependencies: sync-sim -> sync-domain ("), "{problems:#?}");
        assert!(has("tool depends on sync-server"), "{problems:#?}");
        assert_eq!(problems.len(), 4, "sync-client reaches nothing forbidden: {problems:#?}");
        // The same trees without the breaks: nothing to report.
        let clean: Vec<String> = RULES.iter().map(|r| format!("0{} v0.1.0\n1serde v1\n", r.krate)).collect();
        assert_eq!(dependency_rules(&clean, "0sync-server v0.1.0\n"), Vec::<String>::new());
    }
}
