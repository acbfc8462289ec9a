//! The layering rule, checked: a module may use its own layer and those below it, never one
//! above. Fails on the first import against the grain, naming the file, the line and both
//! layers. The domain sits in its own crate, which cannot see this one at all; here it is
//! checked that it stays free of network clients.

use std::path::{Path, PathBuf};

/// The layers, top first (see the crate documentation).
const LAYERS: &[&str] = &[
    "cli", "report", "suite", "stage", "adapter", "config", "domain",
];

/// Dependencies the domain crate may have: no network, no runtime, no process.
const DOMAIN_DEPENDENCIES: &[&str] = &[
    "apache-avro", // pure: decodes the TA job's Kafka outputs (no network, no runtime)
    "clickhouse",  // optional, only for `Row` (see its `clickhouse` feature)
    "humantime",
    "percent-encoding",
    "rand_core",
    "rand_pcg",
    "serde",
    "serde_json",
    "thiserror",
    "time",
    "toml",
    "url",
];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file below `src/`: `cli/canary/mod.rs` → `[cli, canary]`.
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The first segment of every crate path a line names: `crate::x::…`, and `super::…` chains
/// resolved from the file's module (doc comments and strings aside).
fn targets(line: &str, module: &[String]) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let code: String = code.split('"').step_by(2).collect::<Vec<_>>().join(" ");
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || b"_$".contains(&bytes[i - 1])) {
            continue; // `$crate::` in a macro, or a longer identifier
        }
        let rest = &code[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        found.push(name);
    }
    for (i, _) in code.match_indices("super::") {
        if i > 0 && code[..i].ends_with("super::") {
            continue; // counted from the first `super::` of the chain
        }
        let mut rest = &code[i..];
        let mut up = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            up += 1;
            rest = r;
        }
        // A file's own module is `module`; `super` is its parent (an inline `mod tests`'s
        // `super` is the file's module, within the same layer either way).
        if up >= module.len() {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        } else {
            found.push(module[0].clone());
        }
    }
    found.retain(|n| !n.is_empty());
    found
}

#[test]
fn every_import_goes_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    all.sort();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for path in &all {
        let relative = path.strip_prefix(&src).expect("below src");
        let module = module_of(relative);
        let Some(layer) = module.first().and_then(|m| rank(m).map(|r| (m.clone(), r))) else {
            continue; // lib.rs, main.rs, this file
        };
        let text = std::fs::read_to_string(path).expect("readable");
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            if layer.0 != "cli" && (line.contains("outln!") || line.contains("errln!")) {
                wrong.push(format!(
                    "{}:{}: {} prints with the command line's macros (cli is above it)",
                    relative.display(),
                    n + 1,
                    layer.0
                ));
            }
            if line.contains("torghut_e2e_domain") {
                wrong.push(format!(
                    "{}:{}: name the domain as crate::domain",
                    relative.display(),
                    n + 1
                ));
            }
            for target in targets(line, &module) {
                checked += 1;
                let Some(to) = rank(&target) else {
                    wrong.push(format!(
                        "{}:{}: crate::{target} is no layer",
                        relative.display(),
                        n + 1
                    ));
                    continue;
                };
                if to < layer.1 {
                    wrong.push(format!(
                        "{}:{}: {} (a lower layer) uses {target}",
                        relative.display(),
                        n + 1,
                        layer.0
                    ));
                }
            }
        }
    }
    assert!(
        checked > 300,
        "only {checked} crate paths found: is the parser blind?"
    );
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_parser_sees_crate_paths_and_resolves_super() {
    let m = |s: &[&str]| s.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    assert_eq!(
        targets(
            "use crate::suite::seam::Warehouse; // crate::cli",
            &m(&["stage"])
        ),
        ["suite"]
    );
    assert_eq!(
        targets("$crate::cli::stdio::out(x)", &m(&["cli"])),
        Vec::<String>::new()
    );
    assert_eq!(
        targets(
            "let s = \"crate::cli\"; x::<crate::report::X>()",
            &m(&["suite"])
        ),
        ["report"]
    );
    // From cli/run.rs, `super::` is cli; from cli/canary/history.rs, `super::super::` is cli.
    assert_eq!(targets("use super::Outcome;", &m(&["cli", "run"])), ["cli"]);
    assert_eq!(
        targets(
            "use super::super::report;",
            &m(&["cli", "canary", "history"])
        ),
        ["cli"]
    );
    // From a layer's root, `super::` is the crate.
    assert_eq!(targets("use super::report::x;", &m(&["suite"])), ["report"]);
}

#[test]
fn the_domain_crate_has_no_network_client() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/domain/Cargo.toml");
    let text = std::fs::read_to_string(manifest).expect("crates/domain/Cargo.toml");
    let toml: toml::Table = text.parse().expect("TOML");
    let deps = toml["dependencies"].as_table().expect("[dependencies]");
    for (name, spec) in deps {
        assert!(
            DOMAIN_DEPENDENCIES.contains(&name.as_str()),
            "the domain crate depends on {name}: keep it pure (no network, runtime or process)"
        );
        if name == "clickhouse" {
            assert_eq!(
                spec.get("optional").and_then(toml::Value::as_bool),
                Some(true),
                "clickhouse must stay optional in the domain crate"
            );
        }
    }
}
