//! The identity-provider recipes of `docs/providers.md`, tested as written.
//!
//! Each recipe's TOML block is read from the document by its
//! `<!-- recipe:NAME -->` marker, so the document and the tests cannot
//! drift apart. The host of `issuer` and the whole `jwks_uri` are replaced by
//! a local [`TestIdp`] (which answers discovery under the issuer's path, as
//! the providers do); everything else is used verbatim. Tokens are minted
//! with each provider's header and claims layout as its public
//! documentation describes them, and every recipe is checked to:
//! - accept the provider's token (200) and forward the identity headers its
//!   `[forward]` table names;
//! - refuse a wrong audience with `401 invalid_token`;
//! - answer `403 insufficient_scope` when the route's scope is missing.
//!
//! Token shapes the gateway cannot accept (Cognito access tokens without
//! `aud`, Keycloak's `typ: JWT` under profile `rfc9068`, Okta org-server
//! tokens, opaque Google and Auth0 tokens) are pinned as refusals, with the
//! reason the document gives.

mod auth0_okta;
mod cognito_oidc_provider;
#[path = "../common/mod.rs"]
mod common;
mod entra;
mod keycloak_google;

use common::idp::{wait_ready, TestIdp};
use common::mint::{now, Key};
use common::{assert::assert_status, get_with, Client, Gateway, Reply, Upstream};
use serde_json::{json, Value};
use std::path::Path;
use tokengate::config::Config;

/// The document under test.
const DOC: &str = include_str!("../../docs/providers.md");

/// Every recipe in the document, in document order; each has a test below.
const RECIPES: &[&str] = &[
    "auth0",
    "auth0-rfc9068",
    "okta",
    "entra",
    "entra-v1",
    "keycloak",
    "google",
    "google-legacy-issuer",
    "cognito",
    "oidc-provider",
];

const MARKER: &str = "<!-- recipe:";

/// The TOML block that follows `<!-- recipe:NAME -->`.
fn recipe_block(name: &str) -> &'static str {
    let marker = format!("{MARKER}{name} -->\n```toml\n");
    let start = DOC
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/providers.md has no recipe {name:?}"))
        + marker.len();
    let len = DOC[start..]
        .find("```")
        .unwrap_or_else(|| panic!("recipe {name:?} is not closed"));
    &DOC[start..start + len]
}

/// The names of every recipe marker in the document, in order.
fn recipe_names() -> Vec<&'static str> {
    DOC.match_indices(MARKER)
        .map(|(at, _)| {
            let rest = &DOC[at + MARKER.len()..];
            &rest[..rest.find(" -->").expect("marker is closed")]
        })
        .collect()
}

/// The string value of `key = "..."` on this line, if the line sets `key`.
fn string_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?.trim_start().strip_prefix('=')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    rest.find('"').map(|end| &rest[..end])
}

/// `issuer` moved onto the test IdP: same path (and trailing slash), local
/// origin. An issuer that is not a URL stays as it is.
fn local_issuer(issuer: &str, idp: &TestIdp) -> String {
    match issuer.split_once("://") {
        Some((_, rest)) => {
            let path = rest.find('/').map_or("", |at| &rest[at..]);
            format!("{}{path}", idp.base_url())
        }
        None => issuer.to_string(),
    }
}

/// A recipe's gateway: the block as written, issuer and key set local.
struct Recipe {
    idp: TestIdp,
    upstream: Upstream,
    gw: Gateway,
    /// The issuer tokens must carry (the recipe's, on the test IdP).
    iss: String,
    key: Key,
}

impl Recipe {
    async fn start(name: &str, kid: &str) -> Recipe {
        Recipe::start_with(name, kid, |block| block.to_string(), "").await
    }

    /// As [`Recipe::start`], with the block changed by `edit` (for the
    /// pinned "what if" cases) and `extra` TOML appended (test-only routes).
    async fn start_with(
        name: &str,
        kid: &str,
        edit: impl Fn(&str) -> String,
        extra: &str,
    ) -> Recipe {
        let key = Key::rs256(kid);
        let idp = TestIdp::with_keys(&[&key]).await;
        let upstream = Upstream::echo().await;
        let mut block = String::new();
        let mut iss = None;
        for line in edit(recipe_block(name)).lines() {
            if let Some(issuer) = string_value(line, "issuer") {
                let local = local_issuer(issuer, &idp);
                idp.set_issuer(&local);
                block.push_str(&format!("issuer = \"{local}\"\n"));
                iss = Some(local);
            } else if string_value(line, "jwks_uri").is_some() {
                block.push_str(&format!("jwks_uri = \"{}\"\n", idp.jwks_uri()));
            } else {
                block.push_str(line);
                block.push('\n');
            }
        }
        let iss = iss.unwrap_or_else(|| panic!("recipe {name:?} has no issuer"));
        let toml = format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n\n{block}\n{extra}\n[upstreams.api]\nurl = \"{}\"\n",
            upstream.url()
        );
        let gw = Gateway::start(&toml).await;
        wait_ready(&gw).await;
        Recipe {
            idp,
            upstream,
            gw,
            iss,
            key,
        }
    }

    /// The recipe's issuer has the provider's documented shape: this path
    /// (trailing slash included) after the origin.
    fn assert_issuer_path(&self, path: &str) {
        assert_eq!(self.iss, format!("{}{path}", self.idp.base_url()));
    }

    /// A token with exactly this header and these claims, signed by the
    /// recipe's key.
    fn mint(&self, header: &Value, claims: &Value) -> String {
        let header = header.as_object().expect("header object").clone();
        self.key.jwt(claims).header_object(header).encode()
    }

    async fn call(&self, path: &str, token: &str) -> Reply {
        let req = get_with(path, &[("authorization", &format!("Bearer {token}"))]);
        self.gw.send(&Client::h1(), req).await
    }

    /// 200, and the upstream saw exactly these identity headers (`None`:
    /// absent).
    async fn accepts(&self, token: &str, headers: &[(&str, Option<&str>)]) {
        let reply = self.call("/orders/1", token).await;
        assert_status(&reply, 200, "");
        let seen = self.upstream.last();
        for (name, value) in headers {
            assert_eq!(seen.header(name), *value, "header {name}");
        }
    }

    /// `status` with this `error` and description; nothing forwarded.
    async fn refuses_at(&self, path: &str, token: &str, status: u16, error: &str) -> Value {
        let before = self.upstream.hits();
        let reply = self.call(path, token).await;
        let body = reply.gateway_error(status);
        assert_eq!(body["error"], error, "{body}");
        let challenge = reply.header("www-authenticate").expect("challenge");
        assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{challenge}"
        );
        assert_eq!(
            self.upstream.hits(),
            before,
            "a refusal reached the upstream"
        );
        body
    }

    /// 401 `invalid_token` with this description.
    async fn refuses(&self, token: &str, description: &str) {
        let body = self
            .refuses_at("/orders/1", token, 401, "invalid_token")
            .await;
        assert_eq!(body["error_description"], description, "{body}");
    }

    /// 401 `invalid_token`, whatever the reason.
    async fn refuses_token(&self, token: &str) {
        self.refuses_at("/orders/1", token, 401, "invalid_token")
            .await;
    }

    /// 403 `insufficient_scope` on `path`.
    async fn forbids_at(&self, path: &str, token: &str) {
        self.refuses_at(path, token, 403, "insufficient_scope")
            .await;
    }

    async fn forbids(&self, token: &str) {
        self.forbids_at("/orders/1", token).await;
    }
}

/// `claims` with each member of `changes` set, or removed when `null`.
fn with(claims: &Value, changes: Value) -> Value {
    common::mint::with(claims, changes)
}

/// `iat`, `nbf` and `exp` of a token issued now for an hour.
fn times() -> (i64, i64) {
    let t = now();
    (t, t + 3600)
}

#[test]
fn every_recipe_in_the_document_is_tested() {
    assert_eq!(recipe_names(), RECIPES);
}

#[test]
fn every_recipe_loads_as_written() {
    for name in RECIPES {
        let toml = format!(
            "{}\n[upstreams.api]\nurl = \"http://127.0.0.1:8081\"\n",
            recipe_block(name)
        );
        if let Err(e) = Config::from_toml(&toml, Path::new("."), Vec::new()) {
            panic!("recipe {name} does not load:\n{e}\n---\n{toml}");
        }
    }
}
