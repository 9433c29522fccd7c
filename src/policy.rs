//! Route scope rules: every scope in `scopes` and, when `any_scopes` is
//! set, at least one of those. Exact, case-sensitive comparison (RFC 6749
//! section 3.3). Checked on every request, also for cached identities.
//! Pure functions.

use crate::config::RouteConfig;

/// Whether `granted` satisfies the route's scope rules.
pub fn allows(route: &RouteConfig, granted: &[String]) -> bool {
    let has = |s: &String| granted.iter().any(|g| g == s);
    route.scopes.iter().all(has)
        && (route.any_scopes.is_empty() || route.any_scopes.iter().any(has))
}

/// The `scope` value of the route's 403 challenge: the scopes it requires,
/// then the alternatives of `any_scopes`.
pub fn challenge(route: &RouteConfig) -> String {
    route
        .scopes
        .iter()
        .chain(&route.any_scopes)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn route(rules: &str) -> RouteConfig {
        let text = format!("[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n[[routes]]\npath = \"/\"\nupstream = \"a\"\n{rules}\n");
        Config::from_toml(&text, Path::new("."), Vec::new())
            .unwrap()
            .routes
            .remove(0)
    }

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allows_table() {
        let cases = [
            ("", vec![], true),
            ("scopes = [\"a\"]", vec!["a"], true),
            ("scopes = [\"a\"]", vec!["A"], false),
            ("scopes = [\"a\"]", vec!["ab"], false),
            ("scopes = [\"a\", \"b\"]", vec!["b", "a", "c"], true),
            ("scopes = [\"a\", \"b\"]", vec!["a"], false),
            ("any_scopes = [\"x\", \"y\"]", vec!["y"], true),
            ("any_scopes = [\"x\", \"y\"]", vec!["z"], false),
            ("scopes = [\"a\"]\nany_scopes = [\"x\"]", vec!["a"], false),
            (
                "scopes = [\"a\"]\nany_scopes = [\"x\"]",
                vec!["a", "x"],
                true,
            ),
        ];
        for (rules, granted, want) in cases {
            assert_eq!(
                allows(&route(rules), &s(&granted)),
                want,
                "{rules} / {granted:?}"
            );
        }
    }

    #[test]
    fn challenge_lists_required_then_alternatives() {
        assert_eq!(
            challenge(&route("scopes = [\"a\", \"b\"]\nany_scopes = [\"x\"]")),
            "a b x"
        );
        assert_eq!(challenge(&route("")), "");
    }
}
