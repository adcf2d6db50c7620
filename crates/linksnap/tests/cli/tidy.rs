//! The architecture test (like rust-analyzer's tidy tests): the layers ARCHITECTURE.md
//! writes down for a crate hold in its code, and no source file passes 1,000 lines.
//!
//! A crate's layers are the numbered list after "Layers, lowest first" in its section of
//! ARCHITECTURE.md; each item names top-level modules in backticks before its " — ". A
//! module may import (`crate::name`) from a layer below its own, or from its own layer
//! without a cycle; never from above. Every module of a layered crate must be in the list,
//! so the map and the code cannot drift apart.

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

/// The top-level module a file of `src` belongs to (`lib`/`main` for the crate root).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level names a piece of code imports with `crate::` (comments aside).
fn crate_imports(code: &str) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let code = code.as_str();
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // `use crate::{a, b::c, d}`: each first segment.
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(after);
            if !name.is_empty() {
                out.insert(name);
            }
        }
        rest = after;
    }
    out
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
    let mut problems = Vec::new();
    let mut modules = BTreeSet::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let module = module_of(src, &file);
        modules.insert(module.clone());
        let text = std::fs::read_to_string(&file).unwrap();
        for name in crate_imports(code_of(&text)) {
            // A name that is not a module is the crate root's own item.
            let target = if modules_of(src).contains(&name) {
                name
            } else {
                "lib".to_owned()
            };
            if target == module {
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
        if !roots.contains(&m.as_str()) && !level.contains_key(m) {
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

/// The top-level module names of a crate's `src`.
fn modules_of(src: &Path) -> BTreeSet<String> {
    rust_files(src).iter().map(|f| module_of(src, f)).collect()
}

const CRATES: [&str; 5] = [
    "linksnap-capture",
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
    // The crates whose layers are written down (issue 19 adds the store).
    assert_eq!(
        layered,
        [
            "linksnap-capture",
            "linksnap-mail",
            "linksnap-server",
            "linksnap"
        ]
    );
}

#[test]
fn the_checker_finds_an_import_from_above_a_cycle_and_an_unmapped_module() {
    assert_eq!(
        crate_imports(
            "use crate::a::B;\nuse crate::{c, d::E};\n/// see `crate::z`\nlet x = crate::f(1);"
        ),
        ["a", "c", "d", "f"].map(str::to_owned).into()
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
}
