//! HTTP/2 and gRPC upstreams (extensions section 13) with real gRPC on both
//! sides: tonic's client calls tonic's server through the gateway, which
//! checks a JWT and forwards over h2c to an upstream with
//! `protocol = "h2"`.
//!
//! | module | what a user depends on |
//! |---|---|
//! | `direct` | the fixture itself: tonic client to tonic server, no gateway |
//! | `calls` | the four call kinds, metadata and trailers end to end, header hygiene |
//! | `refusals` | each refusal as the gRPC status the client reports, the upstream untouched |
//! | `streams` | deadlines, an upstream that aborts or resets mid-call, long-lived streams |
//! | `load` | GOAWAY under load without failed calls, multiplexing onto few connections |
//! | `versions` | HTTP/1.1 clients to h2 upstreams and h2 clients to HTTP/1.1 upstreams |
//!
//! The upstream is [`fixture::EchoUpstream`], the service `test.Echo`
//! ([`echo`]). Every network wait is bounded by [`common::within`]; a test
//! sleeps only where time passing is the behaviour under test.

#[path = "../common/mod.rs"]
mod common;

mod calls;
mod direct;
mod echo;
mod fixture;
mod load;
mod refusals;
mod streams;
mod versions;

use common::idp::{issuer_table, wait_ready, TestIdp};
use common::mint::{claims, with, Key, AUD};
use common::{closed_port, Gateway, GatewayConfig, Route};
use echo::EchoClient;
use fixture::{channel, EchoUpstream};
use serde_json::json;

/// The scope the `test.Echo` route requires.
const SCOPE: &str = "echo";

/// A gateway in front of a tonic upstream, with the issuer of its tokens.
struct Grpc {
    idp: TestIdp,
    key: Key,
    echo: EchoUpstream,
    gw: Gateway,
}

impl Grpc {
    async fn start() -> Grpc {
        Grpc::start_with("").await
    }

    /// The `corp` issuer; `[upstreams.grpc]` (`protocol = "h2"` and
    /// `upstream_lines`) at a new [`EchoUpstream`]; routes `/test.Echo/**`
    /// to it needing the scope [`SCOPE`], and `/test.Down/**` to an h2
    /// upstream nothing listens on. Waits until the keys are loaded.
    async fn start_with(upstream_lines: &str) -> Grpc {
        let key = Key::es256("grpc-1");
        let idp = TestIdp::with_keys(&[&key]).await;
        let echo = EchoUpstream::start().await;
        let down = format!("http://127.0.0.1:{}", closed_port().await);
        let h2 = format!("protocol = \"h2\"\n{upstream_lines}");
        let gw = GatewayConfig::new()
            .admin()
            .issuer(issuer_table("corp", &idp, ""))
            .upstream_with("grpc", &echo.url(), &h2)
            .upstream_with("down", &down, "protocol = \"h2\"")
            .route(Route::new("/test.Echo/**", "grpc").scopes(&[SCOPE]))
            .route(Route::new("/test.Down/**", "down").scopes(&[SCOPE]))
            .start()
            .await;
        wait_ready(&gw).await;
        Grpc { idp, key, echo, gw }
    }

    /// A valid token with the scope [`SCOPE`].
    fn token(&self) -> String {
        self.token_with_scope(SCOPE)
    }

    fn token_with_scope(&self, scope: &str) -> String {
        let claims = with(&claims(&self.idp.issuer(), AUD), json!({ "scope": scope }));
        self.key.token(&claims)
    }

    /// A tonic client on a new connection to the gateway.
    async fn client(&self) -> EchoClient {
        EchoClient::new(channel(self.gw.addr()).await)
    }
}
