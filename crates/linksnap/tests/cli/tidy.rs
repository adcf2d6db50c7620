//! The architecture test (like rust-analyzer's tidy tests): the layers ARCHITECTURE.md
//! writes down for a crate hold in its code, and no source file passes 1,000 lines.
//!
//! A crate's layers are the numbered list after "Layers, lowest first" in its section of
//! ARCHITECTURE.md; each item names modules in backticks before its " — ": top-level ones
//! (`state`), or modules inside a folder that groups them by concern (`net::conn`), which
//! then count as modules of their own. A module may import (`crate::…`, or `super::…`
//! between the modules of one folder) from a layer below its own, or from its own layer
//! without a cycle; never from above. Every module of a layered crate must be in the list,
//! so the map and the code cannot drift apart; a grouping folder's `mod.rs` only declares
//! its modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest source file, in lines, its tests aside.
const MAX_LINES: usize = 1000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A file's code before its `#[cfg(test)]` module.
fn code_of(text: &str) -> &str {
    text.find("\n#[cfg(test)]").map_or(text, |i| &text[..i])
}

/// The module path of a file of `src`: `net/conn.rs` is `["net", "conn"]`, `net/mod.rs`
/// is `["net"]`, `lib.rs` is `["lib"]`.
fn path_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned()
        })
        .collect();
    if parts.len() > 1 && parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The longest of `names` that `path` starts with (`net::conn` for `net::conn::Shared`
/// when `net::conn` is a module), else its first segment.
fn resolve(path: &[String], names: &BTreeSet<String>) -> String {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|p| names.contains(p))
        .unwrap_or_else(|| path[0].clone())
}

/// The module a file of `src` belongs to, given the modules the map declares: the
/// longest declared prefix of its path, else its top-level module (`lib`/`main` for the
/// crate root).
fn module_of(src: &Path, file: &Path, declared: &BTreeSet<String>) -> String {
    resolve(&path_of(src, file), declared)
}

/// The paths a piece of code imports with `crate::` (comments aside), braces expanded:
/// `use crate::{a, b::{c, d}}` imports `a`, `b::c`, `b::d`. With `parent` (the file's
/// folder, for a module inside one), `super::x` imports `parent::x`.
fn crate_imports(code: &str, parent: Option<&[String]>) -> BTreeSet<Vec<String>> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut roots: Vec<(&str, Vec<String>)> = vec![("crate::", Vec::new())];
    if let Some(parent) = parent {
        roots.push(("super::", parent.to_vec()));
    }
    for (root, prefix) in roots {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(root) {
            // `a_crate::` or `self.super::` are not paths from this crate's root.
            let before = rest[..i].chars().next_back();
            let after = &rest[i + root.len()..];
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                use_tree(after, &prefix, &mut out);
            }
            rest = after;
        }
    }
    out
}

/// Reads one use tree at the start of `s` (segments, then perhaps a braced group of
/// trees), adding each full path under `prefix` to `out`; returns what follows it.
fn use_tree<'s>(s: &'s str, prefix: &[String], out: &mut BTreeSet<Vec<String>>) -> &'s str {
    let mut path = prefix.to_vec();
    let mut s = s.trim_start();
    loop {
        let ident: String = s
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            if let Some(group) = s.strip_prefix('{') {
                let mut g = group;
                loop {
                    g = use_tree(g, &path, out).trim_start();
                    match g.chars().next() {
                        Some(',') => g = &g[1..],
                        Some('}') => return &g[1..],
                        _ => return g,
                    }
                    if let Some(end) = g.trim_start().strip_prefix('}') {
                        return end;
                    }
                }
            }
            break;
        }
        s = &s[ident.len()..];
        path.push(ident);
        match s.strip_prefix("::") {
            Some(more) => s = more,
            None => break,
        }
    }
    if path.len() > prefix.len() {
        out.insert(path);
    }
    s
}

/// The layers ARCHITECTURE.md declares for `crate_name` (None: none declared).
fn declared_layers(map: &str, crate_name: &str) -> Option<Vec<Vec<String>>> {
    let heading = format!("## `crates/{crate_name}`");
    let start = map.find(&heading)? + heading.len();
    let section = &map[start..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let list = &section[section.find("Layers, lowest first")?..];
    let mut layers = Vec::new();
    let mut in_list = false;
    for line in list.lines().skip(1) {
        let trimmed = line.trim_start();
        let numbered = trimmed
            .split_once(". ")
            .filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        match numbered {
            Some((_, item)) => {
                in_list = true;
                let names = item.split(" — ").next().unwrap_or("");
                layers.push(
                    names
                        .split('`')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_owned)
                        .collect(),
                );
            }
            // A blank line ends the list; an indented line continues an item.
            None if in_list && line.is_empty() => break,
            None if in_list && line.starts_with("   ") => {}
            None if in_list => break,
            None => {}
        }
    }
    Some(layers)
}

/// Problems of one crate against its declared layers.
fn layer_problems(crate_name: &str, src: &Path, layers: &[Vec<String>]) -> Vec<String> {
    let mut level: BTreeMap<String, usize> = BTreeMap::new();
    for (i, layer) in layers.iter().enumerate() {
        for m in layer {
            level.insert(m.clone(), i);
        }
    }
    let roots = ["lib", "main"];
    let declared: BTreeSet<String> = level.keys().cloned().collect();
    let mut problems = Vec::new();
    let mut modules = BTreeSet::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let known = modules_of(src, &declared);
    // Folders that only group declared modules (`net` for `net::conn`).
    let groups: BTreeSet<String> = known
        .iter()
        .filter(|m| !declared.contains(*m))
        .filter(|m| declared.iter().any(|d| d.starts_with(&format!("{m}::"))))
        .cloned()
        .collect();
    for file in rust_files(src) {
        let module = module_of(src, &file, &declared);
        modules.insert(module.clone());
        let text = std::fs::read_to_string(&file).unwrap();
        let path = path_of(src, &file);
        // `super::` inside a grouped module names its siblings.
        let parent = (module.contains("::") && path.len() > 1).then(|| &path[..path.len() - 1]);
        for import in crate_imports(code_of(&text), parent) {
            // A path that is no module is the crate root's own item.
            let first = resolve(&import, &known);
            let target = if known.contains(&first) {
                first
            } else {
                "lib".to_owned()
            };
            if target == module {
                continue;
            }
            if groups.contains(&module) {
                problems.push(format!(
                    "{crate_name}: `{module}` groups modules and imports `crate::{target}`: a grouping folder's mod.rs only declares its modules"
                ));
                continue;
            }
            edges
                .entry(module.clone())
                .or_default()
                .insert(target.clone());
            if roots.contains(&module.as_str()) {
                continue;
            }
            let (Some(&from), Some(&to)) = (level.get(&module), level.get(&target)) else {
                if roots.contains(&target.as_str()) {
                    problems.push(format!(
                        "{crate_name}: `{module}` imports the crate root (`crate::…` item of lib.rs/main.rs), which is above every layer"
                    ));
                }
                continue;
            };
            if to > from {
                problems.push(format!(
                    "{crate_name}: `{module}` (layer {}) imports `crate::{target}` (layer {}), a layer above it",
                    from + 1,
                    to + 1
                ));
            }
        }
    }
    for m in &modules {
        if !roots.contains(&m.as_str()) && !level.contains_key(m) && !groups.contains(m) {
            problems.push(format!(
                "{crate_name}: module `{m}` is in no layer of ARCHITECTURE.md"
            ));
        }
    }
    for m in level.keys() {
        if !modules.contains(m) {
            problems.push(format!(
                "{crate_name}: ARCHITECTURE.md names `{m}`, which is no module of the crate"
            ));
        }
    }
    // Cycles among the modules of one layer.
    for layer in layers {
        let inside: BTreeSet<&String> = layer.iter().collect();
        for start in layer {
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((at, path)) = stack.pop() {
                for next in edges.get(&at).into_iter().flatten() {
                    if !inside.contains(next) {
                        continue;
                    }
                    if next == start {
                        problems.push(format!(
                            "{crate_name}: a cycle: {} → {start}",
                            path.join(" → ")
                        ));
                    } else if seen.insert(next.clone()) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push((next.clone(), p));
                    }
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

/// The module names of a crate's `src`, given the modules the map declares.
fn modules_of(src: &Path, declared: &BTreeSet<String>) -> BTreeSet<String> {
    rust_files(src)
        .iter()
        .map(|f| module_of(src, f, declared))
        .collect()
}

const CRATES: [&str; 6] = [
    "linksnap-capture",
    "linksnap-browser",
    "linksnap-store",
    "linksnap-mail",
    "linksnap-server",
    "linksnap",
];

#[test]
fn every_declared_layer_holds_and_no_file_passes_a_thousand_lines() {
    let map = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    let mut problems = Vec::new();
    let mut layered = Vec::new();
    for crate_name in CRATES {
        if let Some(layers) = declared_layers(&map, crate_name) {
            assert!(
                layers.len() >= 2 && layers.iter().all(|l| !l.is_empty()),
                "{crate_name}: ARCHITECTURE.md's layer list did not parse: {layers:?}"
            );
            layered.push(crate_name);
            let src = workspace().join("crates").join(crate_name).join("src");
            problems.extend(layer_problems(crate_name, &src, &layers));
        }
        let src = workspace().join("crates").join(crate_name).join("src");
        for file in rust_files(&src) {
            let text = std::fs::read_to_string(&file).unwrap();
            let lines = code_of(&text).lines().count();
            if lines > MAX_LINES {
                problems.push(format!(
                    "{}: {lines} lines before its tests (at most {MAX_LINES}): split it by responsibility",
                    file.strip_prefix(workspace()).unwrap_or(&file).display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every crate's layers are written down.
    assert_eq!(layered, CRATES);
}

#[test]
fn the_checker_finds_an_import_from_above_a_cycle_and_an_unmapped_module() {
    let paths = |list: &[&str]| -> BTreeSet<Vec<String>> {
        list.iter()
            .map(|p| p.split("::").map(str::to_owned).collect())
            .collect()
    };
    assert_eq!(
        crate_imports(
            "use crate::a::B;\nuse crate::{c, d::{E, f::G}};\n/// see `crate::z`\nlet x = crate::f(1); other_crate::y();",
            None
        ),
        paths(&["a::B", "c", "d::E", "d::f::G", "f"])
    );
    assert_eq!(
        crate_imports("use super::conn::Shared;", Some(&["net".to_owned()])),
        paths(&["net::conn::Shared"])
    );
    let map = "## `crates/x`\n\nLayers, lowest first (…):\n\n1. `a`, `b` — leaves.\n2. `c` — top,\n   over them.\n\nThe modules:\n";
    assert_eq!(
        declared_layers(map, "x").unwrap(),
        vec![vec!["a".to_owned(), "b".to_owned()], vec!["c".to_owned()]]
    );
    assert_eq!(declared_layers(map, "y"), None);
    // A crate made for the test: `a` and `b` import each other inside layer 1, `a`
    // imports `c` of layer 2 above it, `d` is on no layer, `e` is named but absent.
    let src = crate::support::artifact_dir("tidy-crate");
    for (file, code) in [
        ("lib.rs", "mod a; mod b; mod c; mod d;"),
        ("a.rs", "use crate::b::X;\nfn f() { crate::c::g(); }"),
        ("b.rs", "use crate::{a::Y, lib_item};"),
        ("c.rs", "pub fn g() {}"),
        (
            "d.rs",
            "pub fn h() {}\n#[cfg(test)]\nmod tests { use crate::c::g; }",
        ),
    ] {
        std::fs::write(src.join(file), code).unwrap();
    }
    let layers = vec![
        vec!["a".to_owned(), "b".to_owned()],
        vec!["c".to_owned(), "e".to_owned()],
    ];
    let problems = layer_problems("x", &src, &layers);
    let expect = [
        "x: `a` (layer 1) imports `crate::c` (layer 2), a layer above it",
        "x: a cycle: a → b → a",
        "x: module `d` is in no layer of ARCHITECTURE.md",
        "x: ARCHITECTURE.md names `e`, which is no module of the crate",
        "x: `b` imports the crate root (`crate::…` item of lib.rs/main.rs), which is above every layer",
    ];
    for e in expect {
        assert!(
            problems.iter().any(|p| p == e),
            "missing `{e}` in {problems:#?}"
        );
    }
    // The right map passes (a test module's imports do not count).
    let lower = vec!["c".to_owned(), "d".to_owned()];
    std::fs::write(src.join("b.rs"), "pub struct X;").unwrap();
    std::fs::write(
        src.join("a.rs"),
        "use crate::b::X;\nfn f() { crate::c::g(); }",
    )
    .unwrap();
    let problems = layer_problems("x", &src, &[lower, vec!["a".to_owned(), "b".to_owned()]]);
    assert!(problems.is_empty(), "{problems:#?}");

    // Modules inside a grouping folder count as modules of their own: `n::low` may not
    // reach `n::high` above it, whether through `crate::` or `super::`, and the folder's
    // mod.rs may not import.
    std::fs::create_dir_all(src.join("n")).unwrap();
    std::fs::write(src.join("n/mod.rs"), "pub mod high; pub mod low;").unwrap();
    std::fs::write(src.join("n/low.rs"), "use super::high::H;").unwrap();
    std::fs::write(src.join("n/high.rs"), "use crate::n::low::L;").unwrap();
    let nested = vec![
        vec!["c".to_owned(), "d".to_owned(), "n::low".to_owned()],
        vec!["a".to_owned(), "b".to_owned(), "n::high".to_owned()],
    ];
    let problems = layer_problems("x", &src, &nested);
    assert_eq!(
        problems,
        ["x: `n::low` (layer 1) imports `crate::n::high` (layer 2), a layer above it"],
        "{problems:#?}"
    );
    std::fs::write(src.join("n/low.rs"), "pub struct L;").unwrap();
    std::fs::write(
        src.join("n/mod.rs"),
        "pub mod high; pub mod low; use crate::c::g;",
    )
    .unwrap();
    let problems = layer_problems("x", &src, &nested);
    assert_eq!(
        problems,
        [
            "x: `n` groups modules and imports `crate::c`: a grouping folder's mod.rs only declares its modules"
        ],
        "{problems:#?}"
    );
}
