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
    Ok(problems)
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
}
