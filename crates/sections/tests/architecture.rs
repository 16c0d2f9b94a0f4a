//! The library's shape, read from its source: every module uses only
//! modules of its own floor or below (the floors are listed in `lib.rs`),
//! files do not import each other in circles, `sync/` and `channel/` carry
//! no platform `cfg` (the platform layer `sys/` hides the platform), no
//! module glob-re-exports another, and no file grows past 700 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top; a module may use its own floor and those below.
const FLOORS: &[(&str, u8)] = &[
    ("types", 0),
    ("error", 0),
    ("sys", 1),
    ("section", 2),
    ("view", 2),
    ("image", 2),
    ("options", 2),
    ("share", 2),
    ("share_unix", 2),
    ("named", 2),
    ("sync", 3),
    ("channel", 4),
    ("inspect", 5),
    ("usage", 5),
    ("aio", 5),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's path inside `src`, as module path components.
fn module_of(path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn floor(top: &str) -> Option<u8> {
    FLOORS.iter().find(|(m, _)| *m == top).map(|&(_, f)| f)
}

/// The code of a file without comments (line comments and doc comments).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b...` path the code names, as module components.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let tail = &rest[i + 7..];
        let path: Vec<String> = tail
            .split("::")
            .map(|seg| {
                seg.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|seg| !seg.is_empty() && seg.chars().next().unwrap().is_lowercase())
            .collect();
        if !path.is_empty() {
            out.push(path);
        }
        rest = &rest[i + 7..];
    }
    out
}

#[test]
fn every_module_uses_only_its_own_floor_or_below() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let mut violations = Vec::new();
    for path in &all {
        let module = module_of(path);
        let Some(top) = module.first() else { continue };
        if top == "lib" {
            continue;
        }
        let own = floor(top).unwrap_or_else(|| panic!("{} has no floor in FLOORS", top));
        for used in crate_paths(&code(path)) {
            let Some(theirs) = floor(&used[0]) else {
                continue;
            };
            if theirs > own {
                violations.push(format!(
                    "{} (floor {own}) uses crate::{} (floor {theirs})",
                    module.join("::"),
                    used.join("::")
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn files_do_not_import_each_other_in_circles() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let modules: BTreeSet<Vec<String>> = all.iter().map(|p| module_of(p)).collect();
    // The longest module path a `crate::` path names: its file.
    let file_of = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| modules.contains(p))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for path in &all {
        let me = module_of(path);
        let code = code(path);
        let mut used = crate_paths(&code);
        // `super::x` from a file `a/b` (or `a/b/mod.rs`) names `a::x`.
        for line in code.lines() {
            if let Some(i) = line.find("use super::") {
                let name: String = line[i + 11..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                // (`a/b/mod.rs` is module `a::b` too.)
                let mut parent = me.clone();
                parent.pop();
                parent.push(name);
                used.push(parent);
            }
        }
        for u in used {
            if let Some(f) = file_of(&u) {
                // A file and the directory module above it are one unit.
                if f != me && !me.starts_with(&f) && !f.starts_with(&me) {
                    edges.entry(me.clone()).or_default().insert(f);
                }
            }
        }
    }
    // Depth-first search for a cycle.
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            return Some(stack[i..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            panic!(
                "files import each other in a circle: {}",
                names.join(" -> ")
            );
        }
    }
}

#[test]
fn sync_and_channel_carry_no_platform_cfg() {
    let mut all = Vec::new();
    files(&src().join("sync"), &mut all);
    files(&src().join("channel"), &mut all);
    assert!(!all.is_empty());
    let platform = ["target_os", "unix", "windows", "target_family"];
    for path in &all {
        for (n, line) in code(path).lines().enumerate() {
            if let Some(i) = line.find("cfg(") {
                let cfg = &line[i..];
                assert!(
                    !platform.iter().any(|p| cfg.contains(p)),
                    "{}:{}: {}",
                    path.display(),
                    n + 1,
                    line.trim()
                );
            }
        }
    }
}

#[test]
fn no_glob_re_exports_and_no_oversized_files() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    for path in &all {
        let code = code(path);
        for line in code.lines() {
            let l = line.trim();
            assert!(
                !(l.contains("use ") && l.starts_with("pub") && l.ends_with("::*;")),
                "{}: {l}",
                path.display()
            );
        }
        let lines = std::fs::read_to_string(path).unwrap().lines().count();
        assert!(
            lines <= 700,
            "{} has {lines} lines: split it by concept",
            path.display()
        );
    }
}

#[test]
fn every_file_says_what_it_is_for() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    for path in &all {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.trim_start().starts_with("//!"),
            "{} has no opening comment",
            path.display()
        );
    }
}
