//! The development issuer of `tokengate demo` (docs/behavior.md section 10):
//! an OAuth 2.0 token endpoint for the `client_credentials` grant (RFC 6749
//! section 4.4) and RFC 8693 token exchange ([`exchange`]), issuing ES256
//! JWT access tokens in the RFC 9068 shape, opaque
//! tokens for one client with an RFC 7662 introspection endpoint, a
//! discovery document and the JWKS. A token request with a DPoP proof gets a
//! DPoP-bound token (RFC 9449 section 5). Development only: fixed demo
//! clients, an in-memory token store, a key generated at start, loopback
//! only.
//!
//! This module holds the issuer's state and its two endpoints' logic;
//! [`clients`] authenticates a client, [`form`] reads form bodies,
//! [`proof`] checks DPoP proofs and [`wire`] answers requests and serves
//! them.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, StatusCode};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::DpopConfig;

mod clients;
mod exchange;
mod form;
mod proof;
mod wire;

pub use clients::{Client, CLIENTS};
pub use wire::serve;

/// The audience of every demo token (`config/demo.toml` trusts it).
pub const AUDIENCE: &str = "tokengate-demo-api";
const TOKEN_LIFETIME_S: u64 = 3600;

struct OpaqueToken {
    client_id: &'static str,
    scope: String,
    iat: u64,
    exp: u64,
    /// The DPoP key's thumbprint, for a bound token.
    jkt: Option<String>,
}

/// The issuer's state: its signing key and the opaque tokens it issued.
pub struct Issuer {
    base_url: String,
    /// The P-256 private key, for `jsonwebtoken::encode`.
    key: EncodingKey,
    /// The public point, `x || y` (32 bytes each), for the JWKS.
    public: Vec<u8>,
    kid: String,
    opaque: Mutex<HashMap<String, OpaqueToken>>,
    proofs: proof::TokenProofs,
}

/// An RFC 6749 section 5.2 error.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: &'static str,
}

fn oauth_error(code: &'static str, description: &'static str) -> OAuthError {
    let status = if code == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    OAuthError {
        status,
        code,
        description,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_b64(bytes: usize) -> String {
    let buf: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(buf)
}

/// The scope a token gets: everything the client may have, or the
/// `requested` scope when the client may have all of it (else
/// `invalid_scope`).
fn granted_scope(client: &Client, requested: Option<&String>) -> Result<String, OAuthError> {
    let allowed = client.scopes.ok_or(oauth_error(
        "unauthorized_client",
        "this client may not obtain tokens",
    ))?;
    let Some(requested) = requested else {
        return Ok(allowed.to_string());
    };
    let ok = requested
        .split(' ')
        .all(|s| !s.is_empty() && allowed.split(' ').any(|a| a == s));
    if !ok {
        return Err(oauth_error(
            "invalid_scope",
            "a requested scope is not allowed for this client",
        ));
    }
    Ok(requested.clone())
}

impl Issuer {
    /// A new issuer whose URLs start with `base_url` (no trailing `/`),
    /// accepting DPoP proofs as `dpop` says (without nonces).
    pub fn new(base_url: String, dpop: &DpopConfig) -> Result<Issuer, String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| e.to_string())?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|e| e.to_string())?;
        Ok(Issuer {
            proofs: proof::TokenProofs::new(dpop, format!("{base_url}/token")),
            base_url,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            public: pair.public_key().as_ref()[1..].to_vec(),
            kid: format!("demo-{}", &random_b64(6)),
            opaque: Mutex::new(HashMap::new()),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.base_url
    }

    fn jwks(&self) -> Value {
        let (x, y) = self.public.split_at(32);
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }]})
    }

    fn discovery(&self) -> Value {
        let b = &self.base_url;
        json!({
            "issuer": b,
            "token_endpoint": format!("{b}/token"),
            "jwks_uri": format!("{b}/jwks"),
            "introspection_endpoint": format!("{b}/introspect"),
            "grant_types_supported": ["client_credentials", exchange::GRANT],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["orders:read", "orders:write"],
            "dpop_signing_alg_values_supported": self.proofs.algorithms(),
        })
    }

    /// The claims of an access token (RFC 9068 section 2.2) for `sub`,
    /// issued to `client`.
    fn claims(&self, sub: &str, client: &Client, scope: &str, iat: u64, exp: u64) -> Value {
        json!({
            "iss": self.base_url, "aud": AUDIENCE, "sub": sub, "client_id": client.id,
            "scope": scope, "iat": iat, "exp": exp, "jti": random_b64(16),
        })
    }

    /// Signs `claims` as an `at+jwt`.
    fn sign(&self, claims: &Value) -> Result<String, OAuthError> {
        let header = Header {
            typ: Some("at+jwt".into()),
            kid: Some(self.kid.clone()),
            ..Header::new(jsonwebtoken::Algorithm::ES256)
        };
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|_| oauth_error("server_error", "signing failed"))
    }

    /// A JWT access token; bound to the DPoP key `jkt` when given.
    fn sign_jwt(
        &self,
        client: &Client,
        scope: &str,
        jkt: Option<&str>,
    ) -> Result<String, OAuthError> {
        let iat = now();
        let mut claims = self.claims(client.id, client, scope, iat, iat + TOKEN_LIFETIME_S);
        if let Some(jkt) = jkt {
            claims["cnf"] = json!({ "jkt": jkt });
        }
        self.sign(&claims)
    }

    async fn token(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<Value, OAuthError> {
        let grant = form
            .get("grant_type")
            .ok_or(oauth_error("invalid_request", "grant_type is required"))?;
        let client = clients::authenticate(headers, form)?;
        if grant == exchange::GRANT {
            return self.exchange(client, form);
        }
        if grant != "client_credentials" {
            return Err(oauth_error(
                "unsupported_grant_type",
                "only client_credentials and token exchange are supported",
            ));
        }
        let scope = granted_scope(client, form.get("scope"))?;
        let proof = self.proofs.check(headers)?;
        if let Some(proof) = &proof {
            self.proofs.remember(proof).await?;
        }
        let jkt = proof.as_ref().map(|p| p.jkt());
        let access_token = match client.opaque {
            true => self.store_opaque(client, &scope, jkt),
            false => self.sign_jwt(client, &scope, jkt)?,
        };
        Ok(json!({
            "access_token": access_token,
            "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": TOKEN_LIFETIME_S,
            "scope": scope,
        }))
    }

    /// A new opaque token, kept for introspection until it expires.
    fn store_opaque(&self, client: &Client, scope: &str, jkt: Option<&str>) -> String {
        let token = random_b64(32);
        let iat = now();
        let record = OpaqueToken {
            client_id: client.id,
            scope: scope.to_string(),
            iat,
            exp: iat + TOKEN_LIFETIME_S,
            jkt: jkt.map(str::to_string),
        };
        if let Ok(mut store) = self.opaque.lock() {
            store.retain(|_, t| t.exp > iat);
            store.insert(token.clone(), record);
        }
        token
    }

    fn introspect(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<Value, OAuthError> {
        let client = clients::authenticate(headers, form)?;
        if !client.introspects {
            return Err(oauth_error(
                "unauthorized_client",
                "this client may not introspect",
            ));
        }
        let token = form
            .get("token")
            .ok_or(oauth_error("invalid_request", "token is required"))?;
        let store = self
            .opaque
            .lock()
            .map_err(|_| oauth_error("server_error", "store unavailable"))?;
        let Some(t) = store.get(token).filter(|t| t.exp > now()) else {
            return Ok(json!({"active": false}));
        };
        let mut answer = json!({
            "active": true, "scope": t.scope, "client_id": t.client_id, "sub": t.client_id,
            "iss": self.base_url, "aud": AUDIENCE, "iat": t.iat, "exp": t.exp, "token_type": "Bearer",
        });
        if let Some(jkt) = &t.jkt {
            answer["token_type"] = "DPoP".into();
            answer["cnf"] = json!({ "jkt": jkt });
        }
        Ok(answer)
    }
}

/// An issuer at a made-up loopback URL, for unit tests.
#[cfg(test)]
fn test_issuer() -> Issuer {
    use crate::config::Algorithm;
    use std::time::Duration;
    let dpop = DpopConfig {
        algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
        max_age: Duration::from_secs(300),
        leeway: Duration::from_secs(5),
        // Ignored: the issuer issues no nonces.
        require_nonce: true,
        nonce_ttl: Duration::from_secs(300),
        replay_cache_size: 100,
    };
    Issuer::new("http://127.0.0.1:1".into(), &dpop).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::http::HeaderValue;
    use base64::engine::general_purpose::STANDARD;

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
        h.insert(
            ::http::header::AUTHORIZATION,
            HeaderValue::from_str(&v).unwrap(),
        );
        h
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn token_error_table() {
        let issuer = test_issuer();
        let cc = ("grant_type", "client_credentials");
        let cases: Vec<(HeaderMap, HashMap<String, String>, &str)> = vec![
            (
                basic("demo-reader", "reader-secret"),
                form(&[]),
                "invalid_request",
            ),
            (basic("demo-reader", "wrong"), form(&[cc]), "invalid_client"),
            (HeaderMap::new(), form(&[cc]), "invalid_client"),
            (
                basic("demo-reader", "reader-secret"),
                form(&[
                    cc,
                    ("client_id", "demo-reader"),
                    ("client_secret", "reader-secret"),
                ]),
                "invalid_request",
            ),
            (
                basic("demo-reader", "reader-secret"),
                form(&[("grant_type", "password")]),
                "unsupported_grant_type",
            ),
            (
                basic("tokengate", "introspect-secret"),
                form(&[cc]),
                "unauthorized_client",
            ),
            (
                basic("demo-reader", "reader-secret"),
                form(&[cc, ("scope", "orders:write")]),
                "invalid_scope",
            ),
        ];
        for (headers, f, code) in cases {
            let err = issuer.token(&headers, &f).await.err().map(|e| e.code);
            assert_eq!(err, Some(code), "{f:?}");
        }
    }

    #[tokio::test]
    async fn token_form_authentication_and_scope() {
        let issuer = test_issuer();
        let f = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-writer"),
            ("client_secret", "writer-secret"),
            ("scope", "orders:read"),
        ]);
        let v = issuer.token(&HeaderMap::new(), &f).await.unwrap();
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["scope"], "orders:read");
        assert_eq!(v["access_token"].as_str().unwrap().split('.').count(), 3);
    }

    /// RFC 8693: the gateway's client exchanges a caller's token for one of
    /// the same subject, itself the actor; anything else is refused.
    #[tokio::test]
    async fn token_exchange_keeps_the_subject_and_names_the_actor() {
        let issuer = test_issuer();
        let cc = form(&[("grant_type", "client_credentials")]);
        let caller = issuer
            .token(&basic("demo-reader", "reader-secret"), &cc)
            .await
            .unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let type_at = "urn:ietf:params:oauth:token-type:access_token";
        let exchange = |token: &str, client: (&str, &str)| {
            let f = form(&[
                ("grant_type", exchange::GRANT),
                ("subject_token", token),
                ("subject_token_type", type_at),
            ]);
            let h = basic(client.0, client.1);
            let issuer = &issuer;
            async move { issuer.token(&h, &f).await }
        };
        let v = exchange(&caller, ("demo-gateway", "gateway-secret"))
            .await
            .unwrap();
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["issued_token_type"], type_at);
        let payload = v["access_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["sub"], "demo-reader");
        assert_eq!(claims["client_id"], "demo-gateway");
        assert_eq!(claims["act"], json!({"sub": "demo-gateway"}));

        let refused = [
            (
                format!("{caller}x"),
                ("demo-gateway", "gateway-secret"),
                "invalid_grant",
            ),
            (
                "nope".to_string(),
                ("demo-gateway", "gateway-secret"),
                "invalid_grant",
            ),
            (
                caller.clone(),
                ("demo-reader", "reader-secret"),
                "unauthorized_client",
            ),
        ];
        for (token, client, code) in refused {
            let err = exchange(&token, client).await.err().map(|e| e.code);
            assert_eq!(err, Some(code), "{client:?}");
        }
    }

    #[tokio::test]
    async fn introspect_knows_opaque_tokens_only_while_valid() {
        let issuer = test_issuer();
        let f = form(&[("grant_type", "client_credentials")]);
        let token = issuer
            .token(&basic("demo-opaque", "opaque-secret"), &f)
            .await
            .unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(!token.contains('.'));
        let gw = basic("tokengate", "introspect-secret");
        let active = issuer.introspect(&gw, &form(&[("token", &token)])).unwrap();
        assert_eq!(active["active"], true);
        assert_eq!(active["scope"], "orders:read");
        let unknown = issuer.introspect(&gw, &form(&[("token", "nope")])).unwrap();
        assert_eq!(unknown, json!({"active": false}));
        let refused = issuer.introspect(
            &basic("demo-reader", "reader-secret"),
            &form(&[("token", &token)]),
        );
        assert_eq!(refused.err().map(|e| e.code), Some("unauthorized_client"));
    }
}
