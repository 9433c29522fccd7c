//! Node, npm and the provider process: preparing tests/e2e once per test
//! binary, starting provider.mjs, and the bounded runner of helper processes.

use super::*;

pub(crate) fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("e2e")
}

pub(crate) fn e2e_required() -> bool {
    std::env::var("REQUIRE_OIDC_E2E").is_ok_and(|v| v == "1")
}

/// Why the end-to-end environment cannot be had.
#[derive(Debug)]
pub(crate) enum Unavailable {
    /// `node` or `npm` is not on PATH: a skip, unless REQUIRE_OIDC_E2E=1.
    MissingTool(String),
    /// Present but broken (npm ci failed, ...): always a failure.
    Broken(String),
}

/// What a bounded child process printed.
pub(crate) struct Finished {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Reads a child's pipe to the end on its own thread.
pub(crate) fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `cmd` to completion within `limit`; kills it (by its own handle)
/// when the limit passes. `Err` when it cannot be started or timed out.
pub(crate) fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<Finished, std::io::Error> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{cmd:?} did not finish within {limit:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok(Finished {
        success: status.success(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// `TOOL --version`, telling "not installed" apart from "broken".
pub(crate) fn tool_version(tool: &str) -> Result<String, Unavailable> {
    match run_bounded(Command::new(tool).arg("--version"), HELPER_LIMIT) {
        Ok(out) if out.success => Ok(out.stdout.trim().to_string()),
        Ok(out) => Err(Unavailable::Broken(format!(
            "`{tool} --version` failed: {}",
            out.stderr.trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Unavailable::MissingTool(format!("`{tool}` is not on PATH")))
        }
        Err(e) => Err(Unavailable::Broken(format!("`{tool} --version`: {e}"))),
    }
}

/// The packages `tests/e2e/package.json` depends on.
pub(crate) fn npm_dependencies(dir: &Path) -> Result<Vec<String>, Unavailable> {
    let path = dir.join("package.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Unavailable::Broken(format!("{}: {e}", path.display())))?;
    let manifest: Value = serde_json::from_str(&text)
        .map_err(|e| Unavailable::Broken(format!("{}: {e}", path.display())))?;
    Ok(manifest["dependencies"]
        .as_object()
        .map(|deps| deps.keys().cloned().collect())
        .unwrap_or_default())
}

/// Checks for node and installs the npm packages when any is missing (a
/// checkout whose node_modules predates a newly added package included).
pub(crate) fn prepare() -> Result<(), Unavailable> {
    let node = tool_version("node")?;
    let dir = e2e_dir();
    let installed = |name: &String| {
        dir.join("node_modules")
            .join(name)
            .join("package.json")
            .is_file()
    };
    if npm_dependencies(&dir)?.iter().all(installed) {
        return Ok(());
    }
    let npm = tool_version("npm")?;
    let _ = writeln!(
        std::io::stderr(),
        "oidc_e2e: installing tests/e2e packages with npm ci (node {node}, npm {npm})"
    );
    let out = run_bounded(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
        NPM_CI_LIMIT,
    )
    .map_err(|e| Unavailable::Broken(format!("npm ci in {}: {e}", dir.display())))?;
    if !out.success {
        return Err(Unavailable::Broken(format!(
            "npm ci in {} failed:\n{}\n{}",
            dir.display(),
            out.stdout,
            out.stderr
        )));
    }
    Ok(())
}

/// One `prepare` per test binary; parallel tests wait for the first.
pub(crate) static PREPARED: OnceLock<Result<(), Unavailable>> = OnceLock::new();

/// `true` when the tests can run; `false` (after a skip line) when node
/// or npm is missing and the environment does not require the tests.
pub(crate) fn e2e_available(test: &str) -> bool {
    match PREPARED.get_or_init(prepare) {
        Ok(()) => true,
        Err(Unavailable::MissingTool(why)) if !e2e_required() => {
            // Straight to stderr: libtest captures only the print macros,
            // and a skip must be visible in a passing run.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED oidc_e2e::{test}: {why}; install Node.js >= 20.19 with npm to run it \
                 (REQUIRE_OIDC_E2E=1 turns this skip into a failure)"
            );
            false
        }
        Err(Unavailable::MissingTool(why)) => {
            panic!("REQUIRE_OIDC_E2E=1 but {why}")
        }
        Err(Unavailable::Broken(why)) => panic!("{why}"),
    }
}

/// provider.mjs's ready line: `(issuer, port, redirect_uri)`.
pub(crate) fn parse_ready_line(line: &str) -> Result<(String, u16, String), String> {
    let info: Value =
        serde_json::from_str(line).map_err(|e| format!("ready line is not JSON ({e}): {line}"))?;
    let field = |name: &str| {
        info[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("ready line without {name}: {line}"))
    };
    let port = info["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| format!("ready line without a port: {line}"))?;
    let issuer = field("issuer")?;
    // No trailing slash: tokengate compares `iss` exactly.
    if issuer != format!("http://127.0.0.1:{port}") {
        return Err(format!("unexpected issuer {issuer} for port {port}"));
    }
    Ok((issuer, port, field("redirect_uri")?))
}

/// A running `node tests/e2e/provider.mjs`.
pub(crate) struct Provider {
    pub(crate) child: Child,
    /// Held open: provider.mjs exits when its stdin closes.
    pub(crate) _stdin: ChildStdin,
    pub(crate) stderr: Arc<Mutex<String>>,
    pub(crate) issuer: String,
    pub(crate) addr: SocketAddr,
    pub(crate) redirect_uri: String,
}

impl Provider {
    /// Starts the provider, or `None` when the test is skipped.
    pub(crate) fn start(test: &str) -> Option<Provider> {
        if !e2e_available(test) {
            return None;
        }
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(e2e_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting node provider.mjs: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");

        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().expect("stderr buffer");
                text.push_str(&line);
                text.push('\n');
            }
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = ready_tx.send(first);
            }
            // Keep draining so the provider never blocks on a full pipe.
            for _ in lines {}
        });

        let ready = ready_rx
            .recv_timeout(PROVIDER_READY_LIMIT)
            .map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => {
                    format!("no ready line within {PROVIDER_READY_LIMIT:?}")
                }
                mpsc::RecvTimeoutError::Disconnected => "exited before its ready line".into(),
            })
            .and_then(|line| parse_ready_line(&line));
        match ready {
            Ok((issuer, port, redirect_uri)) => Some(Provider {
                child,
                _stdin: stdin,
                stderr,
                issuer,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                redirect_uri,
            }),
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "provider.mjs: {why}; stderr:\n{}",
                    stderr.lock().expect("stderr buffer")
                );
            }
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        Client::h1()
            .fetch(self.addr, common::request("GET", path))
            .await
    }

    pub(crate) async fn post(&self, path: &str) -> Reply {
        Client::h1()
            .fetch(self.addr, common::request("POST", path))
            .await
    }

    /// POSTs an `application/x-www-form-urlencoded` body, authenticating
    /// with HTTP Basic when `basic` is given (RFC 6749 2.3.1).
    pub(crate) async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> Reply {
        self.post_form_with(path, basic, &[], form).await
    }

    /// [`Provider::post_form`] with more request headers (a `DPoP` proof,
    /// a `Client-Cert`).
    pub(crate) async fn post_form_with(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        if let Some((id, secret)) = basic {
            let credentials = STANDARD.encode(format!("{}:{}", pct(id), pct(secret)));
            req = req.header("authorization", format!("Basic {credentials}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(full(form_encode(form))).expect("form request");
        Client::h1().fetch(self.addr, req).await
    }

    /// A client-credentials grant for `resource` (RFC 8707) and `scope`;
    /// panics unless the provider issues a token.
    pub(crate) async fn client_credentials(&self, resource: &str, scope: &str) -> String {
        let reply = self
            .post_form(
                "/token",
                Some(SVC),
                &[
                    ("grant_type", "client_credentials"),
                    ("resource", resource),
                    ("scope", scope),
                ],
            )
            .await;
        let body = ok_json(&reply, "client_credentials grant");
        assert_eq!(body["token_type"], "Bearer", "{body}");
        assert_eq!(body["scope"], scope, "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// RFC 7009 revocation by the client the token was issued to.
    pub(crate) async fn revoke(&self, token: &str) {
        let reply = self
            .post_form(
                "/token/revocation",
                Some(SVC),
                &[("token", token), ("token_type_hint", "access_token")],
            )
            .await;
        assert_eq!(reply.status, 200, "revocation: {}", text(&reply));
    }

    /// The provider's own view of `token` (RFC 7662), asked as the gateway.
    pub(crate) async fn introspect(&self, token: &str) -> Value {
        let reply = self
            .post_form(
                "/token/introspection",
                Some(GATEWAY_BASIC),
                &[("token", token)],
            )
            .await;
        ok_json(&reply, "introspection")
    }

    /// Requests received by one endpoint (`jwks`, `introspection`, `token`, `revocation`).
    pub(crate) async fn hits(&self, endpoint: &str) -> u64 {
        let stats = ok_json(&self.get("/test/stats").await, "control: stats");
        stats["hits"][endpoint]
            .as_u64()
            .unwrap_or_else(|| panic!("no {endpoint} counter: {stats}"))
    }

    /// Rotates the provider's signing key; returns the new kid.
    pub(crate) async fn rotate(&self) -> String {
        let body = ok_json(&self.post("/test/rotate").await, "control: rotate");
        body["kid"].as_str().expect("kid").to_string()
    }

    /// Asserts the provider is still running (it did not crash during the
    /// test), then stops it.
    pub(crate) fn stop(mut self) {
        match self.child.try_wait() {
            Ok(None) => {}
            other => panic!(
                "provider.mjs ended during the test ({other:?}); stderr:\n{}",
                self.stderr.lock().expect("stderr buffer")
            ),
        }
        // Drop kills and reaps it.
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- provider.mjs stderr ---\n{}",
                self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
            );
        }
    }
}

/// Runs a test body on a fresh multi-threaded runtime (the provider is
/// started before it, with blocking process I/O).
pub(crate) fn run(body: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(body);
}
