//! Sender-constrained tokens through real sockets (extensions section 9,
//! the DPoP and mTLS members of section 10; docs/behavior.md sections 11
//! and 12), one module a subject:
//!
//! | module | covers |
//! |---|---|
//! | `dpop` | DPoP proofs: forwarding, every refusal, `htu` normalisation and its scheme, replays under the identity cache, the gateway without `[dpop]`, server nonces |
//! | `challenges` | which `WWW-Authenticate` fields a refusal carries, per route and per scheme |
//! | `introspection` | opaque tokens bound by an introspection answer's `cnf` and `token_type` |
//! | `mtls` | certificate-bound tokens over real TLS with and without `tls_client_ca`, and from a trusted proxy's `Client-Cert` header |
//! | `policy` | each route `token_binding` against bearer, DPoP-bound, certificate-bound and doubly bound tokens |
//! | `metadata` | the DPoP and mTLS members of the resource metadata document |
//! | `operations` | nonces and spent proofs across a reload; the outcome label of DPoP refusals |
//! | `config` | the refusals of the configuration keys, by `Config::from_toml` and `tokengate check` |
//!
//! Proofs and certificates come from `common::dpop` and `common::mtls`,
//! whose thumbprints are computed independently of the gateway. Every
//! refusal also asserts that nothing reached the upstream.

#[path = "../common/mod.rs"]
mod common;

mod challenges;
mod config;
mod dpop;
mod introspection;
mod metadata;
mod mtls;
mod operations;
mod policy;

use common::assert::{parse_scheme_challenge, text, DEFAULT_REALM};
use common::dpop::{cnf_jkt, DpopKey};
use common::idp::{issuer_table, wait_ready, TestIdp};
use common::mint::{claims, with, Key, AUD};
use common::mtls::ClientCert;
use common::{get_with, Client, Gateway, GatewayConfig, Pki, Reply, Route, Upstream};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use tokengate::clock::Clock;

/// `dpop.algorithms` of the test gateways, and so the `algs` of their
/// DPoP challenges.
const ALGS: &str = "ES256 EdDSA RS256";

/// The `[dpop]` table of the test gateways, with `lines` added.
fn dpop_table(lines: &str) -> String {
    format!("[dpop]\nalgorithms = [\"ES256\", \"EdDSA\", \"RS256\"]\n{lines}\n")
}

/// What a test gateway is started with besides the fixed routes.
#[derive(Default)]
struct Options {
    /// The `[dpop]` table, or none (DPoP off).
    dpop: Option<String>,
    /// `[server]` lines.
    server: Vec<String>,
    /// TLS on the listener, with `tls_client_auth = "optional"`.
    tls: bool,
    /// Files written into the PKI's directory before the start (TLS only):
    /// (name, content).
    files: Vec<(String, String)>,
}

impl Options {
    fn dpop() -> Options {
        Options {
            dpop: Some(dpop_table("")),
            ..Options::default()
        }
    }

    fn dpop_with(lines: &str) -> Options {
        Options {
            dpop: Some(dpop_table(lines)),
            ..Options::default()
        }
    }

    fn server(mut self, lines: &str) -> Options {
        self.server.push(lines.to_string());
        self
    }

    /// TLS with client certificates asked for.
    fn tls(mut self) -> Options {
        self.tls = true;
        self
    }

    /// `name` with `content` in the PKI's directory (TLS only).
    fn file(mut self, name: &str, content: &str) -> Options {
        self.files.push((name.to_string(), content.to_string()));
        self
    }
}

/// An identity provider with the issuer's key, the echo upstream and the
/// gateway in front of it, on a manual clock, with the routes
///
/// | route | `token_binding` | other |
/// |---|---|---|
/// | `/any/**` | `any` (default) | |
/// | `/dpop/**` | `dpop` (only with `[dpop]`) | |
/// | `/mtls/**` | `mtls` | |
/// | `/bound/**` | `bound` | |
/// | `/admin/**` | `any` | scope `admin` |
/// | `/open/**` | | `auth = "none"` |
struct Bound {
    idp: TestIdp,
    key: Key,
    upstream: Upstream,
    gw: Gateway,
    clock: Clock,
    /// The listener's PKI when it speaks TLS.
    pki: Option<Pki>,
}

impl Bound {
    /// The usual DPoP gateway over plain HTTP.
    async fn with_dpop() -> Bound {
        Bound::start(Options::dpop()).await
    }

    async fn start(options: Options) -> Bound {
        let key = Key::eddsa("issuer-1");
        let idp = TestIdp::with_keys(&[&key]).await;
        let upstream = Upstream::echo().await;
        let pki = options.tls.then(Pki::generate);
        for (name, content) in &options.files {
            let dir = pki.as_ref().expect("files go with TLS").dir();
            std::fs::write(dir.join(name), content).expect("write a test file");
        }
        let mut config = GatewayConfig::new()
            .admin()
            .issuer(issuer_table("corp", &idp, ""))
            .upstream("echo", &upstream.url());
        if pki.is_some() {
            config = config.server(
                "tls_cert = \"server.pem\"\ntls_key = \"server.key\"\n\
                 tls_client_auth = \"optional\"",
            );
        }
        for lines in &options.server {
            config = config.server(lines);
        }
        config = config.route(Route::new("/any/**", "echo"));
        if options.dpop.is_some() {
            config = config.route(Route::new("/dpop/**", "echo").with("token_binding = \"dpop\""));
        }
        config = config
            .route(Route::new("/mtls/**", "echo").with("token_binding = \"mtls\""))
            .route(Route::new("/bound/**", "echo").with("token_binding = \"bound\""))
            .route(Route::new("/admin/**", "echo").scopes(&["admin"]))
            .route(Route::open("/open/**", "echo"));
        if let Some(table) = &options.dpop {
            config = config.raw(table);
        }
        let clock = common::test_clock();
        let dir = pki.as_ref().map_or(Path::new("."), |p| p.dir());
        let gw = Gateway::start_on(&config.render(), dir, clock.clone()).await;
        wait_ready(&gw).await;
        Bound {
            idp,
            key,
            upstream,
            gw,
            clock,
            pki,
        }
    }

    /// A token of the test issuer with `changes` to the usual claims.
    fn token(&self, changes: Value) -> String {
        self.key
            .token(&with(&claims(&self.idp.issuer(), AUD), changes))
    }

    /// A token bound to `key` (`cnf.jkt`).
    fn dpop_token(&self, key: &DpopKey) -> String {
        self.token(json!({ "cnf": cnf_jkt(key) }))
    }

    /// The URL a client uses for `path`: what a proof's `htu` names.
    fn url(&self, path: &str) -> String {
        match self.pki {
            // The TLS client connects as `localhost`.
            Some(_) => format!("https://localhost:{}{path}", self.gw.addr().port()),
            None => self.gw.url(path),
        }
    }

    /// An HTTP/1.1 client, over TLS without a certificate when the
    /// listener speaks TLS.
    fn client(&self) -> Client {
        match &self.pki {
            Some(pki) => Client::h1().tls(pki),
            None => Client::h1(),
        }
    }

    /// An HTTP/1.1 (or h2) client over TLS presenting `cert`, or none.
    fn client_as(&self, cert: Option<&ClientCert>, h2: bool) -> Client {
        let pki = self.pki.as_ref().expect("a TLS gateway");
        let alpn: &[u8] = if h2 { b"h2" } else { b"http/1.1" };
        let client = if h2 { Client::h2() } else { Client::h1() };
        match cert {
            Some(cert) => client.tls_config(cert.client_config(pki, &[alpn])),
            None => client.tls(pki),
        }
    }

    /// `GET path` with these headers, over TLS presenting `cert`.
    async fn get_as(
        &self,
        cert: Option<&ClientCert>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let client = self.client_as(cert, false);
        self.gw.send(&client, get_with(path, headers)).await
    }

    /// `GET path` with these headers.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.gw.send(&self.client(), get_with(path, headers)).await
    }

    /// `GET path` with `Authorization: Bearer token`.
    async fn bearer(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.get(path, &[("authorization", &auth)]).await
    }

    /// `GET path` with `Authorization: DPoP token` and the `DPoP` proof.
    async fn dpop(&self, path: &str, token: &str, proof: &str) -> Reply {
        let auth = format!("DPoP {token}");
        self.get(path, &[("authorization", &auth), ("dpop", proof)])
            .await
    }

    /// `GET path` with `token` and a fresh proof of `key`.
    async fn dpop_fresh(&self, key: &DpopKey, path: &str, token: &str) -> Reply {
        let proof = key.proof("GET", &self.url(path), token).encode();
        self.dpop(path, token, &proof).await
    }
}

/// A refusal with exactly one challenge, in `scheme`: the status, the JSON
/// body of section 2, the realm, `error` with the body's description (or
/// neither when `error` is `None`), and `algs` exactly in a DPoP challenge
/// and never in a Bearer one. Returns the challenge's parameters.
fn assert_challenge(
    reply: &Reply,
    status: u16,
    scheme: &str,
    error: Option<&str>,
    what: &str,
) -> BTreeMap<String, String> {
    assert_eq!(reply.status, status, "{what}: {:?}", text(reply));
    let body = reply.gateway_error(status);
    let fields = reply.header_all("www-authenticate");
    assert_eq!(fields.len(), 1, "{what}: one challenge: {fields:?}");
    let (got_scheme, params) = parse_scheme_challenge(fields[0]);
    assert_eq!(got_scheme, scheme, "{what}: {}", fields[0]);
    assert_eq!(
        params.get("realm").map(String::as_str),
        Some(DEFAULT_REALM),
        "{what}: realm first: {}",
        fields[0]
    );
    assert!(
        fields[0].starts_with(&format!("{scheme} realm=")),
        "{what}: {}",
        fields[0]
    );
    match scheme {
        "DPoP" => assert_eq!(
            params.get("algs").map(String::as_str),
            Some(ALGS),
            "{what}: {}",
            fields[0]
        ),
        _ => assert!(!params.contains_key("algs"), "{what}: {}", fields[0]),
    }
    match error {
        None => {
            assert!(body.get("error").is_none(), "{what}: {body}");
            assert!(!params.contains_key("error"), "{what}: {params:?}");
        }
        Some(code) => {
            assert_eq!(body["error"], code, "{what}: {body}");
            assert_eq!(
                params.get("error").map(String::as_str),
                Some(code),
                "{what}: {params:?}"
            );
            assert_eq!(
                params.get("error_description").map(String::as_str),
                body["error_description"].as_str(),
                "{what}: {params:?}"
            );
        }
    }
    params
}

/// 401 `invalid_dpop_proof` in a DPoP challenge.
fn assert_bad_proof(reply: &Reply, what: &str) {
    assert_challenge(reply, 401, "DPoP", Some("invalid_dpop_proof"), what);
}

/// 401 `invalid_token` in a challenge of `scheme`.
fn assert_invalid(reply: &Reply, scheme: &str, what: &str) {
    assert_challenge(reply, 401, scheme, Some("invalid_token"), what);
}

/// 200 from the echo upstream.
fn assert_ok(reply: &Reply, what: &str) {
    common::assert::assert_forwarded(reply, what);
}
