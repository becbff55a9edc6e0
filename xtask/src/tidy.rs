//! House-style checks over every tracked Rust file; also run as an ordinary test.

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
    Ok(problems)
}

/// Crates sync-client must never depend on, even for tests (docs/ARCHITECTURE.md): the server
/// side, and PostgreSQL's driver.
const CLIENT_FORBIDDEN: &[&str] =
    &["sync-domain", "sync-api", "sync-live", "sync-server", "sync-sim", "pq-sys"];
/// What sync-client's `core` module must not name: it does no IO and reads no clock.
const CORE_FORBIDDEN: &[&str] =
    &["reqwest", "tokio", "diesel", "std::fs", "std::net", "now_utc", "SystemTime"];

/// sync-client's dependency rules (docs/ARCHITECTURE.md), checked on its manifest and core.
fn client_rules(root: &Path) -> Result<Vec<String>> {
    let client = root.join("crates/sync-client");
    if !client.exists() {
        return Ok(Vec::new());
    }
    let mut problems = check_client_manifest(&fs::read_to_string(client.join("Cargo.toml"))?);
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

fn check_client_manifest(manifest: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line.ends_with("dependencies]");
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
        if in_dependencies && CLIENT_FORBIDDEN.contains(&name) {
            problems
                .push(format!("crates/sync-client/Cargo.toml: depends on {name} (see docs/ARCHITECTURE.md)"));
        }
        // The workspace's diesel enables PostgreSQL (libpq): the client names its own, SQLite only.
        if in_dependencies && name == "diesel" && (line.contains("postgres") || line.contains("workspace")) {
            problems.push("crates/sync-client/Cargo.toml: diesel must be SQLite only".to_owned());
        }
    }
    problems
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
    fn client_rules_catch_each_break() {
        let fine = "[dependencies]\nsync-protocol.workspace = true\ndiesel = { version = \"2\", features = [\"sqlite\"] }\n";
        assert_eq!(check_client_manifest(fine), Vec::<String>::new());
        assert_eq!(
            check_client_manifest("[dev-dependencies]\nsync-domain = { workspace = true }\n").len(),
            1
        );
        assert_eq!(check_client_manifest("[dependencies]\ndiesel.workspace = true\n").len(), 1);
        assert_eq!(check_client_manifest("[features]\nsync-api = []\n"), Vec::<String>::new());
        assert_eq!(
            check_core_file("//! Core.\n// tokio is fine in a comment\nfn f() {}\n"),
            Vec::<String>::new()
        );
        assert_eq!(
            check_core_file("//! Core.\nuse tokio::time;\n"),
            ["line 2: the sans-IO core names `tokio`"]
        );
    }
}
