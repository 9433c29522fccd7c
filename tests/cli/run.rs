//! The binary as a user runs it: `check`, configuration errors and exit
//! codes, environment overrides, signals.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

const VALID: &str = r#"
[server]
listen = "127.0.0.1:0"

[issuers.corp]
issuer = "https://idp.example.com/"
jwks_uri = "https://idp.example.com/jwks"
audiences = ["api"]

[issuers.corp.introspection]
endpoint = "https://idp.example.com/introspect"
client_id = "gateway"
client_secret = "s3cret-value"

[upstreams.app]
url = "http://127.0.0.1:9/base"

[[routes]]
path = "/orders/**"
upstream = "app"
scopes = ["orders:read"]

[[routes]]
path = "/orders/*"
methods = ["GET"]
upstream = "app"
"#;

pub(crate) fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("tokengate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn tokengate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_valid_config_prints_resolved_config_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let with_oauth = format!(
        "{VALID}\n[upstreams.app.oauth]\ngrant = \"client_credentials\"\n\
         token_endpoint = \"https://idp.example.com/token\"\nclient_id = \"gateway\"\n\
         client_secret = \"upstream-s3cret-value\"\n"
    );
    let path = write_config(dir.path(), &with_oauth);
    let out = tokengate(&["check", "--config", path.to_str().unwrap()], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("corp"), "{stdout}");
    assert!(stdout.contains("http://127.0.0.1:9/base"), "{stdout}");
    assert!(stdout.contains("/orders/**"), "{stdout}");
    assert!(!stdout.contains("s3cret-value"), "secret printed: {stdout}");
    assert!(
        stdout.contains("token_endpoint = \"https://idp.example.com/token\""),
        "the upstream's oauth table: {stdout}"
    );
    assert!(
        stdout.contains("routes[1] is shadowed by routes[0]"),
        "no shadow warning: {stdout}"
    );
}

#[test]
fn check_invalid_config_exits_1_naming_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = VALID.replace(
        "upstream = \"app\"\nscopes",
        "upstream = \"missing\"\nscopes",
    );
    let path = write_config(dir.path(), &bad);
    let out = tokengate(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("routes[0].upstream: upstream \"missing\" is not defined"),
        "{stderr}"
    );
}

#[test]
fn check_unknown_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &VALID.replace("listen =", "lisen ="));
    let out = tokengate(&["check", "--config", path.to_str().unwrap()], &[]);
    crate::assert_exit_1_saying(&out, "server.lisen: unknown key");
}

#[test]
fn env_override_is_applied_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), VALID);
    let out = tokengate(
        &["check", "--config", path.to_str().unwrap()],
        &[("TOKENGATE_UPSTREAMS__APP__URL", "http://127.0.0.1:7/other")],
    );
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("http://127.0.0.1:7/other"));
    let out = tokengate(
        &["check", "--config", path.to_str().unwrap()],
        &[("TOKENGATE_SERVER__LISTEN", "not-an-address")],
    );
    crate::assert_exit_1_saying(&out, "server.listen:");
}

#[test]
fn run_with_invalid_config_exits_1_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let bad = VALID
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
        .replace("leeway", "x")
        .replace("audiences = [\"api\"]", "audiences = []");
    let path = write_config(dir.path(), &bad);
    for args in [vec!["run", "--config"], vec!["--config"]] {
        let mut args = args.clone();
        args.push(path.to_str().unwrap());
        let out = tokengate(&args, &[]);
        crate::assert_exit_1_saying(&out, "issuers.corp.audiences:");
    }
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listened"
    );
}

#[test]
fn run_missing_config_file_exits_1() {
    let out = tokengate(&["--config", "/nonexistent/tokengate.toml"], &[]);
    crate::assert_exit_1_saying(&out, "cannot read");
}

/// Starts `tokengate run`, waits for its "serving" log line, returns the
/// child and the address it listens on.
fn start(path: &Path) -> (Child, String) {
    start_with_env(path, &[])
}

/// [`start`] with extra environment variables.
pub(crate) fn start_with_env(path: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let (child, serving) = start_serving(path, env);
    let addr = serving["listen"].as_str().unwrap().to_string();
    (child, addr)
}

/// [`start_with_env`], returning the "tokengate serving" log line.
pub(crate) fn start_serving(path: &Path, env: &[(&str, &str)]) -> (Child, serde_json::Value) {
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--config",
            path.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if line.contains("tokengate serving") {
            let serving: serde_json::Value = serde_json::from_str(&line).unwrap();
            std::thread::spawn(move || for _ in lines.by_ref() {});
            return (child, serving);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("tokengate did not start");
}

pub(crate) fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub(crate) fn wait_exit(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("tokengate did not exit");
}

/// A loopback port that was free a moment ago: bound, read, released (the
/// binary reports only the gateway's address, so the admin port is chosen
/// here).
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Polls the admin `/metrics` until it counts one refused reload
/// (`tokengate_config_reloads_total{result="error"} 1`); fails after 10 s.
fn wait_for_reload_error(admin: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = get_body(admin, "/metrics");
        let refused = metrics.lines().any(|l| {
            l.starts_with("tokengate_config_reloads_total{")
                && l.contains("result=\"error\"")
                && l.ends_with(" 1")
        });
        if refused {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no refused reload counted:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The whole answer to `GET path` (head and body).
fn get_body(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf
}

pub(crate) fn get_status(addr: &str, path: &str) -> u16 {
    get_body(addr, path)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn run_sigterm_drains_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), VALID);
    let (mut child, addr) = start(&path);
    assert_eq!(get_status(&addr, "/nothing-here"), 404);
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), Some(0));
}

/// The signal handlers are in place once `tokengate serving` is logged:
/// a SIGHUP sent at once is a reload (the process keeps serving), and a
/// SIGTERM sent at once drains and exits 0, never the default action.
#[test]
fn run_signals_sent_as_soon_as_serving_is_logged_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), VALID);
    for _ in 0..5 {
        let (mut child, addr) = start(&path);
        signal(&child, "-HUP");
        assert_eq!(
            get_status(&addr, "/nothing-here"),
            404,
            "serving after SIGHUP"
        );
        let (mut child2, _) = start(&path);
        signal(&child2, "-TERM");
        assert_eq!(wait_exit(&mut child2), Some(0), "SIGTERM at once");
        signal(&child, "-TERM");
        assert_eq!(wait_exit(&mut child), Some(0));
    }
}

#[test]
fn run_sighup_reloads_and_a_bad_reload_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    let valid = format!("{VALID}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n");
    let path = write_config(dir.path(), &valid);
    let (mut child, addr) = start(&path);
    let admin = format!("127.0.0.1:{admin}");
    assert_eq!(get_status(&addr, "/extra"), 404);
    let with_extra =
        format!("{valid}\n[[routes]]\npath = \"/extra\"\nupstream = \"app\"\nauth = \"none\"\n");
    std::fs::write(&path, with_extra).unwrap();
    signal(&child, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_status(&addr, "/extra") == 404 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The upstream port 9 is closed: a forwarded request is a 502.
    assert_eq!(get_status(&addr, "/extra"), 502);
    std::fs::write(&path, "this is not toml [").unwrap();
    signal(&child, "-HUP");
    wait_for_reload_error(&admin);
    assert_eq!(
        get_status(&addr, "/extra"),
        502,
        "bad reload replaced the config"
    );
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), Some(0));
}

/// `VALID` with a protected admin prefix and then a public catch-all;
/// `admin_extra` and `public_extra` are added to those two routes.
fn fall_through_config(admin_extra: &str, public_extra: &str) -> String {
    format!(
        "{VALID}\n[[routes]]\npath = \"/api/admin/**\"\nupstream = \"app\"\n{admin_extra}\n\n\
         [[routes]]\npath = \"/**\"\nupstream = \"app\"\nauth = \"none\"\n{public_extra}\n"
    )
}

fn check_stdout(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), config);
    let out = tokengate(&["check", "--config", path.to_str().unwrap()], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    stdout
}

#[test]
fn check_warns_when_a_public_catch_all_follows_a_case_sensitive_protected_prefix() {
    let stdout = check_stdout(&fall_through_config("", ""));
    assert!(
        stdout.contains(
            "warning: routes[3] (/**, auth=none) catches requests that miss routes[2] \
             (/api/admin/**) by case: set case_sensitive = false on routes[2]"
        ),
        "no fall-through warning: {stdout}"
    );
    // The earlier protected /orders routes are caught too, each named once.
    assert!(
        stdout.contains("miss routes[0] (/orders/**) by case"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("miss routes[2]").count(), 1, "{stdout}");
}

#[test]
fn check_warns_about_method_fall_through_with_the_fix() {
    let stdout = check_stdout(&fall_through_config(
        "methods = [\"GET\"]\ncase_sensitive = false",
        "",
    ));
    assert!(
        stdout.contains(
            "warning: routes[3] (/**, auth=none) catches requests that miss routes[2] \
             (/api/admin/**) by method: add an explicit deny"
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains("miss routes[2] (/api/admin/**) by case"),
        "{stdout}"
    );
}

#[test]
fn check_no_fall_through_warning_when_nothing_can_slip() {
    let (head, _) = VALID.split_once("[[routes]]").unwrap();
    let stdout = check_stdout(&format!(
        "{head}[[routes]]\npath = \"/api/admin/**\"\nupstream = \"app\"\ncase_sensitive = false\n\n\
         [[routes]]\npath = \"/**\"\nupstream = \"app\"\nauth = \"none\"\n"
    ));
    assert!(!stdout.contains("catches requests"), "{stdout}");
    // A public route that pins the letters catches no case variant.
    let stdout = check_stdout(&format!(
        "{head}[[routes]]\npath = \"/api/admin/**\"\nupstream = \"app\"\n\n\
         [[routes]]\npath = \"/api/admin/**\"\nupstream = \"app\"\nauth = \"none\"\nmethods = [\"GET\"]\n"
    ));
    assert!(!stdout.contains("catches requests"), "{stdout}");
}
