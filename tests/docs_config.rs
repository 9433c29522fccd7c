//! Keeps `docs/configuration.md` honest against the configuration schema.
//!
//! The page has one `## ` heading per table, naming it in code (`[server]`,
//! `[issuers.NAME]`, `[[routes]]`...),
//! and one table row per key: `| `key` | type | default | bound | meaning |`.
//! These tests read those rows and the serde mirror in `src/config/raw.rs`
//! and check that
//! - every key of every `Raw*` struct is documented in its table (so a key
//!   added to the schema without documentation fails here);
//! - every documented key is accepted by the loader, with the documented
//!   type, in the documented table;
//! - every default written as a TOML value is the built-in default: a
//!   configuration that spells it out resolves exactly like one that omits it.

use figment::providers::{Format, Toml};
use figment::Figment;
use std::collections::BTreeMap;
use std::path::Path;
use tokengate::config::{Config, ConfigErrors};

const DOC: &str = include_str!("../docs/configuration.md");
const RAW: &str = include_str!("../src/config/raw.rs");

/// One documented key.
#[derive(Debug)]
struct Row {
    /// The section heading as written, e.g. `[issuers.NAME.introspection]`.
    header: String,
    /// The table's path without names, e.g. `issuers.introspection`.
    path: String,
    key: String,
    ty: String,
    default: String,
}

/// `[issuers.NAME.introspection]` → `issuers.introspection`.
fn table_path(header: &str) -> String {
    header
        .trim_matches(|c| c == '[' || c == ']')
        .split('.')
        .filter(|part| *part != "NAME")
        .collect::<Vec<_>>()
        .join(".")
}

fn doc_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let mut header: Option<String> = None;
    for line in DOC.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            header = heading
                .strip_prefix('`')
                .and_then(|h| h.strip_suffix('`'))
                .filter(|h| h.starts_with('['))
                .map(String::from);
            continue;
        }
        let (Some(header), Some(rest)) = (&header, line.strip_prefix("| `")) else {
            continue;
        };
        let cells: Vec<&str> = rest.split('|').map(str::trim).collect();
        assert!(cells.len() >= 5, "a key row needs five cells: {line}");
        let key = cells[0].trim_end_matches('`');
        rows.push(Row {
            header: header.clone(),
            path: table_path(header),
            key: key.to_string(),
            ty: cells[1].to_string(),
            default: cells[2].to_string(),
        });
    }
    rows
}

/// Struct name → its `pub` fields with their types, from `raw.rs`.
fn raw_structs() -> BTreeMap<String, Vec<(String, String)>> {
    let mut structs = BTreeMap::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    for line in RAW.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.trim_end_matches('{').trim().to_string();
            current = Some((name, Vec::new()));
        } else if line == "}" {
            if let Some((name, fields)) = current.take() {
                structs.insert(name, fields);
            }
        } else if let (Some((_, fields)), Some(field)) = (&mut current, line.strip_prefix("pub ")) {
            let (name, ty) = field.split_once(':').expect("a field with a type");
            fields.push((
                name.trim().to_string(),
                ty.trim().trim_end_matches(',').to_string(),
            ));
        }
    }
    structs
}

/// The `Raw*` struct a field's type holds, if any (`Option<RawAdmin>`,
/// `BTreeMap<String, RawIssuer>`, `Vec<RawRoute>`...).
fn nested_struct(ty: &str) -> Option<String> {
    let start = ty.find("Raw")?;
    Some(
        ty[start..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect(),
    )
}

/// Every `Raw*` struct with the table path it is read from (`RawConfig` is
/// the file itself, path "").
fn struct_paths(structs: &BTreeMap<String, Vec<(String, String)>>) -> BTreeMap<String, String> {
    let mut paths = BTreeMap::from([("RawConfig".to_string(), String::new())]);
    let mut todo = vec!["RawConfig".to_string()];
    while let Some(name) = todo.pop() {
        let parent = paths[&name].clone();
        for (field, ty) in &structs[&name] {
            if let Some(child) = nested_struct(ty) {
                let path = if parent.is_empty() {
                    field.clone()
                } else {
                    format!("{parent}.{field}")
                };
                paths.insert(child.clone(), path);
                todo.push(child);
            }
        }
    }
    paths
}

/// A valid configuration with every table present; each documented key is
/// tried in it, one at a time.
fn base() -> Vec<(&'static str, Vec<(String, String)>)> {
    let kv = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    vec![
        ("[server]", vec![]),
        ("[admin]", vec![]),
        (
            "[issuers.corp]",
            kv(&[
                ("issuer", "\"https://idp.example.com/\""),
                ("jwks_uri", "\"https://idp.example.com/jwks\""),
                ("audiences", "[\"api\"]"),
            ]),
        ),
        (
            "[issuers.corp.introspection]",
            kv(&[
                ("endpoint", "\"https://idp.example.com/introspect\""),
                ("client_id", "\"tokengate\""),
                ("client_secret", "\"secret\""),
            ]),
        ),
        (
            "[upstreams.orders]",
            kv(&[("url", "\"http://127.0.0.1:8081\"")]),
        ),
        (
            "[upstreams.orders.oauth]",
            kv(&[
                ("grant", "\"client_credentials\""),
                ("token_endpoint", "\"https://idp.example.com/token\""),
                ("client_id", "\"tokengate\""),
                ("client_secret", "\"secret\""),
            ]),
        ),
        ("[forward]", vec![]),
        ("[dpop]", vec![]),
        ("[redis]", kv(&[("url", "\"redis://127.0.0.1:6379/0\"")])),
        ("[revocation]", vec![]),
        ("[tracing]", vec![]),
        (
            "[rate_limits.per_client]",
            kv(&[
                ("key", "\"client_id\""),
                ("requests", "100"),
                ("window_s", "60"),
            ]),
        ),
        (
            "[resources.api]",
            kv(&[("resource", "\"https://api.example.com\"")]),
        ),
        (
            "[[routes]]",
            kv(&[("path", "\"/orders/**\""), ("upstream", "\"orders\"")]),
        ),
    ]
}

/// The base configuration's header for a documented section.
fn base_header(doc_header: &str) -> String {
    doc_header
        .replace("issuers.NAME", "issuers.corp")
        .replace("upstreams.NAME", "upstreams.orders")
        .replace("resources.NAME", "resources.api")
        .replace("rate_limits.NAME", "rate_limits.per_client")
}

/// The base configuration with `key = value` set in `header`.
fn config_text(set: Option<(&str, &str, &str)>) -> String {
    let mut tables = base();
    if let Some((header, key, value)) = set {
        let header = base_header(header);
        let (_, pairs) = tables
            .iter_mut()
            .find(|(h, _)| *h == header)
            .unwrap_or_else(|| panic!("docs_config.rs has no base table for {header}"));
        pairs.retain(|(k, _)| k != key);
        pairs.push((key.to_string(), value.to_string()));
    }
    let mut text = String::new();
    for (header, pairs) in tables {
        text.push_str(header);
        text.push('\n');
        for (k, v) in pairs {
            text.push_str(&format!("{k} = {v}\n"));
        }
    }
    text
}

fn load(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_toml(text, Path::new("."), Vec::new())
}

/// The default cell as a TOML value, when it is written as one.
fn literal_default(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    if inner.contains('`') {
        return None;
    }
    Figment::from(Toml::string(&format!("v = {inner}")))
        .extract_inner::<figment::value::Value>("v")
        .ok()
        .map(|_| inner)
}

/// A value of the documented type, for keys without a literal default.
fn placeholder(ty: &str) -> &'static str {
    match ty {
        "string" => "\"x\"",
        "integer" => "1",
        "boolean" => "true",
        "list of strings" => "[\"x\"]",
        "table of strings" => "{ x = \"y\" }",
        other => panic!("docs/configuration.md uses an unknown type {other:?}"),
    }
}

#[test]
fn every_schema_key_is_documented() {
    let structs = raw_structs();
    let paths = struct_paths(&structs);
    for name in structs.keys() {
        assert!(
            paths.contains_key(name),
            "{name} in raw.rs is not reachable from RawConfig"
        );
    }
    let rows = doc_rows();
    let sections: Vec<String> = rows.iter().map(|r| r.path.clone()).collect();
    for (name, path) in &paths {
        for (field, ty) in &structs[name] {
            let key = if path.is_empty() {
                field.clone()
            } else {
                format!("{path}.{field}")
            };
            if nested_struct(ty).is_some() {
                assert!(
                    sections.contains(&key),
                    "docs/configuration.md has no section for the table {key}"
                );
            } else {
                assert!(
                    rows.iter().any(|r| r.path == *path && r.key == *field),
                    "docs/configuration.md does not document {key} (in raw.rs)"
                );
            }
        }
    }
}

#[test]
fn every_documented_key_is_accepted_with_its_type() {
    load(&config_text(None)).expect("the base configuration is valid");
    // The check below relies on this wording: make sure it still holds.
    let typo = load(&config_text(Some(("[server]", "no_such_key", "1"))))
        .expect_err("an unknown key is an error");
    assert!(typo.0.iter().any(|e| e.reason == "unknown key"), "{typo}");

    let rows = doc_rows();
    assert!(rows.len() > 50, "too few key rows found: {}", rows.len());
    for row in rows.iter().filter(|r| r.ty != "table") {
        let value = literal_default(&row.default).unwrap_or_else(|| placeholder(&row.ty));
        let text = config_text(Some((&row.header, &row.key, value)));
        if let Err(errors) = load(&text) {
            for e in &errors.0 {
                assert!(
                    e.reason != "unknown key" && !e.reason.contains("invalid type"),
                    "{} {} = {value}: {e}",
                    row.header,
                    row.key
                );
            }
        }
    }
}

#[test]
fn every_documented_default_is_the_built_in_one() {
    let implicit = format!("{:?}", load(&config_text(None)).expect("valid base"));
    let mut compared = 0;
    for row in doc_rows() {
        let Some(value) = literal_default(&row.default) else {
            continue;
        };
        let text = config_text(Some((&row.header, &row.key, value)));
        let explicit = load(&text)
            .unwrap_or_else(|e| panic!("{} {} = {value} is refused: {e}", row.header, row.key));
        assert_eq!(
            format!("{explicit:?}"),
            implicit,
            "{} {}: the documented default {value} is not the built-in one",
            row.header,
            row.key
        );
        compared += 1;
    }
    assert!(compared > 40, "too few defaults compared: {compared}");
}
