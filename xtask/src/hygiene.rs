//! Source-level checks of `cargo xtask ci` that need no build: every declared dependency
//! is used, and the binaries hold argument parsing only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Dependencies declared for a side effect rather than used by name, with the reason.
const USED_WITHOUT_NAME: &[(&str, &str)] = &[(
    "torch-sys",
    "its links metadata gives build.rs libtorch's folder (DEP_TCH_LIBTORCH_LIB)",
)];

/// The only crates a binary may depend on directly: the node core, the role crates and
/// the lab tools hold the logic.
const BIN_DEPENDENCIES: &[&str] = &[
    "grail-node",
    "grail-mine",
    "grail-validate",
    "grail-train",
    "grail-lab",
    "grail-client",
    "anyhow",
    "clap",
    "tokio",
    "serde_json",
    "torch-sys",
];

/// Which dependency table a name was declared in, and where its users may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Normal,
    Dev,
    Build,
}

impl Table {
    fn of_header(header: &str) -> Option<Self> {
        match header {
            "[dependencies]" => Some(Self::Normal),
            "[dev-dependencies]" => Some(Self::Dev),
            "[build-dependencies]" => Some(Self::Build),
            _ => None,
        }
    }

    /// Folders and files (relative to the package) whose sources may use the dependency.
    fn users(self) -> &'static [&'static str] {
        match self {
            Self::Normal => &["src"],
            Self::Dev => &["src", "tests", "benches", "examples"],
            Self::Build => &["build.rs"],
        }
    }
}

/// The dependencies a Cargo.toml declares: `(table, package name)`.
fn declared(manifest: &str) -> Vec<(Table, String)> {
    let mut table = None;
    let mut out = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            table = Table::of_header(line);
            continue;
        }
        let Some(t) = table else { continue };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push((t, name));
        }
    }
    out
}

/// Whether `source` names the crate `ident` as a path, import, macro or extern crate.
fn mentions(source: &str, ident: &str) -> bool {
    source.match_indices(ident).any(|(i, _)| {
        let before = source[..i].chars().next_back();
        let after = &source[i + ident.len()..];
        let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let boundary = !before.is_some_and(ident_char) && !after.starts_with(ident_char);
        boundary
            && (after.starts_with("::")
                || after.starts_with('!')
                || source[..i].ends_with("use ")
                || source[..i].ends_with("extern crate "))
    })
}

/// Every `.rs` file under `path` (or `path` itself).
fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_path_buf());
        }
    } else if let Ok(entries) = std::fs::read_dir(path) {
        let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for e in entries {
            rust_files(&e, out);
        }
    }
}

/// The workspace's package folders.
fn packages(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.join("tests"), root.join("xtask")];
    for group in ["crates", "bins"] {
        if let Ok(entries) = std::fs::read_dir(root.join(group)) {
            out.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.join("Cargo.toml").is_file()),
            );
        }
    }
    out.sort();
    out
}

/// Dependencies no source of their package uses: `package: table name`.
pub fn unused_dependencies(root: &Path) -> Result<Vec<String>, String> {
    let mut unused = Vec::new();
    for package in packages(root) {
        let manifest_path = package.join("Cargo.toml");
        let manifest = std::fs::read_to_string(&manifest_path)
            .map_err(|e| format!("reading {}: {e}", manifest_path.display()))?;
        let name = package.file_name().unwrap_or_default().to_string_lossy();
        for (table, dep) in declared(&manifest) {
            if USED_WITHOUT_NAME.iter().any(|(n, _)| *n == dep) {
                continue;
            }
            let mut files = Vec::new();
            for user in table.users() {
                rust_files(&package.join(user), &mut files);
            }
            let ident = dep.replace('-', "_");
            let used = files
                .iter()
                .any(|f| std::fs::read_to_string(f).is_ok_and(|source| mentions(&source, &ident)));
            if !used {
                unused.push(format!("{name}: {table:?} dependency `{dep}`"));
            }
        }
    }
    Ok(unused)
}

/// Why a binary is more than argument parsing: extra source files or dependencies.
pub fn thick_bins(root: &Path) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    let allowed: BTreeSet<&str> = BIN_DEPENDENCIES.iter().copied().collect();
    let Ok(entries) = std::fs::read_dir(root.join("bins")) else {
        return Ok(problems);
    };
    for bin in entries.flatten().map(|e| e.path()) {
        let name = bin
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let mut files = Vec::new();
        rust_files(&bin.join("src"), &mut files);
        for f in &files {
            if f.file_name().is_some_and(|n| n != "main.rs") {
                problems.push(format!(
                    "{name}: {} (logic belongs in the role crates; a binary is one main.rs)",
                    f.display()
                ));
            }
        }
        let manifest = std::fs::read_to_string(bin.join("Cargo.toml"))
            .map_err(|e| format!("reading {name}/Cargo.toml: {e}"))?;
        for (table, dep) in declared(&manifest) {
            if table == Table::Normal && !allowed.contains(dep.as_str()) {
                problems.push(format!(
                    "{name}: depends on `{dep}` (binaries may use only {BIN_DEPENDENCIES:?})"
                ));
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_dependencies_by_table() {
        let manifest = "[package]\nname = \"x\"\n\n[dependencies]\n# comment\ngrail-proto = { workspace = true }\nserde.workspace = true\n\n[dev-dependencies]\ntempfile = \"3\"\n\n[lints]\nworkspace = true\n";
        assert_eq!(
            declared(manifest),
            [
                (Table::Normal, "grail-proto".to_string()),
                (Table::Normal, "serde".to_string()),
                (Table::Dev, "tempfile".to_string()),
            ]
        );
    }

    #[test]
    fn mentions_needs_a_path_import_or_macro() {
        assert!(mentions("use serde::Deserialize;", "serde"));
        assert!(mentions("fn f() { serde_json::to_vec(&x) }", "serde_json"));
        assert!(mentions("#[tokio::test]", "tokio"));
        assert!(mentions("use hex;", "hex"));
        assert!(mentions("anyhow!(\"x\")", "anyhow"));
        // A longer name or a variable is not the crate.
        assert!(!mentions("use serde_json::Value;", "serde"));
        assert!(!mentions("let sha2 = 1; my_sha2::x()", "sha2"));
        assert!(!mentions("// bytes are bytes", "bytes"));
    }
}
