//! `tokengate demo` as a new user meets it: start it on free ports, paste
//! the printed commands into a shell, and get the answers it promises.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

/// A port N such that N, N+1 and N+2 are free right now.
fn free_port_triple() -> u16 {
    for _ in 0..50 {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        if base > 65000 {
            continue;
        }
        let others: Vec<_> = (1..=2)
            .map(|i| TcpListener::bind(("127.0.0.1", base + i)))
            .collect();
        if others.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no three consecutive free ports");
}

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the demo and returns it with the block of commands it printed.
fn start_demo(port: u16) -> (Demo, Vec<String>) {
    let mut child = Command::new(BIN)
        .args(["demo", "--port", &port.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let demo = Demo(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.starts_with("Press Ctrl-C");
            let _ = tx.send(line);
            if done {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let done = line.starts_with("Press Ctrl-C");
        lines.push(line);
        if done {
            return (demo, lines);
        }
    }
    panic!("the demo did not print its instructions: {lines:?}");
}

#[test]
fn demo_printed_commands_behave_as_printed() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let port = free_port_triple();
    let (mut demo, lines) = start_demo(port);
    let commands: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("  ") && !l.trim_start().starts_with('#'))
        .map(|l| l.trim())
        .collect();
    let expected: Vec<u16> = lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("# expect "))
        .map(|rest| rest[..3].parse().unwrap())
        .collect();
    assert_eq!(
        expected,
        vec![200, 403, 401, 401, 200, 200, 200, 401, 200],
        "{lines:#?}"
    );
    // The DPoP commands create their key file in the shell's directory.
    let dir = tempfile::tempdir().unwrap();
    let script = format!("set -e\n{}\n", commands.join("\n"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let statuses: Vec<u16> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("HTTP/1.1 "))
        .map(|l| l[..3].parse().unwrap())
        .collect();
    assert_eq!(statuses, expected, "{stdout}");
    assert!(stdout.contains("error=\"insufficient_scope\""), "{stdout}");
    assert!(stdout.contains("scope=\"orders:write\""), "{stdout}");
    assert!(stdout.contains("error=\"invalid_token\""), "{stdout}");
    assert!(
        stdout.contains("\"x-auth-client-id\":\"demo-reader\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"x-auth-client-id\":\"demo-opaque\""),
        "{stdout}"
    );
    // Every route but the last strips the caller's token; the last one's
    // upstream gets the gateway's own token, from client demo-gateway.
    let (before, billing) = stdout
        .rsplit_once("HTTP/1.1 ")
        .unwrap_or_else(|| panic!("the upstream-credentials call: {stdout}"));
    assert!(
        billing.contains("\"path\":\"/api/billing/invoices\""),
        "{stdout}"
    );
    assert!(
        !before.contains("\"authorization\""),
        "the demo strips the token upstream: {stdout}"
    );
    assert!(billing.contains("\"authorization\":\"Bearer "), "{stdout}");
    assert!(billing.contains("\"sub\":\"demo-gateway\""), "{stdout}");
    assert!(billing.contains("\"scope\":\"billing:read\""), "{stdout}");
    // The exchanged token: for demo-reader, with demo-gateway as actor.
    assert!(
        billing.contains("\"issued_token_type\":\"urn:ietf:params:oauth:token-type:access_token\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"path\":\"/api/dpop/42\""),
        "the DPoP call reached the upstream: {stdout}"
    );
    assert!(
        !stdout.contains("\"dpop\""),
        "the proof is not forwarded: {stdout}"
    );
    assert!(
        stdout.contains("DPoP realm=\"tokengate-demo\", error=\"invalid_token\""),
        "the DPoP-bound token as a bearer token: {stdout}"
    );
    assert!(dir.path().join("demo-dpop-key.pem").exists());

    let status = Command::new("kill")
        .args(["-INT", &demo.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = demo.0.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the demo did not stop on Ctrl-C");
}

#[test]
fn demo_token_endpoint_errors_follow_rfc6749() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let port = free_port_triple();
    let (_demo, _) = start_demo(port);
    let token_url = format!("http://127.0.0.1:{}/token", port + 1);
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-i", "-X", "POST", &token_url])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec![
                "-u",
                "demo-reader:wrong",
                "-d",
                "grant_type=client_credentials",
            ],
            "401",
            "invalid_client",
        ),
        (
            vec!["-u", "demo-reader:reader-secret"],
            "400",
            "invalid_request",
        ),
        (
            vec![
                "-u",
                "demo-reader:reader-secret",
                "-d",
                "grant_type=password",
            ],
            "400",
            "unsupported_grant_type",
        ),
        (
            vec![
                "-u",
                "tokengate:introspect-secret",
                "-d",
                "grant_type=client_credentials",
            ],
            "400",
            "unauthorized_client",
        ),
        (
            vec![
                "-u",
                "demo-reader:reader-secret",
                "-d",
                "grant_type=client_credentials",
                "-d",
                "scope=orders:write",
            ],
            "400",
            "invalid_scope",
        ),
        (
            vec![
                "-d",
                "grant_type=client_credentials&client_id=demo-writer&client_secret=writer-secret",
            ],
            "200",
            "\"token_type\":\"Bearer\"",
        ),
    ];
    for (args, status, needle) in cases {
        let out = curl(&args);
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status}")),
            "{args:?}: {out}"
        );
        assert!(out.contains(needle), "{args:?}: {out}");
        assert!(
            out.to_ascii_lowercase().contains("cache-control: no-store"),
            "{args:?}: {out}"
        );
        if status == "401" {
            assert!(
                out.to_ascii_lowercase().contains("www-authenticate: basic"),
                "{out}"
            );
        }
    }
}

/// A token request with a proof from `tokengate dpop-proof` gets a token
/// bound to that key: `cnf.jkt` is the key's RFC 7638 thumbprint, the kid
/// `tokengate jwks from-pem` gives it. The same proof twice is a replay.
#[test]
fn demo_issuer_binds_a_token_to_the_proof_key() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let port = free_port_triple();
    let (_demo, _) = start_demo(port);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let key = key.to_str().unwrap();
    let token_url = format!("http://127.0.0.1:{}/token", port + 1);
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program).args(args).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let proof = run(
        BIN,
        &[
            "dpop-proof",
            "--key",
            key,
            "--method",
            "POST",
            "--url",
            &token_url,
        ],
    );
    let header = format!("DPoP: {}", proof.trim());
    let request = || {
        run(
            "curl",
            &[
                "-s",
                "-u",
                "demo-reader:reader-secret",
                "-d",
                "grant_type=client_credentials",
                "-H",
                &header,
                &token_url,
            ],
        )
    };
    let answer: serde_json::Value = serde_json::from_str(&request()).unwrap();
    assert_eq!(answer["token_type"], "DPoP", "{answer}");
    let payload = answer["access_token"]
        .as_str()
        .and_then(|t| t.split('.').nth(1))
        .unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let jwks: serde_json::Value =
        serde_json::from_str(&run(BIN, &["jwks", "from-pem", key])).unwrap();
    assert_eq!(claims["cnf"]["jkt"], jwks["keys"][0]["kid"], "{claims}");
    let replay = request();
    assert!(
        replay.contains("\"error\":\"invalid_dpop_proof\""),
        "{replay}"
    );
}

/// With stdout and stderr in one file (as `tokengate demo > log 2>&1`, or a
/// service manager's journal), the instructions come first and whole; the
/// logs follow them.
#[test]
fn demo_instructions_come_before_any_log_line_in_shared_output() {
    let port = free_port_triple();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let file = std::fs::File::create(&path).unwrap();
    let child = Command::new(BIN)
        .args(["demo", "--port", &port.to_string(), "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    let _demo = Demo(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // Both the instructions (ending with the Ctrl-C line) and logs.
        if text.contains("Press Ctrl-C") && text.contains("{\"") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no instructions and logs within 30 s: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("tokengate demo:"), "first line: {first}");
    let (instructions, _) = text.split_once("Press Ctrl-C").unwrap();
    assert!(
        !instructions.lines().any(|l| l.starts_with('{')),
        "a log line inside the instructions:\n{instructions}"
    );
    assert!(instructions.contains("Paste these into another terminal"));
}
