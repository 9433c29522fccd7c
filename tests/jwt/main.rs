//! JWT enforcement through real sockets (behavior.md sections 2, 3 and 6):
//! every error row of section 2 with its exact status, challenge, body and
//! headers; a table of tampered tokens that must each be refused with
//! `invalid_token`; and signed tokens of every algorithm forwarded with the
//! identity headers their claims produce. Every refusal is also checked at
//! the upstream: it saw nothing.

mod claims;
#[path = "../common/mod.rs"]
mod common;
mod errors;
mod tampered;

use common::assert::{assert_invalid_token_hides, assert_refused, assert_status};
use common::idp::{issuer_table, wait_ready, TestIdp};
use common::mint::{b64, claims, hmac_token, now, replace_segment, segments, with, Alg, Key, AUD};
use common::{
    bearer, closed_port, empty, get_with, request, Client, GatewayConfig, Issuer, Reply, Route,
    Upstream,
};
use http::Request;
use serde_json::{json, Value};
use tokengate::clock::Clock;

const REALM: &str = "tokengate-test";
/// The second audience the `corp` issuer accepts.
const AUD2: &str = "https://other.test";

/// The signing keys of one test: all published except where noted.
struct Keys {
    rs: Key,
    ps: Key,
    ec: Key,
    /// A second EC key, so an ES256 token without kid is ambiguous.
    ec2: Key,
    ed: Key,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            rs: Key::rs256("rs-1"),
            ps: Key::ps256("ps-1"),
            ec: Key::es256("ec-1"),
            ec2: Key::es256("ec-2"),
            ed: Key::eddsa("ed-1"),
        }
    }

    fn all(&self) -> [&Key; 5] {
        [&self.rs, &self.ps, &self.ec, &self.ec2, &self.ed]
    }
}

type Setup = common::Setup<Keys>;

impl Setup {
    /// The `corp` issuer (generic profile, leeway 5 s) and the `strict`
    /// issuer (rfc9068 profile) share the idp's key set; one route
    /// `/api/**` needs a token, `/admin/**` also the scopes `admin ops`.
    async fn start(server_extra: &str, forward_extra: &str) -> Setup {
        Setup::start_with(server_extra, "leeway_s = 5", forward_extra).await
    }

    /// As [`Setup::start`], with `corp_extra` lines in the `corp` table.
    async fn start_with(server_extra: &str, corp_extra: &str, forward_extra: &str) -> Setup {
        Setup::start_on(server_extra, corp_extra, forward_extra, &Clock::system()).await
    }

    /// As [`Setup::start_with`], the gateway on `clock`.
    async fn start_on(
        server_extra: &str,
        corp_extra: &str,
        forward_extra: &str,
        clock: &Clock,
    ) -> Setup {
        let k = Keys::new();
        let idp = TestIdp::with_keys(&k.all()).await;
        let upstream = Upstream::echo().await;
        let gw = GatewayConfig::new()
            .server(&format!("realm = \"{REALM}\"\n{server_extra}"))
            .admin()
            .issuer(issuer_table(
                "corp",
                &idp,
                &format!("audiences = [\"{AUD}\", \"{AUD2}\"]\n{corp_extra}"),
            ))
            .issuer(format!(
                "[issuers.strict]\nissuer = \"{}\"\njwks_uri = \"{}\"\n\
                 audiences = [\"{AUD}\"]\nprofile = \"rfc9068\"\n",
                strict_issuer(&idp),
                idp.jwks_uri()
            ))
            .upstream_with(
                "echo",
                &upstream.url(),
                "timeout_ms = 1000\nconnect_timeout_ms = 1000",
            )
            .upstream_with(
                "dead",
                &format!("http://127.0.0.1:{}", closed_port().await),
                "connect_timeout_ms = 1000",
            )
            .forward(forward_extra)
            .route(Route::new("/admin/**", "echo").scopes(&["admin", "ops"]))
            .route(Route::new("/dead/**", "dead"))
            .route(Route::new("/api/**", "echo"))
            .start_on(clock)
            .await;
        wait_ready(&gw).await;
        Setup {
            idp,
            upstream,
            gw,
            k,
        }
    }

    fn claims(&self) -> Value {
        claims(&self.idp.issuer(), AUD)
    }

    /// `GET path` with `Authorization: Bearer token`.
    async fn call(&self, path: &str, token: &str) -> Reply {
        self.gw.call(path, token).await
    }
}

fn strict_issuer(idp: &TestIdp) -> String {
    format!("{}/strict", idp.base_url())
}

/// A request with these raw `Authorization` values (in order).
fn with_authorization(path: &str, values: &[&[u8]]) -> Request<common::Body> {
    let mut req = request("GET", path);
    for v in values {
        req.headers_mut().append(
            "authorization",
            http::HeaderValue::from_bytes(v).expect("header value"),
        );
    }
    req
}
