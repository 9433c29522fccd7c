//! Table tests of loading and validation: every error names its key.

use super::*;
use std::path::Path;

const MINIMAL: &str = r#"
[upstreams.app]
url = "http://127.0.0.1:8081"

[[routes]]
path = "/**"
upstream = "app"
auth = "none"
"#;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_toml(text, Path::new("."), Vec::new())
}

fn load_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_toml(text, Path::new("."), env)
}

/// The keys named by the errors of `text`.
fn error_keys(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.into_iter().map(|e| e.key).collect(),
    }
}

const ISSUER: &str = r#"
[issuers.corp]
issuer = "https://idp.example.com/"
jwks_uri = "https://idp.example.com/jwks"
audiences = ["api"]
"#;

#[test]
fn load_minimal_applies_documented_defaults() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.server.realm, "tokengate");
    assert_eq!(c.server.max_header_bytes, 32768);
    assert_eq!(c.server.max_token_bytes, 8192);
    assert_eq!(c.server.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.server.worker_threads, None);
    assert!(c.admin.is_none());
    assert!(!c.server.allow_underscore_headers);
    assert_eq!(c.routes[0].auth, AuthMode::None);
    assert_eq!(c.upstreams[0].timeout, Duration::from_secs(30));
    assert_eq!(c.upstreams[0].connect_timeout, Duration::from_secs(2));
    assert_eq!(c.upstreams[0].max_connections, 1024);
    let claims: Vec<(&str, &str)> = c
        .forward
        .claims
        .iter()
        .map(|(k, h)| (k.as_str(), h.as_str()))
        .collect();
    assert_eq!(
        claims,
        vec![
            ("client_id", "x-auth-client-id"),
            ("scope", "x-auth-scope"),
            ("sub", "x-auth-subject")
        ]
    );
}

#[test]
fn load_issuer_defaults_match_the_contract() {
    let c = load(&format!("{MINIMAL}{ISSUER}")).unwrap();
    let i = &c.issuers[0];
    assert_eq!(i.name, "corp");
    let jwt = i.jwt.as_ref().expect("a key source");
    assert_eq!(
        jwt.algorithms,
        vec![
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::EdDSA
        ]
    );
    assert_eq!(i.leeway, Duration::from_secs(60));
    assert_eq!(jwt.profile, Profile::Generic);
    assert_eq!(i.scope_claims, vec!["scope", "scp"]);
    assert_eq!(jwt.jwks_refresh, Duration::from_secs(300));
    assert_eq!(jwt.jwks_miss_cooldown, Duration::from_secs(30));
    assert_eq!(jwt.jwks_max_stale, Duration::from_secs(86400));
    assert_eq!(jwt.jwks_timeout, Duration::from_millis(5000));
    assert!(matches!(&jwt.key_source, KeySource::Url(u) if u == "https://idp.example.com/jwks"));
    assert_eq!(
        c.routes[0].issuers,
        vec![0],
        "a route without `issuers` trusts every issuer"
    );
}

#[test]
fn load_route_case_sensitive_defaults_to_true() {
    let text = format!(
        "{MINIMAL}[[routes]]\npath = \"/Api/**\"\nupstream = \"app\"\ncase_sensitive = false\n"
    );
    let c = load(&text).unwrap();
    assert!(c.routes[0].case_sensitive, "the default is the contract");
    assert!(!c.routes[1].case_sensitive);
    assert_eq!(
        c.routes[1].path.as_str(),
        "/Api/**",
        "the pattern is kept as written"
    );
}

#[test]
fn load_example_file_is_valid() {
    let c = Config::load_with_env(Path::new("config/tokengate.example.toml"), Vec::new()).unwrap();
    assert_eq!(c.routes.len(), 3);
    assert_eq!(
        c.issuers[0].introspection.as_ref().unwrap().client_id,
        "tokengate"
    );
    assert_eq!(c.routes[1].host.as_deref(), Some("api.example.com"));
}

#[test]
fn load_demo_file_is_valid() {
    assert!(Config::load_with_env(Path::new("config/demo.toml"), Vec::new()).is_ok());
}

#[test]
fn load_errors_name_the_key() {
    let cases: Vec<(String, &str)> = vec![
        (format!("{MINIMAL}[server]\nlistn = \"x\"\n"), "server.listn"),
        (format!("typo = 1\n{MINIMAL}"), "typo"),
        (format!("{MINIMAL}[server]\nlisten = \"nowhere\"\n"), "server.listen"),
        (format!("{MINIMAL}[server]\nmax_connections = \"many\"\n"), "server.max_connections"),
        (format!("{MINIMAL}[server]\nidle_timeout_ms = 0\n"), "server.idle_timeout_ms"),
        (format!("{MINIMAL}[server]\nmax_header_bytes = 100\n"), "server.max_header_bytes"),
        (format!("{MINIMAL}[server]\ntls_cert = \"missing.pem\"\n"), "server.tls_key"),
        (format!("{MINIMAL}[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n"), "server.trusted_proxies[0]"),
        (format!("{MINIMAL}[server]\nrealm = 'a\"b'\n"), "server.realm"),
        (format!("{MINIMAL}[admin]\nlisten = \"localhost\"\n"), "admin.listen"),
        (format!("{MINIMAL}[upstreams.bad]\nurl = \"ftp://x\"\n"), "upstreams.bad.url"),
        (format!("{MINIMAL}[upstreams.bad]\n"), "upstreams.bad.url"),
        (format!("{MINIMAL}[upstreams.bad]\nurl = \"http://x\"\ntimeout_ms = 0\n"), "upstreams.bad.timeout_ms"),
        (format!("{MINIMAL}[upstreams.bad]\nurl = \"http://x\"\nmax_connections = 0\n"), "upstreams.bad.max_connections"),
        (format!("{MINIMAL}[forward]\nclaims = {{ sub = \"host\" }}\n"), "forward.claims.sub"),
        (format!("{MINIMAL}[forward]\nclaims = {{ sub = \"bad header\" }}\n"), "forward.claims.sub"),
        (format!("{ISSUER}{MINIMAL}[[routes]]\npath = \"/x\"\nupstream = \"nope\"\n"), "routes[1].upstream"),
        (format!("{ISSUER}{MINIMAL}[[routes]]\npath = \"/x\"\nupstream = \"app\"\nissuers = [\"nope\"]\n"), "routes[1].issuers"),
        (format!("{MINIMAL}[[routes]]\npath = \"x\"\nupstream = \"app\"\n"), "routes[1].path"),
        (format!("{MINIMAL}[[routes]]\npath = \"/a/**/b\"\nupstream = \"app\"\n"), "routes[1].path"),
        (format!("{MINIMAL}[[routes]]\npath = \"/x\"\nupstream = \"app\"\nauth = \"maybe\"\n"), "routes[1].auth"),
        (format!("{MINIMAL}[[routes]]\npath = \"/x\"\nupstream = \"app\"\nmethods = [\"get\"]\n"), "routes[1].methods"),
        (format!("{MINIMAL}[[routes]]\npath = \"/x\"\nupstream = \"app\"\nauth = \"none\"\nscopes = [\"a\"]\n"), "routes[1].auth"),
        (format!("{MINIMAL}[[routes]]\npath = \"/x\"\nupstream = \"app\"\nscopes = [\"a b\"]\n"), "routes[1].scopes"),
        (format!("{MINIMAL}[[routes]]\npath = \"/x\"\nupstream = \"app\"\nstrip_prefix = \"/x/\"\n"), "routes[1].strip_prefix"),
        (format!("{MINIMAL}[[routes]]\npath = \"/x\"\nupstream = \"app\"\nhost = \"a.example:80\"\n"), "routes[1].host"),
        (format!("{MINIMAL}[[routes]]\npath = \"/x\"\nupstream = \"app\"\nunknown = 1\n"), "routes.1.unknown"),
        (format!("{MINIMAL}[[routes]]\npath = \"/x\"\nupstream = \"app\"\ncase_sensitive = \"no\"\n"), "routes.1.case_sensitive"),
    ];
    for (text, key) in cases {
        let keys = error_keys(&text);
        assert!(
            keys.iter().any(|k| k == key),
            "expected an error for {key}, got {keys:?}\n{text}"
        );
    }
}

#[test]
fn load_issuer_errors_name_the_key() {
    let issuer = |body: &str| format!("{MINIMAL}[issuers.corp]\n{body}\n");
    let base = "issuer = \"https://idp/\"\naudiences = [\"api\"]\n";
    let cases = [
        (issuer("jwks_uri = \"https://idp/jwks\"\naudiences = [\"api\"]"), "issuers.corp.issuer"),
        (issuer(base), "issuers.corp.jwks_uri"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\ndiscovery = true")), "issuers.corp.jwks_uri"),
        (issuer(&format!("{base}jwks_uri = \"http://idp.example.com/jwks\"")), "issuers.corp.jwks_uri"),
        (issuer(&format!("{base}jwks_uri = \"not a url\"")), "issuers.corp.jwks_uri"),
        (issuer(&format!("{base}jwks_file = \"missing.json\"")), "issuers.corp.jwks_file"),
        (issuer("issuer = \"https://idp/\"\njwks_uri = \"https://idp/jwks\""), "issuers.corp.audiences"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\nalgorithms = [\"none\"]")), "issuers.corp.algorithms[0]"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\nalgorithms = [\"RS256\", \"HS256\"]")), "issuers.corp.algorithms[1]"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\nalgorithms = [\"rs256\"]")), "issuers.corp.algorithms[0]"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\nalgorithms = []")), "issuers.corp.algorithms"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\nleeway_s = 301")), "issuers.corp.leeway_s"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\nprofile = \"strict\"")), "issuers.corp.profile"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\njwks_refresh_s = 0")), "issuers.corp.jwks_refresh_s"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\nscope_claims = []")), "issuers.corp.scope_claims"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\n[issuers.corp.introspection]\nclient_id = \"a\"\nclient_secret = \"b\"")), "issuers.corp.introspection.endpoint"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\n[issuers.corp.introspection]\nendpoint = \"http://idp.example.com/i\"\nclient_id = \"a\"\nclient_secret = \"b\"")), "issuers.corp.introspection.endpoint"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\n[issuers.corp.introspection]\nendpoint = \"https://idp/i\"\nclient_secret = \"b\"")), "issuers.corp.introspection.client_id"),
        (issuer(&format!("{base}jwks_uri = \"https://idp/jwks\"\n[issuers.corp.introspection]\nendpoint = \"https://idp/i\"\nclient_id = \"a\"\nclient_secret = \"b\"\nauth_method = \"private_key_jwt\"")), "issuers.corp.introspection.auth_method"),
    ];
    for (text, key) in cases {
        let keys = error_keys(&text);
        assert!(
            keys.iter().any(|k| k == key),
            "expected an error for {key}, got {keys:?}\n{text}"
        );
    }
}

#[test]
fn load_loopback_http_key_sources_are_allowed() {
    for url in [
        "http://127.0.0.1:9000/jwks",
        "http://localhost/jwks",
        "http://[::1]:80/jwks",
        "http://127.9.9.9/jwks",
    ] {
        let text = format!(
            "{MINIMAL}[issuers.corp]\nissuer = \"x\"\naudiences = [\"a\"]\njwks_uri = \"{url}\"\n"
        );
        assert!(load(&text).is_ok(), "{url}");
    }
}

#[test]
fn load_discovery_url_is_derived_from_the_issuer() {
    let text = format!("{MINIMAL}[issuers.corp]\nissuer = \"https://idp.example.com/tenant/\"\naudiences = [\"a\"]\ndiscovery = true\n");
    let c = load(&text).unwrap();
    assert!(matches!(
        c.issuers[0].jwt.as_ref().map(|j| &j.key_source),
        Some(KeySource::Discovery(u)) if u == "https://idp.example.com/tenant/.well-known/openid-configuration"
    ));
}

#[test]
fn load_env_overrides_file_and_keeps_strings() {
    let text = format!(
        "{MINIMAL}{ISSUER}[issuers.corp.introspection]\nendpoint = \"https://idp.example.com/i\"\nclient_id = \"file\"\nclient_secret = \"file\"\n"
    );
    let c = load_env(
        &text,
        &[
            ("TOKENGATE_SERVER__LISTEN", "127.0.0.1:9000"),
            ("TOKENGATE_SERVER__MAX_CONNECTIONS", "5"),
            ("TOKENGATE_SERVER__ALLOW_UNDERSCORE_HEADERS", "true"),
            ("TOKENGATE_ISSUERS__CORP__INTROSPECTION__CLIENT_ID", "0123"),
            (
                "TOKENGATE_ISSUERS__CORP__INTROSPECTION__CLIENT_SECRET",
                "true",
            ),
            ("TOKENGATE_ISSUERS__CORP__AUDIENCES", "[\"a\", \"b\"]"),
            ("TOKENGATE_SERVER__REALM", "007"),
            ("OTHER_VARIABLE", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(c.server.max_connections, 5);
    assert!(c.server.allow_underscore_headers);
    let intro = c.issuers[0].introspection.as_ref().unwrap();
    assert_eq!(intro.client_id, "0123");
    assert_eq!(intro.client_secret.expose(), "true");
    assert_eq!(c.issuers[0].audiences, vec!["a", "b"]);
    assert_eq!(c.server.realm, "007");
}

#[test]
fn load_env_errors_name_the_key() {
    let err = load_env(MINIMAL, &[("TOKENGATE_SERVER__MAX_CONNECTIONS", "lots")]).unwrap_err();
    assert_eq!(err.0[0].key, "server.max_connections", "{err}");
    let err = load_env(MINIMAL, &[("TOKENGATE_SERVER__LISTN", "x")]).unwrap_err();
    assert_eq!(err.0[0].key, "server.listn", "{err}");
}

#[test]
fn load_file_type_errors_are_not_hidden_by_lossy_env_handling() {
    let err = load(&format!("{MINIMAL}[server]\nmax_connections = \"5\"\n")).unwrap_err();
    assert_eq!(err.0[0].key, "server.max_connections");
}

#[test]
fn secret_debug_is_redacted() {
    let s = Secret::new("hunter2".into());
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[test]
fn load_relative_paths_resolve_against_the_config_directory() {
    let dir = std::env::temp_dir().join(format!("tokengate-cfg-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("keys/jwks.json"), "{\"keys\":[]}").unwrap();
    let text = format!("{MINIMAL}[issuers.corp]\nissuer = \"x\"\naudiences = [\"a\"]\njwks_file = \"keys/jwks.json\"\n");
    std::fs::write(dir.join("gw.toml"), text).unwrap();
    let c = Config::load_with_env(&dir.join("gw.toml"), Vec::new()).unwrap();
    assert!(
        matches!(c.issuers[0].jwt.as_ref().map(|j| &j.key_source), Some(KeySource::File(p)) if p == &dir.join("keys/jwks.json"))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_issuer_settings_exist_only_for_the_mode_it_uses() {
    let intro = "[issuers.corp.introspection]\nendpoint = \"https://idp/i\"\nclient_id = \"a\"\nclient_secret = \"b\"\n";
    let base = "[issuers.corp]\nissuer = \"https://idp/\"\naudiences = [\"api\"]\n";
    let jwks = "jwks_uri = \"https://idp/jwks\"\n";
    let cases = [
        (format!("{base}{jwks}"), true, false),
        (format!("{base}{intro}"), false, true),
        (format!("{base}{jwks}{intro}"), true, true),
    ];
    for (issuer, jwt, introspection) in cases {
        let c = load(&format!("{MINIMAL}{issuer}")).unwrap();
        let i = &c.issuers[0];
        assert_eq!(i.jwt.is_some(), jwt, "{issuer}");
        assert_eq!(i.introspection.is_some(), introspection, "{issuer}");
    }
    let neither = load(&format!("{MINIMAL}{base}")).unwrap_err();
    assert_eq!(
        neither.0,
        vec![ConfigError::new(
            "issuers.corp.jwks_uri",
            "one key source is required: jwks_uri, jwks_file or discovery = true"
        )]
    );
}

#[test]
fn load_keyword_errors_name_the_key_and_the_allowed_values() {
    let issuer = |extra: &str| {
        format!("{MINIMAL}[issuers.corp]\nissuer = \"https://idp/\"\naudiences = [\"api\"]\njwks_uri = \"https://idp/jwks\"\n{extra}\n")
    };
    let route =
        |extra: &str| format!("{MINIMAL}[[routes]]\npath = \"/x\"\nupstream = \"app\"\n{extra}\n");
    let intro = |method: &str| {
        issuer(&format!("[issuers.corp.introspection]\nendpoint = \"https://idp/i\"\nclient_id = \"a\"\nclient_secret = \"b\"\nauth_method = \"{method}\""))
    };
    let cases = [
        (route("auth = \"maybe\""), "routes[1].auth", "\"maybe\" is not \"required\", \"optional\" or \"none\""),
        (MINIMAL.replace("8081\"\n", "8081\"\nprotocol = \"h3\"\n"), "upstreams.app.protocol", "\"h3\" is not \"http1\" or \"h2\""),
        (issuer("profile = \"strict\""), "issuers.corp.profile", "\"strict\" is not \"generic\" or \"rfc9068\""),
        (intro("private_key_jwt"), "issuers.corp.introspection.auth_method", "\"private_key_jwt\" is not client_secret_basic or client_secret_post"),
        (issuer("algorithms = [\"RS256\", \"HS256\"]"), "issuers.corp.algorithms[1]", "\"HS256\": symmetric (HS*) algorithms are never accepted"),
        (issuer("algorithms = [\"none\"]"), "issuers.corp.algorithms[0]", "\"none\" is never accepted"),
        (issuer("algorithms = [\"rs256\"]"), "issuers.corp.algorithms[0]", "\"rs256\" is not supported (supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"),
    ];
    for (text, key, reason) in cases {
        let errors = load(&text).unwrap_err().0;
        assert_eq!(errors, vec![ConfigError::new(key, reason)], "{text}");
    }
    // Every problem of the file is reported, a bad keyword among them.
    let both = route("auth = \"maybe\"\nscopes = [\"a b\"]");
    assert_eq!(error_keys(&both), ["routes[1].auth", "routes[1].scopes"]);
    // A keyword of the wrong type is a type error, as for any string key.
    let err = load(&route("auth = 5")).unwrap_err();
    assert_eq!(err.0[0].key, "routes.1.auth", "{err}");
    assert!(err.0[0].reason.contains("invalid type"), "{err}");
}

#[test]
fn load_keywords_from_the_environment() {
    let text = format!(
        "{MINIMAL}{ISSUER}[issuers.corp.introspection]\nendpoint = \"https://idp.example.com/i\"\nclient_id = \"a\"\nclient_secret = \"b\"\n"
    );
    let c = load_env(
        &text,
        &[
            ("TOKENGATE_ISSUERS__CORP__PROFILE", "rfc9068"),
            ("TOKENGATE_ISSUERS__CORP__ALGORITHMS", "[\"ES256\"]"),
            (
                "TOKENGATE_ISSUERS__CORP__INTROSPECTION__AUTH_METHOD",
                "client_secret_post",
            ),
        ],
    )
    .unwrap();
    let jwt = c.issuers[0].jwt.as_ref().unwrap();
    assert_eq!(jwt.profile, Profile::Rfc9068);
    assert_eq!(jwt.algorithms, vec![Algorithm::ES256]);
    assert_eq!(
        c.issuers[0].introspection.as_ref().unwrap().auth_method,
        ClientAuthMethod::ClientSecretPost
    );
    let err = load_env(&text, &[("TOKENGATE_ISSUERS__CORP__PROFILE", "strict")]).unwrap_err();
    assert_eq!(err.0[0].key, "issuers.corp.profile", "{err}");
}
