//! `tokengate init` and a first `tokengate run` as a new user meets them:
//! the written file passes `check` and serves, an existing file is kept
//! unless `--force`, `--discover` reads the issuer's discovery document and
//! refuses one that names another issuer, and `run` without a file says how
//! to make one.

use crate::common;

use common::idp::{wait_ready, TestIdp};
use common::mint::{claims, Key};
use common::{get_with, Client, Gateway, Upstream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

fn tokengate(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tokengate")
}

/// Runs the binary off the async runtime, so a test IdP on this runtime
/// can answer it.
async fn tokengate_async(dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tokengate(&dir, &args)
    })
    .await
    .expect("join")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn init_args<'a>(issuer: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "init",
        "--issuer",
        issuer,
        "--audience",
        "https://api.example.com",
        "--upstream",
        "http://127.0.0.1:3000",
        "--route",
        "/health",
        "--route",
        "/orders/**:orders:read",
    ];
    args.extend_from_slice(extra);
    args
}

fn default_path(dir: &Path) -> PathBuf {
    dir.join("config/tokengate.toml")
}

#[test]
fn init_writes_the_default_path_and_check_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    for issuer in ["http://127.0.0.1:9000/", "https://idp.example.com/"] {
        let _ = std::fs::remove_file(default_path(dir.path()));
        let out = tokengate(dir.path(), &init_args(issuer, &[]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("wrote config/tokengate.toml"));
        let written = std::fs::read_to_string(default_path(dir.path())).unwrap();
        assert!(
            written.contains(&format!("issuer = {issuer:?}")),
            "{written}"
        );
        assert!(
            written.contains("config/tokengate.example.toml"),
            "{written}"
        );
        for line in written
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            assert!(line.contains(" # "), "key without a comment: {line:?}");
        }
        let check = tokengate(dir.path(), &["check"]);
        assert!(
            check.status.success(),
            "{}{}",
            text(&check.stdout),
            text(&check.stderr)
        );
        let stdout = text(&check.stdout);
        assert!(stdout.contains("scopes = [\"orders:read\"]"), "{stdout}");
        assert!(stdout.contains("path = \"/health\""), "{stdout}");
    }
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, "# mine\n").unwrap();
    let args = init_args("https://idp.example.com/", &["--config", "gw.toml"]);
    let out = tokengate(dir.path(), &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("gw.toml already exists; pass --force to overwrite it"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");

    let mut forced = args.clone();
    forced.push("--force");
    let out = tokengate(dir.path(), &forced);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("[issuers.main]"), "{written}");
    let check = tokengate(dir.path(), &["check", "--config", "gw.toml"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
}

#[test]
fn init_refuses_an_invalid_answer_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokengate(dir.path(), &init_args("http://idp.example.com/", &[]));
    crate::assert_exit_1_saying(&out, "issuers.main.issuer: must use https");
    let out = tokengate(
        dir.path(),
        &init_args("https://idp.example.com/", &["--route", "orders:read"]),
    );
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(text(&out.stderr).contains("PATH must start with /"));
    assert!(!default_path(dir.path()).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_discover_prints_what_it_found_and_the_file_serves() {
    let key = Key::es256("k1");
    let idp = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let issuer = idp.issuer();
    let url = upstream.url();
    let out = tokengate_async(
        dir.path(),
        &[
            "init",
            "--discover",
            "--issuer",
            &issuer,
            "--audience",
            "api",
            "--upstream",
            &url,
            "--route",
            "/api/**",
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_eq!(idp.discovery_hits(), 1);
    assert!(stdout.contains(&format!("issuer: {issuer}")), "{stdout}");
    assert!(
        stdout.contains(&format!("jwks_uri: {}", idp.jwks_uri())),
        "{stdout}"
    );
    assert!(
        stdout.contains("scopes_supported: (not advertised)"),
        "{stdout}"
    );
    let written = std::fs::read_to_string(default_path(dir.path())).unwrap();
    assert!(written.contains("discovery = true"), "{written}");
    assert!(
        written.contains(&format!("# jwks_uri = {:?}", idp.jwks_uri())),
        "{written}"
    );

    // The file as written (plus an admin listener to wait on) verifies tokens.
    let gw = Gateway::start(&format!("{written}\n[admin]\nlisten = \"127.0.0.1:0\"\n")).await;
    wait_ready(&gw).await;
    let call = |token: String| get_with("/api/x", &[("authorization", &format!("Bearer {token}"))]);
    let ok = gw
        .send(&Client::h1(), call(key.token(&claims(&issuer, "api"))))
        .await;
    assert_eq!(ok.status, 200);
    let wrong_aud = gw
        .send(&Client::h1(), call(key.token(&claims(&issuer, "other"))))
        .await;
    assert_eq!(wrong_aud.status, 401);
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_discover_refuses_a_document_naming_another_issuer() {
    let idp = TestIdp::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The document names the issuer with a trailing slash; ours has none.
    let ours = idp.base_url();
    let out = tokengate_async(dir.path(), &init_args(&ours, &["--discover"])).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("names issuer {:?}, not {ours:?}", idp.issuer())),
        "{stderr}"
    );
    assert_eq!(idp.discovery_hits(), 1);
    assert!(!default_path(dir.path()).exists());
}

#[test]
fn init_discover_against_a_closed_port_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let out = tokengate(dir.path(), &init_args(&issuer, &["--discover"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("discovery at") && text(&out.stderr).contains("failed"),
        "{}",
        text(&out.stderr)
    );
    assert!(!default_path(dir.path()).exists());
}

#[test]
fn run_without_a_config_file_says_how_to_create_one() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["run"][..], &[][..], &["--config", "gw.toml"][..]] {
        let out = tokengate(dir.path(), args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let path = if args.len() == 2 {
            "gw.toml"
        } else {
            "config/tokengate.toml"
        };
        for part in [
            format!("{path}: not found"),
            "tokengate init".to_string(),
            "config/tokengate.example.toml".to_string(),
            "--config FILE".to_string(),
        ] {
            assert!(stderr.contains(&part), "{args:?}: no {part:?} in {stderr}");
        }
    }
}

#[test]
fn help_shows_the_default_config_path_and_init() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokengate(dir.path(), &["--help"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("[default: config/tokengate.toml]"),
        "{stdout}"
    );
    assert!(stdout.contains("init"), "{stdout}");
    let out = tokengate(dir.path(), &["init", "--help"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("PATH[:SCOPE]"), "{stdout}");
}
