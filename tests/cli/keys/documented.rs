//! The command lines of `docs/keys.md` and `docs/tls.md`, run as written.

use super::*;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        || Command::new(tool)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// Runs a documented shell command line in `dir` (blocking; call through
/// `spawn_blocking` while a gateway serves). `tokengate` is this build.
fn sh(dir: &Path, line: &str) -> Output {
    let bin_dir = Path::new(BIN).parent().expect("bin dir");
    let path_var = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(dir)
        .env("PATH", path_var)
        .env_remove("RUST_LOG")
        .output()
        .expect("run sh")
}

fn sh_ok(dir: &Path, line: &str) -> String {
    crate::assert_success(&sh(dir, line), line)
}

/// The `openssl`, `tokengate` and `curl` command lines of `docs/keys.md`
/// and `docs/tls.md`, as written there (ports aside). Skipped, saying so,
/// where openssl or curl is not installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_command_lines_work() {
    if !have("openssl") || !have("curl") {
        eprintln!("skipped: the documented commands need openssl and curl");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // docs/keys.md
    sh_ok(
        d,
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev-key.pem",
    );
    sh_ok(d, "tokengate jwks from-pem dev-key.pem > jwks.json");
    sh_ok(
        d,
        "openssl pkey -in dev-key.pem -pubout -out dev-key.pub.pem",
    );
    let from_public = sh_ok(d, "tokengate jwks from-pem dev-key.pub.pem");
    let from_private = std::fs::read_to_string(d.join("jwks.json")).expect("jwks.json");
    assert_eq!(from_public, from_private, "public and private form differ");
    sh_ok(
        d,
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out rsa.pem",
    );
    sh_ok(d, "openssl genpkey -algorithm ED25519 -out ed.pem");
    let set = sh_ok(d, "tokengate jwks from-pem rsa.pem ed.pem dev-key.pem");
    assert_eq!(set.matches("\"kid\"").count(), 3, "{set}");
    // docs/tls.md
    sh_ok(d, "tokengate dev-cert --dir certs");
    sh_ok(
        d,
        "tokengate dev-cert --dir named --name api.local --name 127.0.0.1",
    );

    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .server("tls_cert = \"certs/server.pem\"\ntls_key = \"certs/server.key\"")
        .issuer(
            Issuer::new("dev", "https://dev.example.test/")
                .jwks_file("jwks.json")
                .audiences(&["https://api.example.test"]),
        )
        .upstream("app", &upstream.url())
        .route(Route::open("/public/**", "app"))
        .route(Route::new("/api/**", "app").scopes(&["orders:read"]))
        .start_in(d)
        .await;
    let port = gw.addr().port();
    let dir_path = d.to_path_buf();
    let lines = [
        (
            format!("curl -s -o /dev/null -w '%{{http_code}}' --cacert certs/ca.pem https://localhost:{port}/public/hello"),
            "200",
        ),
        (
            format!("curl --cacert certs/ca.pem -sv https://localhost:{port}/ -o /dev/null 2>&1 | grep ALPN"),
            "server accepted h2",
        ),
        (
            format!("curl --cacert certs/ca.pem --http1.1 -sv https://localhost:{port}/ -o /dev/null 2>&1 | grep ALPN"),
            "server accepted http/1.1",
        ),
        (
            format!(
                r#"TOKEN=$(tokengate token --key dev-key.pem \
  --iss https://dev.example.test/ --aud https://api.example.test \
  --sub alice --client-id cli --scope "orders:read")
curl -s -o /dev/null -w '%{{http_code}}' --cacert certs/ca.pem -H "Authorization: Bearer $TOKEN" https://localhost:{port}/api/orders/1"#
            ),
            "200",
        ),
        (
            format!("curl -s -o /dev/null -w '%{{http_code}}' --cacert named/ca.pem https://localhost:{port}/public/hello"),
            "000",
        ),
    ];
    let outputs = tokio::task::spawn_blocking(move || {
        lines
            .into_iter()
            .map(|(line, want)| (sh(&dir_path, &line), line, want))
            .collect::<Vec<_>>()
    })
    .await
    .expect("curl task");
    for (out, line, want) in outputs {
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains(want),
            "{line}\nwant {want:?}, got {stdout:?}{}",
            text(&out.stderr)
        );
    }
    assert_eq!(upstream.hits(), 2, "public hello and the token call");
}
