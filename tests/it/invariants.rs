//! The invariants of ARCHITECTURE.md that the source text can show, checked on every run:
//! where the AWS SDK may be named, who may read the wall clock, that the core is synchronous,
//! which module may name which, and that imports never go round in a circle. Each failure
//! names the file and the line.
//!
//! The scan reads code, not comments: everything after `//` on a line is left out (a `//`
//! inside a string literal cuts the line short, which can only hide a violation on the rest
//! of that line, never invent one).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One `.rs` file: its path relative to the repository, its module path (`src/reconcile/
/// observe.rs` is `["reconcile", "observe"]`), and its lines without comments.
struct SourceFile {
    path: String,
    module: Vec<String>,
    lines: Vec<String>,
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir` (relative to the repository), sorted.
fn sources(dir: &str) -> Vec<SourceFile> {
    let root = repository();
    let mut paths = Vec::new();
    collect(&root.join(dir), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}"));
            SourceFile {
                module: module_path(&relative),
                lines: text.lines().map(without_comment).collect(),
                path: relative,
            }
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module of a file of the library: `src/lib.rs` and `src/main.rs` are the root,
/// `a/mod.rs` is `a`.
fn module_path(relative: &str) -> Vec<String> {
    let inside = relative
        .strip_prefix("src/")
        .unwrap_or(relative)
        .trim_end_matches(".rs");
    let mut module: Vec<String> = inside.split('/').map(str::to_string).collect();
    if matches!(
        module.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        module.pop();
    }
    module
}

fn without_comment(line: &str) -> String {
    match line.find("//") {
        Some(i) => line[..i].to_string(),
        None => line.to_string(),
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `line` holds `word` not preceded by an identifier character (and, unless
/// `prefix`, not followed by one either).
fn has_word(line: &str, word: &str, prefix: bool) -> bool {
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        !before.is_some_and(is_ident_char) && (prefix || !after.is_some_and(is_ident_char))
    })
}

/// `file:line: text`, for a violation.
fn at(file: &SourceFile, index: usize, what: &str) -> String {
    format!(
        "{}:{}: {what}: {}",
        file.path,
        index + 1,
        file.lines[index].trim()
    )
}

/// `file:line: text`, for where an edge of the import graph comes from.
fn location(file: &SourceFile, index: usize) -> String {
    format!("{}:{}: {}", file.path, index + 1, file.lines[index].trim())
}

fn assert_none(rule: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{rule} ({} violation(s)):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

/// Every `PREFIX{ ... }` group (a grouped import, perhaps over several lines): the line it
/// starts on and its text from the opening brace to the matching closing one.
fn use_groups(file: &SourceFile, prefix: &str) -> Vec<(usize, String)> {
    let opening = format!("{prefix}{{");
    let mut groups = Vec::new();
    for (index, line) in file.lines.iter().enumerate() {
        for (start, _) in line.match_indices(&opening) {
            let mut text = String::new();
            let mut depth = 0;
            'group: for (n, next) in file.lines[index..].iter().enumerate() {
                let next = if n == 0 {
                    &next[start + prefix.len()..]
                } else {
                    next.as_str()
                };
                for c in next.chars() {
                    text.push(c);
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break 'group;
                            }
                        }
                        _ => {}
                    }
                }
                text.push(' ');
            }
            groups.push((index, text));
        }
    }
    groups
}

/// The top-level modules of the crate that a line names, with `crate::`, through enough
/// `super::` to reach the root, or inside a `crate::{...}` group.
fn crate_modules_named(file: &SourceFile) -> Vec<(usize, String)> {
    let mut named = Vec::new();
    let first_segment = |rest: &str| -> Option<String> {
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| is_ident_char(*c))
            .collect();
        (!name.is_empty()).then_some(name)
    };
    for (index, line) in file.lines.iter().enumerate() {
        for (i, _) in line.match_indices("crate::") {
            if line[..i].chars().next_back().is_some_and(is_ident_char) {
                continue;
            }
            if let Some(name) = first_segment(&line[i + "crate::".len()..]) {
                named.push((index, name));
            }
        }
        // `super::super::x` from a file `depth` modules deep names the root's `x`.
        let depth = file.module.len();
        if depth > 0 {
            let up = "super::".repeat(depth);
            for (i, _) in line.match_indices(&up) {
                let before = line[..i].chars().next_back();
                if before.is_some_and(|c| is_ident_char(c) || c == ':') {
                    continue;
                }
                // More `super::` than that would go above the root, which Rust refuses.
                if let Some(name) =
                    first_segment(&line[i + up.len()..]).filter(|name| name != "super")
                {
                    named.push((index, name));
                }
            }
        }
    }
    for (index, group) in use_groups(file, "crate::") {
        // The first segment of every path at the group's top level (depth 1).
        let mut depth = 0;
        let mut at_segment_start = false;
        let mut current = String::new();
        for c in group.chars() {
            match c {
                '{' => {
                    depth += 1;
                    at_segment_start = depth == 1;
                }
                '}' => depth -= 1,
                ',' if depth == 1 => at_segment_start = true,
                c if depth == 1 && at_segment_start && is_ident_char(c) => current.push(c),
                _ if depth == 1 && at_segment_start && !current.is_empty() => {
                    named.push((index, std::mem::take(&mut current)));
                    at_segment_start = false;
                }
                _ => {}
            }
        }
        if !current.is_empty() {
            named.push((index, current));
        }
    }
    named
}

/// The library, the binary, and the simulation crate (which must be as deterministic as the
/// controller it runs).
fn production_and_simulation() -> Vec<SourceFile> {
    let mut files = sources("src");
    files.extend(sources("simulation/src"));
    files
}

#[test]
fn only_the_aws_adapters_name_aws_sdk_types() {
    let mut violations = Vec::new();
    for file in production_and_simulation() {
        if file.path.starts_with("src/aws/") {
            continue;
        }
        for (index, line) in file.lines.iter().enumerate() {
            if has_word(line, "aws_sdk_", true) {
                violations.push(at(&file, index, "names the AWS SDK"));
            }
        }
    }
    assert_none("only src/aws/ names aws_sdk_* types", violations);
}

#[test]
fn only_the_clock_reads_the_wall_clock() {
    let reads = [
        "std::time::Instant",
        "std::time::SystemTime",
        "SystemTime::now",
        "Timestamp::now",
        "Zoned::now",
    ];
    let mut violations = Vec::new();
    for file in production_and_simulation() {
        if file.path == "src/clock.rs" {
            continue;
        }
        for (index, line) in file.lines.iter().enumerate() {
            for read in reads {
                if has_word(line, read, false) {
                    violations.push(at(&file, index, &format!("reads the wall clock ({read})")));
                }
            }
        }
        for (index, group) in use_groups(&file, "std::time::") {
            for name in ["Instant", "SystemTime"] {
                if has_word(&group, name, false) {
                    violations.push(at(
                        &file,
                        index,
                        &format!("reads the wall clock (std::time::{name})"),
                    ));
                }
            }
        }
    }
    assert_none(
        "only src/clock.rs reads the wall clock (tokio's Instant is the controllable clock)",
        violations,
    );
}

#[test]
fn the_pure_core_never_awaits_and_never_names_tokio() {
    let mut violations = Vec::new();
    for file in sources("src/reconcile") {
        for (index, line) in file.lines.iter().enumerate() {
            if has_word(line, "async", false) {
                violations.push(at(&file, index, "async"));
            }
            if line.contains(".await") {
                violations.push(at(&file, index, ".await"));
            }
            if has_word(line, "tokio", true) {
                violations.push(at(&file, index, "names tokio"));
            }
        }
    }
    assert_none(
        "src/reconcile/ (its tests included) has no async, .await or tokio",
        violations,
    );
}

#[test]
fn lower_layers_never_name_higher_ones() {
    let rules: [(&str, &[&str]); 3] = [
        (
            "src/reconcile",
            &["controller", "aws", "sim", "cli", "http", "demo"],
        ),
        ("src/model", &["reconcile", "controller", "aws", "sim"]),
        ("src/ports", &["controller", "aws", "sim", "reconcile"]),
    ];
    let mut violations = Vec::new();
    for (dir, forbidden) in rules {
        for file in sources(dir) {
            for (index, module) in crate_modules_named(&file) {
                if forbidden.contains(&module.as_str()) {
                    violations.push(at(&file, index, &format!("{dir}/ names crate::{module}")));
                }
            }
        }
    }
    assert_none("a layer names a module above it", violations);
}

/// The first cycle of a directed graph, as the path that closes it, if any.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_circle_between_modules_or_between_files_of_a_module() {
    let files = sources("src");
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.module.first().cloned())
        .collect();
    // The crate's top-level modules (`cli` -> `http` when a file of cli/ names crate::http).
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut top_where: BTreeMap<(String, String), String> = BTreeMap::new();
    // The files of one directory (`sim/codedeploy` -> `sim/world` for `super::world::...`):
    // a child naming an item of its parent (`super::SimAws`) is not an edge between files.
    let mut siblings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut sibling_where: BTreeMap<(String, String), String> = BTreeMap::new();
    let file_modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    for file in &files {
        let Some(own) = file.module.first() else {
            continue;
        };
        for (index, module) in crate_modules_named(file) {
            if module != *own && modules.contains(&module) {
                top_where
                    .entry((own.clone(), module.clone()))
                    .or_insert_with(|| location(file, index));
                top.entry(own.clone()).or_default().insert(module);
            }
        }
        // A top-level module's own `mod.rs` (`reconcile/mod.rs`) names the crate's root with
        // `super::`; a nested one's (`reconcile/task_sets/mod.rs`) names its siblings' parent
        // like any other file of the directory.
        if file.module.len() < 2 {
            continue;
        }
        let parent = &file.module[..file.module.len() - 1];
        let name = |module: &[String]| module.join("/");
        for (index, line) in file.lines.iter().enumerate() {
            for (i, _) in line.match_indices("super::") {
                let before = line[..i].chars().next_back();
                if before.is_some_and(|c| is_ident_char(c) || c == ':') {
                    continue;
                }
                let rest = &line[i + "super::".len()..];
                let mut targets: Vec<String> = Vec::new();
                let segment: String = rest.chars().take_while(|c| is_ident_char(*c)).collect();
                if !segment.is_empty() {
                    targets.push(segment);
                } else if rest.starts_with('{') {
                    // `use super::{a::X, b}`: the first segment of each path.
                    let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
                    targets.extend(group.split(',').filter_map(|path| {
                        let first: String = path
                            .trim()
                            .chars()
                            .take_while(|c| is_ident_char(*c))
                            .collect();
                        (!first.is_empty()).then_some(first)
                    }));
                }
                for target in targets {
                    let mut sibling = parent.to_vec();
                    sibling.push(target);
                    if sibling != file.module && file_modules.contains(&sibling) {
                        let (from, to) = (name(&file.module), name(&sibling));
                        sibling_where
                            .entry((from.clone(), to.clone()))
                            .or_insert_with(|| location(file, index));
                        siblings.entry(from).or_default().insert(to);
                    }
                }
            }
        }
    }
    for (what, edges, places) in [
        ("modules", &top, &top_where),
        ("files of one module", &siblings, &sibling_where),
    ] {
        if let Some(cycle) = find_cycle(edges) {
            let evidence: Vec<String> = cycle
                .windows(2)
                .map(|pair| {
                    format!(
                        "  {} -> {}: {}",
                        pair[0],
                        pair[1],
                        places[&(pair[0].clone(), pair[1].clone())]
                    )
                })
                .collect();
            panic!(
                "an import circle between {what}: {}\n{}",
                cycle.join(" -> "),
                evidence.join("\n")
            );
        }
    }
}

// The scanner itself: each rule must catch what it is for (a rule that matches nothing would
// pass for ever).

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.to_string(),
        module: module_path(path),
        lines: text.lines().map(without_comment).collect(),
    }
}

#[test]
fn the_scanner_finds_modules_named_every_way() {
    let named = |path: &str, text: &str| -> Vec<String> {
        crate_modules_named(&file(path, text))
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    };
    assert_eq!(
        named("src/reconcile/observe.rs", "use crate::aws::X;"),
        ["aws"]
    );
    assert_eq!(
        named(
            "src/reconcile/observe.rs",
            "use crate::{\n    model::Phase,\n    sim::{SimAws, lock},\n};"
        ),
        ["model", "sim"]
    );
    assert_eq!(
        named(
            "src/reconcile/observe.rs",
            "let x = super::super::controller::run;"
        ),
        ["controller"]
    );
    assert_eq!(
        named(
            "src/reconcile/mod.rs",
            "use super::http;\nuse super::super::x;"
        ),
        ["http"]
    );
    assert!(named("src/reconcile/mod.rs", "// use crate::aws;").is_empty());
    assert!(named("src/reconcile/mod.rs", "let y = my_crate::aws::x;").is_empty());
}

#[test]
fn the_scanner_sees_wall_clock_imports_in_groups() {
    let f = file(
        "src/x.rs",
        "use std::time::{\n    Duration,\n    Instant,\n};\nfn f() {}",
    );
    let groups = use_groups(&f, "std::time::");
    assert_eq!(groups.len(), 1);
    assert!(has_word(&groups[0].1, "Instant", false));
    assert!(!has_word(
        "use tokio::time::Instant;",
        "std::time::Instant",
        false
    ));
    assert!(has_word(
        "let a = jiff::Timestamp::now();",
        "Timestamp::now",
        false
    ));
    assert!(has_word("async fn f()", "async", false));
    assert!(!has_word("fn is_async_ready()", "async", false));
}
