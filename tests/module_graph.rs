//! Dependencies between the library's modules point one way.
//!
//! Reads every file under `src/` (the library; `main.rs` is the binary and
//! uses the library from outside), collects the module paths each one names
//! through `crate::` and `super::` outside its `#[cfg(test)] mod tests`, and
//! fails if the graph has a circle. Edges are compared where two modules
//! part: `auth::keys → config::build` is an edge `auth → config` between
//! top-level modules, `config::build → config::issuers` one between the two
//! siblings inside `config`. A module naming its own parent or child is the
//! module tree, not a dependency, and is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

#[test]
fn module_graph_has_no_circles() {
    let sources = read_modules(Path::new(env!("CARGO_MANIFEST_DIR")).join("src").as_path());
    let known: BTreeSet<Module> = sources.keys().cloned().collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, text) in &sources {
        for path in references(&strip(text)) {
            let Some(target) = resolve(module, &path, &known) else {
                continue;
            };
            if let Some((from, to)) = parting(module, &target) {
                edges.entry(from).or_default().insert(to);
            }
        }
    }
    let circles = circles(&edges);
    assert!(
        circles.is_empty(),
        "import circles between modules:\n{}",
        circles
            .iter()
            .map(|c| c.join(" -> "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The walk must have seen the graph it guards, or the test would pass on nothing.
    assert!(
        edges.len() > 5,
        "too few modules with dependencies: {edges:?}"
    );
}

#[test]
fn module_graph_detects_a_circle() {
    let a: Module = vec!["a".into()];
    let b: Module = vec!["b".into()];
    let edges = BTreeMap::from([
        (a.clone(), BTreeSet::from([b.clone()])),
        (b.clone(), BTreeSet::from([a.clone()])),
    ]);
    assert_eq!(
        circles(&edges),
        vec![vec!["a".to_string(), "b".into(), "a".into()]]
    );
    let refs = references(&strip(
        "use crate::{auth::Principal, config::{self, X}};\n// crate::fake\nlet s = \"crate::str\"; super::sib::f();",
    ));
    let names: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(
        names,
        [
            "crate::auth::Principal",
            "crate::config::self",
            "crate::config::X",
            "super::sib::f"
        ]
    );
}

/// Module path → source text.
fn read_modules(src: &Path) -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            let last = parts.pop().expect("file name");
            match last.as_str() {
                "main" if parts.is_empty() => continue,
                "tests" => continue,
                "lib" if parts.is_empty() => {}
                "mod" => {}
                _ => parts.push(last),
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            out.insert(parts, text);
        }
    }
    out
}

/// The source without comments, string and char literals, and its unit tests.
fn strip(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += body
                + rest[body..]
                    .find(&close)
                    .map_or(rest.len() - body, |e| e + close.len());
        } else if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if rest.starts_with("'\\")
            || (rest.len() > 2 && rest.as_bytes()[2] == b'\'' && bytes[i] == b'\'')
        {
            // A char literal such as '"' or '\n'; lifetimes have no closing quote.
            let close = rest[1..].find('\'').map_or(1, |e| e + 2);
            i += close;
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Every `crate::…` and `super::…` path, with `{a, b::c}` groups expanded.
fn references(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for root in ["crate", "super"] {
        let needle = format!("{root}::");
        let mut at = 0;
        while let Some(found) = code[at..].find(&needle) {
            let start = at + found;
            at = start + needle.len();
            let before = code[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            paths(&code[at..], vec![root.to_string()], &mut out);
        }
    }
    out
}

/// Parses a path tail (`a::b`, `a::{b, c::d}`) after `prefix`, pushing each full path.
fn paths(rest: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    let mut i = 0;
    let b = rest.as_bytes();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'{' {
            i += 1;
            loop {
                i += paths(&rest[i..], path.clone(), out);
                while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    return i + 1;
                }
            }
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if i > start {
            path.push(rest[start..i].to_string());
        }
        if rest[i..].starts_with("::") {
            i += 2;
            continue;
        }
        out.push(path);
        return i;
    }
}

/// The module a path lands in: the longest prefix that is a known module.
fn resolve(from: &Module, path: &[String], known: &BTreeSet<Module>) -> Option<Module> {
    let mut base: Module = match path.first()?.as_str() {
        "crate" => Vec::new(),
        _ => {
            // `super` is the parent of the module, whether it lives in `x.rs` or `x/mod.rs`.
            let mut m = from.clone();
            m.pop();
            m
        }
    };
    let mut found = base.clone();
    for seg in &path[1..] {
        base.push(seg.clone());
        if known.contains(&base) {
            found = base.clone();
        } else {
            break;
        }
    }
    Some(found)
}

/// The two modules where `from` and `to` part, or `None` when one contains the other.
fn parting(from: &Module, to: &Module) -> Option<(Module, Module)> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    if common == from.len() || common == to.len() {
        return None;
    }
    Some((from[..=common].to_vec(), to[..=common].to_vec()))
}

/// Each circle found by a depth-first walk, as the module names around it.
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    fn walk(
        node: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        stack: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
        out: &mut Vec<Vec<String>>,
    ) {
        if let Some(at) = stack.iter().position(|m| m == node) {
            let mut circle: Vec<String> = stack[at..].iter().map(|m| m.join("::")).collect();
            circle.push(node.join("::"));
            out.push(circle);
            return;
        }
        if !done.insert(node.clone()) {
            return;
        }
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            walk(next, edges, stack, done, out);
        }
        stack.pop();
    }
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        walk(node, edges, &mut Vec::new(), &mut done, &mut out);
    }
    out
}
