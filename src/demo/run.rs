//! The demo's wiring: the embedded configuration pointed at the demo
//! issuer and echo upstream on the ports after the gateway's, both started
//! next to the gateway, and the instructions printed once it is ready.
//! The binary binds the sockets and holds its logs until then.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use super::issuer::Issuer;
use crate::config::{Config, ConfigErrors};
use crate::gateway::{self, Listeners};
use crate::runtime::{self, Runtime, SharedRuntime};

/// `config/demo.toml`, compiled in.
pub const CONFIG: &str = include_str!("../../config/demo.toml");

/// The demo's three loopback ports: N, N+1, N+2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub gateway: u16,
    pub issuer: u16,
    pub upstream: u16,
}

impl Ports {
    pub fn from_gateway(port: u16) -> Result<Ports, &'static str> {
        match (port.checked_add(1), port.checked_add(2)) {
            (Some(issuer), Some(upstream)) => Ok(Ports {
                gateway: port,
                issuer,
                upstream,
            }),
            _ => Err("--port is too high: the demo uses N, N+1 and N+2"),
        }
    }

    fn issuer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.issuer)
    }
}

/// The embedded configuration, pointed at `ports` through the same
/// environment overrides a user would set.
pub fn config(ports: &Ports) -> Result<Config, ConfigErrors> {
    let issuer = ports.issuer_url();
    let env = [
        ("SERVER__LISTEN", format!("127.0.0.1:{}", ports.gateway)),
        ("ISSUERS__DEMO__ISSUER", issuer.clone()),
        ("ISSUERS__DEMO__JWKS_URI", format!("{issuer}/jwks")),
        (
            "ISSUERS__DEMO__INTROSPECTION__ENDPOINT",
            format!("{issuer}/introspect"),
        ),
        (
            "UPSTREAMS__ECHO__URL",
            format!("http://127.0.0.1:{}", ports.upstream),
        ),
        (
            "UPSTREAMS__BILLING__URL",
            format!("http://127.0.0.1:{}", ports.upstream),
        ),
        (
            "UPSTREAMS__BILLING__OAUTH__TOKEN_ENDPOINT",
            format!("{issuer}/token"),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (format!("TOKENGATE_{key}"), value))
    .collect();
    Config::from_toml(CONFIG, Path::new("."), env)
}

/// The sockets of the demo, bound by the caller.
pub struct DemoListeners {
    pub gateway: TcpListener,
    pub issuer: TcpListener,
    pub upstream: TcpListener,
}

/// Serves the demo issuer, the echo upstream and the gateway until
/// `shutdown`; `ready` is called once, with whether the gateway has the
/// demo issuer's keys (within five seconds), and stops the demo if it
/// fails.
pub async fn serve(
    rt: Runtime,
    ports: &Ports,
    listeners: DemoListeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(bool) -> Result<(), String>,
) -> Result<(), String> {
    let dpop = rt
        .config
        .dpop
        .as_ref()
        .ok_or("the demo configuration has no [dpop] table")?;
    let issuer =
        Arc::new(Issuer::new(ports.issuer_url(), dpop).map_err(|e| format!("demo issuer: {e}"))?);
    tokio::spawn(super::issuer::serve(
        issuer,
        listeners.issuer,
        std::future::pending(),
    ));
    tokio::spawn(super::echo::serve(
        listeners.upstream,
        std::future::pending(),
    ));
    let shared = runtime::shared(rt);
    let serving = tokio::spawn(gateway::serve(
        shared.clone(),
        Listeners {
            gateway: listeners.gateway,
            admin: None,
            workers: Vec::new(),
        },
        shutdown,
    ));
    let is_ready = wait_ready(&shared).await;
    ready(is_ready)?;
    if !is_ready {
        return Err("the demo issuer's keys could not be loaded".into());
    }
    serving
        .await
        .map_err(|e| format!("the gateway task failed: {e}"))
}

/// Waits (bounded) until the gateway has the demo issuer's keys.
async fn wait_ready(shared: &SharedRuntime) -> bool {
    for _ in 0..200 {
        if shared.load().not_ready().is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// What to paste into another terminal, for a gateway on `port`; `exe` is
/// this binary, which makes the DPoP proofs (`tokengate dpop-proof`).
pub fn instructions(port: u16, exe: &str) -> String {
    let gw = format!("http://127.0.0.1:{port}");
    let idp = format!("http://127.0.0.1:{}", port + 1);
    let access_token = r#"sed -E 's/.*"access_token":"([^"]+)".*/\1/'"#;
    let token = |client: &str, secret: &str| {
        format!("curl -s -u {client}:{secret} -d grant_type=client_credentials {idp}/token | {access_token}")
    };
    let proof = |method: &str, url: &str, token: &str| {
        format!("$(\"$TG\" dpop-proof --key {DPOP_KEY_FILE} --method {method} --url {url}{token})")
    };
    format!(
        "tokengate demo: gateway {gw}, development issuer {idp}, echo upstream on port {up}
Development only. Paste these into another terminal:

  # 1. get a token for client demo-reader (scope orders:read)
  TOKEN=$({reader})
  # expect 200: a route the token's scope allows; the upstream's echo shows x-auth-* headers
  curl -i -w '\\n' -H \"Authorization: Bearer $TOKEN\" {gw}/api/orders/42
  # expect 403 insufficient_scope: writing needs orders:write
  curl -i -w '\\n' -X POST -H \"Authorization: Bearer $TOKEN\" {gw}/api/orders
  # expect 401: no token
  curl -i -w '\\n' {gw}/api/orders/42
  # expect 401 invalid_token: a tampered token
  curl -i -w '\\n' -H \"Authorization: Bearer ${{TOKEN}}x\" {gw}/api/orders/42
  # 2. an opaque token (client demo-opaque), checked by introspection
  OPAQUE=$({opaque})
  # expect 200
  curl -i -w '\\n' -H \"Authorization: Bearer $OPAQUE\" {gw}/api/reports/today
  # expect 200: a public route
  curl -i -w '\\n' {gw}/public/hello
  # 3. a DPoP-bound token (RFC 9449): every request proves the key the token is bound to.
  #    This binary makes the proofs, one per request; its key is created in {DPOP_KEY_FILE}.
  TG={tg}
  DPOP_TOKEN=$(curl -s -u demo-reader:reader-secret -d grant_type=client_credentials -H \"DPoP: {token_proof}\" {idp}/token | {access_token})
  # expect 200: Authorization: DPoP with a fresh proof for this request and token
  curl -i -w '\\n' -H \"Authorization: DPoP $DPOP_TOKEN\" -H \"DPoP: {call_proof}\" {gw}/api/dpop/42
  # expect 401 invalid_token: the same token as a bearer token
  curl -i -w '\\n' -H \"Authorization: Bearer $DPOP_TOKEN\" {gw}/api/dpop/42
  # 4. upstream credentials: this upstream gets the gateway's own token (client demo-gateway,
  #    from the issuer's token endpoint), never yours; the echo's token_claims show which arrived
  # expect 200
  curl -i -w '\\n' -H \"Authorization: Bearer $TOKEN\" {gw}/api/billing/invoices
  # the issuer also exchanges a caller's token (RFC 8693), for grant = \"token_exchange\":
  curl -s -w '\\n' -u demo-gateway:gateway-secret -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange -d subject_token=$TOKEN -d subject_token_type=urn:ietf:params:oauth:token-type:access_token {idp}/token

Other clients: demo-writer / writer-secret (orders:read orders:write); demo-gateway / gateway-secret
(the gateway's own: billing:read, and token exchange).
Press Ctrl-C to stop.",
        up = port + 2,
        reader = token("demo-reader", "reader-secret"),
        opaque = token("demo-opaque", "opaque-secret"),
        tg = shell_word(exe),
        token_proof = proof("POST", &format!("{idp}/token"), ""),
        call_proof = proof(
            "GET",
            &format!("{gw}/api/dpop/42"),
            " --token \"$DPOP_TOKEN\""
        ),
    )
}

/// The key file of the printed DPoP commands, in the shell's directory.
const DPOP_KEY_FILE: &str = "demo-dpop-key.pem";

/// `text` as one shell word: as it is when it has only safe characters,
/// else in single quotes.
fn shell_word(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_word_quotes_only_what_needs_it() {
        let cases = [
            ("/usr/local/bin/tokengate", "/usr/local/bin/tokengate"),
            ("/home/a b/tokengate", "'/home/a b/tokengate'"),
            ("/x/it's", r"'/x/it'\''s'"),
            ("", "''"),
        ];
        for (text, want) in cases {
            assert_eq!(shell_word(text), want, "{text}");
        }
    }
}
