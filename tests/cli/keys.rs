//! The key, token and certificate tools as a user runs them (the commands
//! of `docs/tls.md` and `docs/keys.md`): `jwks from-pem` builds the key set a
//! gateway loads, `token` mints what that gateway then accepts (and a key
//! outside the set does not), `dev-cert` writes what a TLS gateway serves
//! and a client trusting `ca.pem` accepts.

mod documented;

use crate::common;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use common::client::{send_on, tls_connect};
use common::{request, Gateway, GatewayConfig, Issuer, Route, Upstream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");
const ISS: &str = "https://dev.example.test/";
const AUD: &str = "https://api.example.test";

fn tokengate(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tokengate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `args`, asserting success; returns stdout.
fn ok(args: &[&str]) -> String {
    crate::assert_success(&tokengate(args), &format!("tokengate {args:?}"))
}

fn write_pem(dir: &Path, name: &str, label: &str, der: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem::encode(&pem::Pem::new(label, der.to_vec()))).expect("write PEM");
    path
}

fn p256_pkcs8() -> Vec<u8> {
    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .expect("P-256 key")
        .to_pkcs8v1()
        .expect("PKCS#8")
        .as_ref()
        .to_vec()
}

fn rsa_pkcs8() -> Vec<u8> {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA");
    let der: Pkcs8V1Der = pair.as_der().expect("PKCS#8");
    der.as_ref().to_vec()
}

fn ed25519_pkcs8() -> Vec<u8> {
    Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
        .expect("Ed25519")
        .as_ref()
        .to_vec()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// A gateway whose one issuer reads `jwks.json` from `dir`; `/api/**`
/// requires `orders:read`.
async fn gateway_with_key_file(dir: &Path, upstream: &Upstream) -> Gateway {
    let toml = GatewayConfig::new()
        .issuer(
            Issuer::new("dev", ISS)
                .jwks_file("jwks.json")
                .audiences(&[AUD])
                .with("profile = \"rfc9068\""),
        )
        .upstream("app", &upstream.url())
        .route(Route::new("/api/**", "app").scopes(&["orders:read"]))
        .render();
    Gateway::start_in(&toml, dir).await
}

async fn call(gw: &Gateway, token: &str) -> u16 {
    let mut req = request("GET", "/api/orders/1");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    gw.send(&common::Client::h1(), req).await.status.as_u16()
}

fn mint(key: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "token",
        "--key",
        path(key),
        "--iss",
        ISS,
        "--aud",
        AUD,
        "--sub",
        "alice",
        "--client-id",
        "cli",
        "--scope",
        "orders:read orders:write",
    ];
    args.extend_from_slice(extra);
    ok(&args).trim().to_string()
}

#[tokio::test]
async fn jwks_from_pem_and_token_work_end_to_end_and_other_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ec = write_pem(dir.path(), "ec.pem", "PRIVATE KEY", &p256_pkcs8());
    let rsa = write_pem(dir.path(), "rsa.pem", "PRIVATE KEY", &rsa_pkcs8());
    let ed = write_pem(dir.path(), "ed.pem", "PRIVATE KEY", &ed25519_pkcs8());
    let outsider = write_pem(dir.path(), "outsider.pem", "PRIVATE KEY", &p256_pkcs8());

    // The documented command: `tokengate jwks from-pem ... > jwks.json`.
    let set = ok(&["jwks", "from-pem", path(&ec), path(&rsa), path(&ed)]);
    let doc: serde_json::Value = serde_json::from_str(&set).expect("JSON on stdout");
    let keys = doc["keys"].as_array().expect("keys array");
    assert_eq!(keys.len(), 3, "{set}");
    for jwk in keys {
        assert!(jwk.get("d").is_none(), "private member printed: {jwk}");
        assert_eq!(jwk["use"], "sig");
    }
    let algs: Vec<&str> = keys.iter().filter_map(|k| k["alg"].as_str()).collect();
    assert_eq!(algs, ["ES256", "RS256", "EdDSA"]);
    std::fs::write(dir.path().join("jwks.json"), &set).expect("write jwks.json");

    let upstream = Upstream::echo().await;
    let gw = gateway_with_key_file(dir.path(), &upstream).await;
    for key in [&ec, &rsa, &ed] {
        let token = mint(key, &[]);
        assert_eq!(call(&gw, &token).await, 200, "{}", key.display());
    }
    // PS256 with the same RSA key needs a set that says PS256.
    let ps = mint(&rsa, &["--alg", "PS256"]);
    assert_eq!(call(&gw, &ps).await, 401, "RS256-only key accepted PS256");

    // A key that is not in the set: a well-formed token, refused. With its
    // own kid, and with a kid copied from a key in the set.
    let ec_kid = keys[0]["kid"].as_str().expect("kid").to_string();
    assert_eq!(call(&gw, &mint(&outsider, &[])).await, 401);
    assert_eq!(call(&gw, &mint(&outsider, &["--kid", &ec_kid])).await, 401);
    // Wrong audience and insufficient scope are the gateway's usual answers.
    let wrong_aud = ok(&[
        "token",
        "--key",
        path(&ec),
        "--iss",
        ISS,
        "--aud",
        "https://other.test",
        "--sub",
        "a",
        "--client-id",
        "c",
        "--scope",
        "orders:read",
    ]);
    assert_eq!(call(&gw, wrong_aud.trim()).await, 401);
    let no_scope = ok(&[
        "token",
        "--key",
        path(&ec),
        "--iss",
        ISS,
        "--aud",
        AUD,
        "--sub",
        "a",
        "--client-id",
        "c",
        "--scope",
        "profile",
    ]);
    assert_eq!(call(&gw, no_scope.trim()).await, 403);
    assert_eq!(
        upstream.hits(),
        3,
        "only the three good tokens went through"
    );
}

#[test]
fn token_prints_a_jwt_with_the_requested_header_and_claims() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = write_pem(dir.path(), "k.pem", "PRIVATE KEY", &p256_pkcs8());
    let token = mint(
        &key,
        &[
            "--ttl",
            "60",
            "--claim",
            "tenant=acme",
            "--claim",
            "level=3",
            "--aud",
            "second",
        ],
    );
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let decode = |s: &str| -> serde_json::Value {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let set: serde_json::Value =
        serde_json::from_str(&ok(&["jwks", "from-pem", path(&key)])).expect("set");
    assert_eq!(header["kid"], set["keys"][0]["kid"], "kid = thumbprint");
    assert_eq!(claims["aud"], serde_json::json!([AUD, "second"]));
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["level"], 3);
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    assert_eq!(exp.zip(iat).map(|(e, i)| e - i), Some(60));
    assert!(claims["jti"].is_string());
}

#[test]
fn token_and_dev_cert_say_development_only() {
    for tool in ["token", "dev-cert"] {
        let help = ok(&[tool, "--help"]);
        assert!(help.contains("DEVELOPMENT ONLY"), "{tool} --help:\n{help}");
    }
    let top = ok(&["--help"]);
    assert!(top.contains("DEVELOPMENT ONLY"), "{top}");
    // And on stderr when run, even when it fails.
    let dir = tempfile::tempdir().expect("tempdir");
    let key = write_pem(dir.path(), "k.pem", "PRIVATE KEY", &p256_pkcs8());
    let out = tokengate(&["token", "--key", path(&key), "--iss", ISS, "--aud", AUD]);
    assert!(text(&out.stderr).contains("DEVELOPMENT ONLY"));
    let out = tokengate(&["dev-cert", "--dir", path(dir.path())]);
    assert!(text(&out.stderr).contains("DEVELOPMENT ONLY"));
}

#[test]
fn key_errors_name_the_file_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let public = write_pem(dir.path(), "pub.pem", "PUBLIC KEY", b"junk");
    let cert = write_pem(dir.path(), "cert.pem", "CERTIFICATE", b"junk");
    let spki = {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
        let der: aws_lc_rs::encoding::PublicKeyX509Der =
            aws_lc_rs::signature::KeyPair::public_key(&pair)
                .as_der()
                .expect("SPKI");
        write_pem(dir.path(), "ec-pub.pem", "PUBLIC KEY", der.as_ref())
    };
    let missing = dir.path().join("missing.pem");
    let cases: [(Vec<&str>, &Path, &str); 4] = [
        (vec!["jwks", "from-pem"], &public, "PUBLIC KEY"),
        (vec!["jwks", "from-pem"], &cert, "certificate"),
        (vec!["jwks", "from-pem"], &missing, "cannot read"),
        (
            vec!["token", "--iss", ISS, "--aud", AUD, "--key"],
            &spki,
            "no private key",
        ),
    ];
    for (mut args, file, reason) in cases {
        args.push(path(file));
        let out = tokengate(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed {}",
            text(&out.stdout)
        );
        assert!(stderr.contains(path(file)), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn dev_cert_files_serve_tls_that_a_client_trusting_ca_pem_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let out = ok(&["dev-cert", "--dir", path(&certs)]);
    assert!(out.contains("--cacert"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(certs.join("server.key"))
            .expect("server.key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "server.key mode {mode:o}");
    }

    let upstream = Upstream::echo().await;
    let toml = GatewayConfig::open_api(&upstream.url())
        .server("tls_cert = \"certs/server.pem\"\ntls_key = \"certs/server.key\"")
        .render();
    let gw = Gateway::start_in(&toml, dir.path()).await;

    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_file_iter(certs.join("ca.pem")).expect("ca.pem")
    {
        roots.add(cert.expect("PEM")).expect("CA into roots");
    }
    let config = rustls::ClientConfig::builder_with_provider(tokengate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    let tls = tls_connect(tcp, Arc::new(config)).await;
    let authority = format!("localhost:{}", gw.addr().port());
    let resp = send_on(tls, false, "https", &authority, request("GET", "/api/x"))
        .await
        .expect("HTTPS request");
    assert_eq!(resp.status(), 200);
    assert_eq!(upstream.hits(), 1);
}

use rustls_pki_types::pem::PemObject as _;

#[test]
fn dev_cert_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = path(dir.path());
    ok(&["dev-cert", "--dir", d, "--name", "api.local"]);
    let before = std::fs::read(dir.path().join("ca.pem")).expect("ca.pem");
    let out = tokengate(&["dev-cert", "--dir", d]);
    crate::assert_exit_1_saying(&out, "--force");
    assert_eq!(
        std::fs::read(dir.path().join("ca.pem")).expect("ca.pem"),
        before
    );
    // Only one of the three files present is enough to refuse.
    std::fs::remove_file(dir.path().join("ca.pem")).expect("rm");
    std::fs::remove_file(dir.path().join("server.pem")).expect("rm");
    assert_eq!(tokengate(&["dev-cert", "--dir", d]).status.code(), Some(1));
    ok(&["dev-cert", "--dir", d, "--force"]);
    assert_ne!(
        std::fs::read(dir.path().join("ca.pem")).expect("ca.pem"),
        before
    );
}

/// `docs/tls.md`, "TLS to upstreams": a second tokengate serves TLS with
/// `dev-cert` files and the first trusts it through `ca_file`.
#[tokio::test]
async fn dev_cert_ca_file_lets_a_gateway_reach_a_tls_upstream() {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&[
        "dev-cert",
        "--dir",
        path(&dir.path().join("upstream-certs")),
        "--name",
        "localhost",
    ]);
    let echo = Upstream::echo().await;
    let tls_upstream = GatewayConfig::open_api(&echo.url())
        .server("tls_cert = \"upstream-certs/server.pem\"\ntls_key = \"upstream-certs/server.key\"")
        .start_in(dir.path())
        .await;
    let front = |ca_file: &str| {
        let url = format!("https://localhost:{}", tls_upstream.addr().port());
        GatewayConfig::new()
            .upstream_with("orders", &url, ca_file)
            .route(Route::open("/api/**", "orders"))
            .render()
    };
    let trusting =
        Gateway::start_in(&front("ca_file = \"upstream-certs/ca.pem\""), dir.path()).await;
    assert_eq!(trusting.get("/api/x").await.status, 200);
    assert_eq!(echo.hits(), 1);
    // Without ca_file the dev CA is not trusted: 502, nothing forwarded.
    let untrusting = Gateway::start_in(&front(""), dir.path()).await;
    assert_eq!(untrusting.get("/api/x").await.status, 502);
    assert_eq!(echo.hits(), 1);
}
