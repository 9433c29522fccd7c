//! [`Table`], the ordered key tree a report is made of, and the two forms
//! it is printed in: TOML (unset keys and warnings as comments, so the text
//! is itself a configuration) and JSON.

use serde_json::{json, Map, Value};
use std::fmt::Write;

use super::Report;

/// An ordered table of resolved keys (file order, not alphabetical).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table(pub Vec<(String, Item)>);

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Value(Value),
    Table(Table),
    /// A key that is not set, with what that means (`null` in JSON).
    Unset(&'static str),
}

impl Table {
    pub(super) fn with(mut self, key: &str, value: impl Into<Value>) -> Table {
        self.0.push((key.to_string(), Item::Value(value.into())));
        self
    }
    pub(super) fn with_table(mut self, key: &str, table: Table) -> Table {
        self.0.push((key.to_string(), Item::Table(table)));
        self
    }
    pub(super) fn with_unset(mut self, key: &str, meaning: &'static str) -> Table {
        self.0.push((key.to_string(), Item::Unset(meaning)));
        self
    }
    pub(super) fn with_option(
        self,
        key: &str,
        value: Option<Value>,
        meaning: &'static str,
    ) -> Table {
        match value {
            Some(v) => self.with(key, v),
            None => self.with_unset(key, meaning),
        }
    }

    /// The table as a JSON object (key order is lost).
    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> = self
            .0
            .iter()
            .map(|(k, item)| {
                let v = match item {
                    Item::Value(v) => v.clone(),
                    Item::Table(t) => t.to_json(),
                    Item::Unset(_) => Value::Null,
                };
                (k.clone(), v)
            })
            .collect();
        Value::Object(map)
    }
}

impl Report {
    /// TOML: the resolved configuration, each route headed by its index,
    /// then the warnings as `# warning: ...` comment lines.
    pub fn text(&self) -> String {
        let mut out =
            String::from("# Resolved configuration: every default filled in, secrets masked.\n");
        write_table(&mut out, "", &self.config);
        for (n, r) in self.routes.iter().enumerate() {
            let _ = writeln!(out, "\n[[routes]] # routes[{n}]");
            write_table(&mut out, "routes", r);
        }
        if !self.warnings.is_empty() {
            out.push('\n');
        }
        for w in &self.warnings {
            let _ = writeln!(out, "# warning: {}", w.message);
        }
        out
    }

    /// `{"config": {...}, "routes": [...], "warnings": [{"kind", "message"}]}`.
    pub fn json(&self) -> String {
        let warnings: Vec<Value> = self
            .warnings
            .iter()
            .map(|w| json!({ "kind": w.kind, "message": w.message }))
            .collect();
        json!({
            "config": self.config.to_json(),
            "routes": self.routes.iter().map(Table::to_json).collect::<Vec<_>>(),
            "warnings": warnings,
        })
        .to_string()
    }
}

/// A table's own keys first, then its subtables under `[prefix.key]`.
fn write_table(out: &mut String, prefix: &str, t: &Table) {
    for (k, item) in &t.0 {
        match item {
            Item::Value(v) => {
                let _ = writeln!(out, "{} = {}", toml_key(k), toml_value(v));
            }
            Item::Unset(meaning) => {
                let _ = writeln!(out, "# {k}: {meaning}");
            }
            Item::Table(_) => {}
        }
    }
    for (k, item) in &t.0 {
        if let Item::Table(sub) = item {
            let path = if prefix.is_empty() {
                toml_key(k)
            } else {
                format!("{prefix}.{}", toml_key(k))
            };
            if sub.0.iter().any(|(_, i)| !matches!(i, Item::Table(_))) {
                let _ = writeln!(out, "\n[{path}]");
            }
            write_table(out, &path, sub);
        }
    }
}

fn toml_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        k.to_string()
    } else {
        Value::from(k).to_string()
    }
}

/// JSON strings, numbers, booleans and arrays are TOML as written; objects
/// become inline tables.
fn toml_value(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v)))
                .collect();
            format!("{{ {} }}", inner.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_key_quotes_only_when_needed() {
        let cases = [
            ("corp", "corp"),
            ("a-b_9", "a-b_9"),
            ("a b", "\"a b\""),
            ("a.b", "\"a.b\""),
            ("", "\"\""),
        ];
        for (k, want) in cases {
            assert_eq!(toml_key(k), want);
        }
    }
}
