//! The configuration of sender-constrained tokens refuses what cannot
//! work, naming the key (docs/configuration.md `[dpop]`, `[server]`
//! `tls_client_auth` / `tls_client_ca` / `client_cert_header`, `[[routes]]`
//! `token_binding`): through `Config::from_toml`, and as a user sees it
//! from `tokengate check`.

use super::*;
use std::process::Command;
use tokengate::config::Config;

const BASE: &str = "[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n\
    [issuers.corp]\nissuer = \"https://idp.example.com/\"\n\
    jwks_uri = \"https://idp.example.com/jwks\"\naudiences = [\"api\"]\n";

/// A route on `/x` with these lines.
fn route(lines: &str) -> String {
    format!("[[routes]]\npath = \"/x\"\nupstream = \"a\"\n{lines}\n")
}

/// `[server]` with TLS from `pki`'s files, and these lines.
fn tls_server(lines: &str) -> String {
    format!("[server]\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n{lines}\n")
}

/// The errors of loading `toml` (relative paths resolved in `dir`).
fn errors(toml: &str, dir: &Path) -> Vec<(String, String)> {
    let text = format!("{BASE}{toml}");
    match Config::from_toml(&text, dir, Vec::new()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(errors) => errors.0.into_iter().map(|e| (e.key, e.reason)).collect(),
    }
}

#[test]
fn refusals_name_the_key() {
    let pki = Pki::generate();
    let dir = pki.dir();
    let cases = [
        (
            "token_binding dpop without [dpop]".to_string(),
            route("token_binding = \"dpop\""),
            "routes[0].token_binding",
        ),
        (
            "an unknown token_binding".to_string(),
            route("token_binding = \"cert\""),
            "routes[0].token_binding",
        ),
        (
            "a binding on an auth = none route".to_string(),
            route("auth = \"none\"\ntoken_binding = \"mtls\""),
            "routes[0].token_binding",
        ),
        (
            "an HMAC DPoP algorithm".to_string(),
            "[dpop]\nalgorithms = [\"HS256\"]\n".to_string(),
            "dpop.algorithms[0]",
        ),
        (
            "DPoP alg none".to_string(),
            "[dpop]\nalgorithms = [\"ES256\", \"none\"]\n".to_string(),
            "dpop.algorithms[1]",
        ),
        (
            "no DPoP algorithm".to_string(),
            "[dpop]\nalgorithms = []\n".to_string(),
            "dpop.algorithms",
        ),
        (
            "tls_client_auth without TLS".to_string(),
            "[server]\ntls_client_auth = \"optional\"\n".to_string(),
            "server.tls_client_auth",
        ),
        (
            "tls_client_auth required".to_string(),
            tls_server("tls_client_auth = \"required\""),
            "server.tls_client_auth",
        ),
        (
            "tls_client_ca without optional".to_string(),
            tls_server("tls_client_ca = \"ca.pem\""),
            "server.tls_client_ca",
        ),
        (
            "client_cert_header Authorization".to_string(),
            "[server]\nclient_cert_header = \"Authorization\"\n".to_string(),
            "server.client_cert_header",
        ),
        (
            "client_cert_header DPoP".to_string(),
            "[server]\nclient_cert_header = \"DPoP\"\n".to_string(),
            "server.client_cert_header",
        ),
        (
            "client_cert_header not a header name".to_string(),
            "[server]\nclient_cert_header = \"Client Cert\"\n".to_string(),
            "server.client_cert_header",
        ),
    ];
    for (what, toml, key) in cases {
        let errors = errors(&toml, dir);
        assert!(
            errors.iter().any(|(k, _)| k == key),
            "{what}: expected an error at {key}, got {errors:?}"
        );
    }
}

#[test]
fn the_documented_tables_load() {
    let pki = Pki::generate();
    let dpop = "[dpop]\nalgorithms = [\"ES256\", \"EdDSA\", \"RS256\", \"PS256\"]\n\
        max_age_s = 300\nleeway_s = 5\nrequire_nonce = false\nnonce_ttl_s = 300\n\
        replay_cache_size = 100000\n";
    let server = tls_server(
        "tls_client_auth = \"optional\"\ntls_client_ca = \"ca.pem\"\n\
         client_cert_header = \"Client-Cert\"",
    );
    let toml = [
        BASE,
        &server,
        dpop,
        &route("token_binding = \"dpop\""),
        &route("token_binding = \"bound\"").replace("/x", "/y"),
    ]
    .concat();
    if let Err(e) = Config::from_toml(&toml, pki.dir(), Vec::new()) {
        panic!("refused:\n{e}\n---\n{toml}");
    }
}

#[test]
fn check_reports_the_key_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokengate.toml");
    let toml = format!(
        "{BASE}[dpop]\nalgorithms = [\"HS256\"]\n{}",
        route("token_binding = \"dpop\"")
    );
    std::fs::write(&path, toml).expect("write the config");
    let out = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tokengate check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("dpop.algorithms[0]: ")),
        "{stderr}"
    );
    assert!(stderr.contains("HS"), "the reason says why: {stderr}");

    let toml = format!("{BASE}[server]\ntls_client_auth = \"optional\"\n");
    std::fs::write(&path, toml).expect("write the config");
    let out = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tokengate check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("server.tls_client_auth: ")),
        "{stderr}"
    );
}

#[test]
fn unusable_tls_client_ca_is_reported_at_its_own_key() {
    let pki = Pki::generate();
    std::fs::write(pki.dir().join("not-a-ca.pem"), "not a PEM document\n").expect("write");
    let toml = [
        BASE,
        &tls_server("tls_client_auth = \"optional\"\ntls_client_ca = \"not-a-ca.pem\""),
        &route("auth = \"none\""),
    ]
    .concat();
    let path = pki.dir().join("tokengate.toml");
    std::fs::write(&path, toml).expect("write the config");
    let out = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tokengate check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("server.tls_client_ca: ")),
        "the error names server.tls_client_ca, not the server certificate:\n{stderr}"
    );
}
