//! `tokengate check` as tooling and users read it: the resolved
//! configuration with defaults, secrets masked, the route table, lint
//! warnings (which never change the exit code), "did you mean" for an
//! unknown key, and `--format json` for both outcomes.

use crate::common::{GatewayConfig, Issuer, Route};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

const SECRET: &str = "s3cret-value-4711";

fn config() -> String {
    let introspection = format!(
        "endpoint = \"https://idp.example.com/introspect\"\n\
         client_id = \"gateway\"\nclient_secret = \"{SECRET}\""
    );
    GatewayConfig::new()
        .server("listen = \"127.0.0.1:0\"")
        .issuer(
            Issuer::new("corp", "https://idp.example.com/")
                .jwks_uri("https://idp.example.com/jwks")
                .audiences(&["api"])
                .introspection(&introspection),
        )
        .issuer(
            Issuer::new("partner", "https://partner.example.com/")
                .discovery()
                .audiences(&["api"]),
        )
        .upstream("app", "http://127.0.0.1:9/base")
        .upstream("legacy", "http://127.0.0.1:10")
        .route(
            Route::new("/orders/**", "app")
                .host("api.example.com")
                .scopes(&["orders:read"])
                .any_scopes(&["staff", "support"])
                .issuers(&["corp"])
                .with("methods = [\"GET\", \"HEAD\"]")
                .with("case_sensitive = false"),
        )
        .route(
            Route::new("/orders/*", "app")
                .host("api.example.com")
                .issuers(&["corp"]),
        )
        .render()
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("tokengate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn check(text: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), text);
    Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(&path)
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check_ok(text_: &str) -> String {
    let out = check(text_, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    stdout
}

#[test]
fn check_prints_defaults_masked_secrets_and_the_route_table() {
    let stdout = check_ok(&config());
    assert!(!stdout.contains(SECRET), "secret printed: {stdout}");
    for part in [
        "client_secret = \"***\"",
        "client_id = \"gateway\"",
        // Defaults that the file does not set.
        "realm = \"tokengate\"",
        "max_token_bytes = 8192",
        "jwks_refresh_s = 300",
        "scope_claims = [\"scope\", \"scp\"]",
        "negative_cache_ttl_s = 5",
        "connect_timeout_ms = 2000",
        "strip_authorization = false",
        "# admin: not configured",
        // The route table.
        "[[routes]] # routes[0]\nhost = \"api.example.com\"\npath = \"/orders/**\"\n\
         methods = [\"GET\", \"HEAD\"]\nupstream = \"app\"\nauth = \"required\"\n\
         scopes = [\"orders:read\"]\nany_scopes = [\"staff\", \"support\"]\nissuers = [\"corp\"]\n",
        "case_sensitive = false",
        "[[routes]] # routes[1]",
        "# methods: not set: every method",
        "case_sensitive = true",
    ] {
        assert!(stdout.contains(part), "no {part:?} in:\n{stdout}");
    }
}

#[test]
fn check_warns_without_changing_the_exit_code() {
    let stdout = check_ok(&config());
    for warning in [
        "# warning: upstreams.legacy is not used by any route",
        "# warning: issuers.partner is not used: every route that checks tokens lists other issuers",
    ] {
        assert!(stdout.contains(warning), "no {warning:?} in:\n{stdout}");
    }
    // Every route public: each issuer has no route.
    let head = config().split_once("[[routes]]").unwrap().0.to_string();
    let public = format!(
        "{head}[[routes]]\npath = \"/**\"\nupstream = \"app\"\nauth = \"none\"\n\n\
         [[routes]]\npath = \"/x\"\nupstream = \"legacy\"\nauth = \"none\"\n"
    );
    let stdout = check_ok(&public);
    for name in ["corp", "partner"] {
        let warning =
            format!("# warning: issuers.{name} has no route: every route has auth = \"none\"");
        assert!(stdout.contains(&warning), "no {warning:?} in:\n{stdout}");
    }
    // The shadowed and fall-through warnings are still there.
    let more = format!(
        "{}\n[[routes]]\npath = \"/admin/**\"\nupstream = \"legacy\"\n\n\
         [[routes]]\npath = \"/admin/*\"\nupstream = \"legacy\"\n\n\
         [[routes]]\npath = \"/**\"\nupstream = \"legacy\"\nauth = \"none\"\n",
        config()
    );
    let stdout = check_ok(&more);
    assert!(
        stdout.contains("# warning: routes[3] is shadowed by routes[2] and never matches"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("# warning: routes[4] (/**, auth=none) catches requests that miss routes[2]"),
        "{stdout}"
    );
    assert!(!stdout.contains("upstreams.legacy is not used"), "{stdout}");
}

#[test]
fn check_unknown_key_suggests_the_nearest_known_key() {
    let cases = [
        (
            config().replace(
                "audiences = [\"api\"]\n\n[issuers.corp.intro",
                "audience = [\"api\"]\n\n[issuers.corp.intro",
            ),
            "issuers.corp.audience: unknown key; did you mean \"audiences\"?",
        ),
        (
            config().replace("listen =", "lisen ="),
            "server.lisen: unknown key; did you mean \"listen\"?",
        ),
        (
            config().replace("any_scopes =", "any_scope ="),
            // figment names array elements `routes.N`, as before.
            "routes.0.any_scope: unknown key; did you mean \"any_scopes\"?",
        ),
        (
            config().replace("[server]", "[servers]"),
            "servers: unknown key; did you mean \"server\"?",
        ),
    ];
    for (bad, want) in cases {
        let out = check(&bad, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.lines().any(|l| l == want),
            "no line {want:?} in:\n{stderr}"
        );
    }
    // Nothing close: no guess.
    let out = check(&config().replace("listen =", "completely_else ="), &[]);
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l == "server.completely_else: unknown key"),
        "{stderr}"
    );
}

#[test]
fn check_json_has_config_routes_and_warnings() {
    let out = check(&config(), &["--format", "json"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!stdout.contains(SECRET), "secret printed: {stdout}");
    let v: Value = serde_json::from_str(&stdout).expect("one JSON document");
    let corp = &v["config"]["issuers"]["corp"];
    assert_eq!(corp["introspection"]["client_secret"], "***");
    assert_eq!(corp["leeway_s"], 60);
    assert_eq!(v["config"]["server"]["listen"], "127.0.0.1:0");
    assert_eq!(
        v["config"]["upstreams"]["app"]["url"],
        "http://127.0.0.1:9/base"
    );
    assert_eq!(v["config"]["admin"], Value::Null);
    let route = &v["routes"][0];
    assert_eq!(route["path"], "/orders/**");
    assert_eq!(route["host"], "api.example.com");
    assert_eq!(route["auth"], "required");
    assert_eq!(route["methods"], serde_json::json!(["GET", "HEAD"]));
    assert_eq!(route["any_scopes"], serde_json::json!(["staff", "support"]));
    assert_eq!(route["case_sensitive"], false);
    assert_eq!(route["upstream"], "app");
    assert_eq!(v["routes"][1]["methods"], Value::Null);
    let kinds: Vec<&str> = v["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["unused_upstream", "unused_issuer"], "{stdout}");
}

#[test]
fn check_json_errors_exit_1() {
    let bad = config().replace("listen =", "lisen =").replace(
        "upstream = \"app\"\nscopes",
        "upstream = \"missing\"\nscopes",
    );
    let out = check(&bad, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(&text(&out.stdout)).expect("JSON errors");
    let errors = v["errors"].as_array().expect("errors");
    assert!(
        errors.iter().any(|e| e["key"] == "server.lisen"
            && e["reason"] == "unknown key; did you mean \"listen\"?"),
        "{v}"
    );
    // A semantic error (after the file parses) is reported the same way.
    let bad = config().replace(
        "upstream = \"app\"\nscopes",
        "upstream = \"missing\"\nscopes",
    );
    let out = check(&bad, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(&text(&out.stdout)).expect("JSON errors");
    assert_eq!(v["errors"][0]["key"], "routes[0].upstream", "{v}");
}

#[test]
fn check_makes_no_network_calls() {
    // Every issuer, key set, introspection endpoint and upstream points at a
    // listener that counts on connections: check must not make any.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let here = format!("http://{}", listener.local_addr().unwrap());
    let text_ = config()
        .replace("https://idp.example.com", &here)
        .replace("https://partner.example.com", &format!("{here}/partner"))
        .replace("http://127.0.0.1:9", &here)
        .replace("http://127.0.0.1:10", &here);
    let stdout = check_ok(&text_);
    assert!(stdout.contains(&here), "{stdout}");
    listener.set_nonblocking(true).unwrap();
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "check connected to the listener"
    );
}
