//! The development issuer of `tokengate demo` (docs/behavior.md section 10):
//! an OAuth 2.0 token endpoint for the `client_credentials` grant (RFC 6749
//! section 4.4) issuing ES256 JWT access tokens in the RFC 9068 shape, opaque
//! tokens for one client with an RFC 7662 introspection endpoint, a
//! discovery document and the JWKS. Development only: fixed demo clients, an
//! in-memory token store, a key generated at start, loopback only.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// The audience of every demo token (`config/demo.toml` trusts it).
pub const AUDIENCE: &str = "tokengate-demo-api";
const TOKEN_LIFETIME_S: u64 = 3600;
const MAX_FORM_BYTES: usize = 16 * 1024;

/// A registered demo client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: &'static str,
    pub secret: &'static str,
    /// Scopes it may request; `None`: it may not use the token endpoint.
    pub scopes: Option<&'static str>,
    /// Issues opaque (introspectable) tokens instead of JWTs.
    pub opaque: bool,
    /// May call the introspection endpoint.
    pub introspects: bool,
}

/// The demo's clients, printed by `tokengate demo`.
pub const CLIENTS: &[Client] = &[
    Client {
        id: "demo-reader",
        secret: "reader-secret",
        scopes: Some("orders:read"),
        opaque: false,
        introspects: false,
    },
    Client {
        id: "demo-writer",
        secret: "writer-secret",
        scopes: Some("orders:read orders:write"),
        opaque: false,
        introspects: false,
    },
    Client {
        id: "demo-opaque",
        secret: "opaque-secret",
        scopes: Some("orders:read"),
        opaque: true,
        introspects: false,
    },
    Client {
        id: "tokengate",
        secret: "introspect-secret",
        scopes: None,
        opaque: false,
        introspects: true,
    },
];

struct OpaqueToken {
    client_id: &'static str,
    scope: String,
    iat: u64,
    exp: u64,
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

/// Decodes one `application/x-www-form-urlencoded` component.
pub fn form_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = value
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Parses a form body; a parameter given twice is an error (RFC 6749 3.1).
fn parse_form(body: &[u8]) -> Option<HashMap<String, String>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut form = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if form.insert(form_decode(k)?, form_decode(v)?).is_some() {
            return None;
        }
    }
    Some(form)
}

impl Issuer {
    /// A new issuer whose URLs start with `base_url` (no trailing `/`).
    pub fn new(base_url: String) -> Result<Issuer, String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| e.to_string())?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|e| e.to_string())?;
        Ok(Issuer {
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
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["orders:read", "orders:write"],
        })
    }

    fn sign_jwt(&self, client: &Client, scope: &str) -> Result<String, OAuthError> {
        let iat = now();
        let header = Header {
            typ: Some("at+jwt".into()),
            kid: Some(self.kid.clone()),
            ..Header::new(jsonwebtoken::Algorithm::ES256)
        };
        let claims = json!({
            "iss": self.base_url, "aud": AUDIENCE, "sub": client.id, "client_id": client.id,
            "scope": scope, "iat": iat, "exp": iat + TOKEN_LIFETIME_S, "jti": random_b64(16),
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|_| oauth_error("server_error", "signing failed"))
    }

    /// The client authenticated by HTTP Basic or by form fields (not both).
    fn authenticate(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<&'static Client, OAuthError> {
        let basic = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            });
        let in_form = form.contains_key("client_secret");
        let (id, secret) = match (basic, in_form) {
            (Some(_), true) => {
                return Err(oauth_error(
                    "invalid_request",
                    "use one client authentication method",
                ))
            }
            (Some(b64), false) => {
                let decoded = STANDARD
                    .decode(b64.trim())
                    .ok()
                    .and_then(|d| String::from_utf8(d).ok());
                let (id, secret) = decoded
                    .as_deref()
                    .and_then(|d| d.split_once(':'))
                    .and_then(|(i, s)| Some((form_decode(i)?, form_decode(s)?)))
                    .ok_or(oauth_error(
                        "invalid_client",
                        "malformed client credentials",
                    ))?;
                (id, secret)
            }
            (None, true) => (
                form.get("client_id").cloned().unwrap_or_default(),
                form.get("client_secret").cloned().unwrap_or_default(),
            ),
            (None, false) => {
                return Err(oauth_error(
                    "invalid_client",
                    "client authentication is required",
                ))
            }
        };
        CLIENTS
            .iter()
            .find(|c| c.id == id && c.secret == secret)
            .ok_or(oauth_error(
                "invalid_client",
                "unknown client or wrong secret",
            ))
    }

    fn token(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<Value, OAuthError> {
        let grant = form
            .get("grant_type")
            .ok_or(oauth_error("invalid_request", "grant_type is required"))?;
        let client = self.authenticate(headers, form)?;
        if grant != "client_credentials" {
            return Err(oauth_error(
                "unsupported_grant_type",
                "only client_credentials is supported",
            ));
        }
        let allowed = client.scopes.ok_or(oauth_error(
            "unauthorized_client",
            "this client may not obtain tokens",
        ))?;
        let scope = match form.get("scope") {
            None => allowed.to_string(),
            Some(requested) => {
                let ok = requested
                    .split(' ')
                    .all(|s| !s.is_empty() && allowed.split(' ').any(|a| a == s));
                if !ok {
                    return Err(oauth_error(
                        "invalid_scope",
                        "a requested scope is not allowed for this client",
                    ));
                }
                requested.clone()
            }
        };
        let access_token = if client.opaque {
            let token = random_b64(32);
            let iat = now();
            let record = OpaqueToken {
                client_id: client.id,
                scope: scope.clone(),
                iat,
                exp: iat + TOKEN_LIFETIME_S,
            };
            if let Ok(mut store) = self.opaque.lock() {
                store.retain(|_, t| t.exp > iat);
                store.insert(token.clone(), record);
            }
            token
        } else {
            self.sign_jwt(client, &scope)?
        };
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
            "scope": scope,
        }))
    }

    fn introspect(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<Value, OAuthError> {
        let client = self.authenticate(headers, form)?;
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
        Ok(match store.get(token).filter(|t| t.exp > now()) {
            Some(t) => json!({
                "active": true, "scope": t.scope, "client_id": t.client_id, "sub": t.client_id,
                "iss": self.base_url, "aud": AUDIENCE, "iat": t.iat, "exp": t.exp, "token_type": "Bearer",
            }),
            None => json!({"active": false}),
        })
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        match (&parts.method, parts.uri.path()) {
            (&Method::GET, "/.well-known/openid-configuration") => {
                json_response(StatusCode::OK, &self.discovery())
            }
            (&Method::GET, "/jwks") => json_response(StatusCode::OK, &self.jwks()),
            (&Method::POST, path @ ("/token" | "/introspect")) => {
                let body = Limited::new(body, MAX_FORM_BYTES)
                    .collect()
                    .await
                    .map(|b| b.to_bytes());
                let form = body.ok().as_deref().and_then(parse_form);
                let result = match form {
                    None => Err(oauth_error(
                        "invalid_request",
                        "the body must be a form without repeated parameters",
                    )),
                    Some(form) if path == "/token" => self.token(&parts.headers, &form),
                    Some(form) => self.introspect(&parts.headers, &form),
                };
                match result {
                    Ok(v) => json_response(StatusCode::OK, &v),
                    Err(e) => error_response(&e),
                }
            }
            _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn error_response(e: &OAuthError) -> Response<Full<Bytes>> {
    let mut resp = json_response(
        e.status,
        &json!({"error": e.code, "error_description": e.description}),
    );
    if e.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tokengate-demo\""),
        );
    }
    resp
}

/// Serves the issuer on `listener` (which must be loopback) until `shutdown`.
pub async fn serve(issuer: Arc<Issuer>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let accept = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let issuer = issuer.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let issuer = issuer.clone();
                    async move { Ok::<_, Infallible>(issuer.answer(req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
        h.insert(
            http::header::AUTHORIZATION,
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

    #[test]
    fn token_error_table() {
        let issuer = Issuer::new("http://127.0.0.1:1".into()).unwrap();
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
            let err = issuer.token(&headers, &f).err().map(|e| e.code);
            assert_eq!(err, Some(code), "{f:?}");
        }
    }

    #[test]
    fn token_form_authentication_and_scope() {
        let issuer = Issuer::new("http://127.0.0.1:1".into()).unwrap();
        let f = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-writer"),
            ("client_secret", "writer-secret"),
            ("scope", "orders:read"),
        ]);
        let v = issuer.token(&HeaderMap::new(), &f).unwrap();
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["scope"], "orders:read");
        assert_eq!(v["access_token"].as_str().unwrap().split('.').count(), 3);
    }

    #[test]
    fn introspect_knows_opaque_tokens_only_while_valid() {
        let issuer = Issuer::new("http://127.0.0.1:1".into()).unwrap();
        let f = form(&[("grant_type", "client_credentials")]);
        let token = issuer
            .token(&basic("demo-opaque", "opaque-secret"), &f)
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

    #[test]
    fn parse_form_decodes_and_refuses_repeats() {
        let f = parse_form(b"a=1+2&b=%41%2B&c=").unwrap();
        assert_eq!(f["a"], "1 2");
        assert_eq!(f["b"], "A+");
        assert_eq!(f["c"], "");
        assert!(parse_form(b"a=1&a=2").is_none());
        assert!(parse_form(b"a=%zz").is_none());
        assert!(parse_form(b"a=%+1").is_none());
    }
}
