//! JWT enforcement through real sockets (behavior.md sections 2, 3 and 6):
//! every error row of section 2 with its exact status, challenge, body and
//! headers; a table of tampered tokens that must each be refused with
//! `invalid_token`; and signed tokens of every algorithm forwarded with the
//! identity headers their claims produce. Every refusal is also checked at
//! the upstream: it saw nothing.

mod common;

use common::idp::{issuer_table, wait_ready, TestIdp};
use common::mint::{b64, claims, hmac_token, now, replace_segment, segments, with, Alg, Key, AUD};
use common::{closed_port, empty, request, Client, Gateway, Reply, Upstream};
use http::Request;
use serde_json::{json, Value};
use std::collections::BTreeMap;

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

struct Setup {
    idp: TestIdp,
    upstream: Upstream,
    gw: Gateway,
    k: Keys,
}

impl Setup {
    /// The `corp` issuer (generic profile, leeway 5 s) and the `strict`
    /// issuer (rfc9068 profile) share the idp's key set; one route
    /// `/api/**` needs a token, `/admin/**` also the scopes `admin ops`.
    async fn start(server_extra: &str, forward_extra: &str) -> Setup {
        Setup::start_with(server_extra, "leeway_s = 5", forward_extra).await
    }

    /// As [`Setup::start`], with `corp_extra` lines in the `corp` table.
    async fn start_with(server_extra: &str, corp_extra: &str, forward_extra: &str) -> Setup {
        let k = Keys::new();
        let idp = TestIdp::with_keys(&k.all()).await;
        let upstream = Upstream::echo().await;
        let toml = format!(
            r#"
[server]
realm = "{REALM}"
{server_extra}

[admin]
listen = "127.0.0.1:0"

{corp}
[issuers.strict]
issuer = "{strict}"
jwks_uri = "{jwks}"
audiences = ["{AUD}"]
profile = "rfc9068"

[upstreams.echo]
url = "{up}"
timeout_ms = 1000
connect_timeout_ms = 1000

[upstreams.dead]
url = "http://127.0.0.1:{dead}"
connect_timeout_ms = 1000

[forward]
{forward_extra}

[[routes]]
path = "/admin/**"
upstream = "echo"
scopes = ["admin", "ops"]

[[routes]]
path = "/dead/**"
upstream = "dead"

[[routes]]
path = "/api/**"
upstream = "echo"
"#,
            corp = issuer_table(
                "corp",
                &idp,
                &format!("audiences = [\"{AUD}\", \"{AUD2}\"]\n{corp_extra}")
            ),
            strict = strict_issuer(&idp),
            jwks = idp.jwks_uri(),
            up = upstream.url(),
            dead = closed_port().await,
        );
        let gw = Gateway::start(&toml).await;
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
        self.gw.send(&Client::h1(), bearer(path, token)).await
    }
}

fn strict_issuer(idp: &TestIdp) -> String {
    format!("{}/strict", idp.base_url())
}

fn bearer(path: &str, token: &str) -> Request<common::Body> {
    Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(empty())
        .expect("request")
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

/// Parses an RFC 6750 challenge: `Bearer` then `name="value"` parameters,
/// every value quoted and every name at most once.
fn parse_challenge(value: &str) -> BTreeMap<String, String> {
    let rest = value
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("challenge is not Bearer: {value:?}"));
    let mut params = BTreeMap::new();
    let mut s = rest;
    loop {
        s = s.trim_start_matches([' ', ',']);
        if s.is_empty() {
            return params;
        }
        let (name, after) = s
            .split_once('=')
            .unwrap_or_else(|| panic!("parameter without '=' in {value:?}"));
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "bad parameter name {name:?} in {value:?}"
        );
        let after = after
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("unquoted value for {name} in {value:?}"));
        let (v, tail) = after
            .split_once('"')
            .unwrap_or_else(|| panic!("unterminated value for {name} in {value:?}"));
        assert!(!v.contains('\\'), "escaped value in {value:?}");
        assert!(
            params.insert(name.to_string(), v.to_string()).is_none(),
            "parameter {name} twice in {value:?}"
        );
        assert!(
            tail.is_empty() || tail.starts_with(", "),
            "junk after {name} in {value:?}"
        );
        s = tail;
    }
}

/// Asserts a gateway refusal: status, the challenge's parameters (exactly
/// `realm` plus `error`/`error_description` when `error` is set, plus
/// `scope` for 403), the JSON body and its headers. Returns the description.
fn assert_refused(reply: &Reply, status: u16, error: Option<&str>, scope: Option<&str>) -> String {
    let body = reply.gateway_error(status);
    let description = body["error_description"]
        .as_str()
        .expect("description")
        .to_string();
    let challenges = reply.header_all("www-authenticate");
    assert_eq!(challenges.len(), 1, "one challenge: {challenges:?}");
    let params = parse_challenge(challenges[0]);
    assert_eq!(
        params.get("realm").map(String::as_str),
        Some(REALM),
        "{params:?}"
    );
    match error {
        None => {
            assert_eq!(
                params.len(),
                1,
                "no error parameters when no token: {params:?}"
            );
            assert!(
                body.get("error").is_none(),
                "no error code in the body: {body}"
            );
        }
        Some(code) => {
            assert_eq!(body["error"], code, "{body}");
            assert_eq!(
                params.get("error").map(String::as_str),
                Some(code),
                "{params:?}"
            );
            assert_eq!(
                params.get("error_description"),
                Some(&description),
                "{params:?}"
            );
            assert_eq!(params.get("scope").map(String::as_str), scope, "{params:?}");
            let expected = 3 + usize::from(scope.is_some());
            assert_eq!(params.len(), expected, "{params:?}");
        }
    }
    assert!(description.is_ascii() && !description.is_empty());
    description
}

/// 401 `invalid_token` whose description echoes nothing of the token.
fn assert_invalid_token(reply: &Reply, token: &str, what: &str) {
    assert_eq!(
        reply.status,
        401,
        "{what}: {:?}",
        String::from_utf8_lossy(&reply.body)
    );
    let description = assert_refused(reply, 401, Some("invalid_token"), None);
    assert!(
        !description.contains(token),
        "{what}: the description echoes the token"
    );
    for part in token.split('.') {
        if part.len() > 8 {
            assert!(
                !description.contains(part),
                "{what}: the description echoes a segment"
            );
        }
    }
    for secret in [
        "rs-1",
        "ps-1",
        "ec-1",
        "ed-1",
        "attacker",
        "unknown-kid",
        "RS384",
        "HS256",
        "none",
    ] {
        assert!(
            !description.contains(secret),
            "{what}: description {description:?} echoes {secret}"
        );
    }
}

#[tokio::test]
async fn section2_no_bearer_credential_is_401_without_error() {
    let s = Setup::start("", "").await;
    let token = s.k.rs.token(&s.claims());
    let cases: Vec<(&str, Request<common::Body>)> = vec![
        ("no Authorization header", request("GET", "/api/x")),
        (
            "Basic scheme",
            with_authorization("/api/x", &[b"Basic dXNlcjpwYXNz"]),
        ),
        (
            "Digest scheme",
            with_authorization("/api/x", &[b"Digest username=\"a\""]),
        ),
        (
            "scheme glued to the token",
            with_authorization("/api/x", &[format!("Bearer{token}").as_bytes()]),
        ),
        (
            "access_token query parameter alone",
            request("GET", &format!("/api/x?access_token={token}")),
        ),
    ];
    for (what, req) in cases {
        for client in [Client::h1(), Client::h2()] {
            let reply = s.gw.send(&client, clone_request(&req)).await;
            assert_eq!(reply.status, 401, "{what}");
            let description = assert_refused(&reply, 401, None, None);
            assert!(!description.contains(&token), "{what}");
        }
    }
    assert_eq!(
        s.upstream.hits(),
        0,
        "refused requests never reach the upstream"
    );
}

fn clone_request(req: &Request<common::Body>) -> Request<common::Body> {
    let mut out = Request::builder().method(req.method()).uri(req.uri());
    for (name, value) in req.headers() {
        out = out.header(name, value);
    }
    out.body(empty()).expect("request")
}

#[tokio::test]
async fn section2_malformed_bearer_credential_is_400_invalid_request() {
    let s = Setup::start("", "").await;
    let token = s.k.rs.token(&s.claims());
    let t = token.as_bytes();
    let joined = |parts: &[&[u8]]| parts.concat();
    let cases: Vec<(&str, Request<common::Body>)> = vec![
        (
            "empty credential",
            with_authorization("/api/x", &[b"Bearer"]),
        ),
        (
            "only spaces",
            with_authorization("/api/x", &[b"Bearer    "]),
        ),
        (
            "tab after the scheme",
            with_authorization("/api/x", &[&joined(&[b"Bearer\t", t])]),
        ),
        (
            "inner space",
            with_authorization("/api/x", &[&joined(&[b"Bearer ", t, b" extra"])]),
        ),
        (
            "inner tab",
            with_authorization("/api/x", &[&joined(&[b"Bearer ", t, b"\textra"])]),
        ),
        (
            "comma",
            with_authorization("/api/x", &[&joined(&[b"Bearer ", t, b",x"])]),
        ),
        (
            "quotes",
            with_authorization("/api/x", &[&joined(&[b"Bearer \"", t, b"\""])]),
        ),
        (
            "non-ASCII",
            with_authorization("/api/x", &[&joined(&[b"Bearer ", t, "\u{e9}".as_bytes()])]),
        ),
        (
            "padding inside",
            with_authorization("/api/x", &[b"Bearer ab=cd.ef.gh"]),
        ),
        (
            "two Authorization headers",
            with_authorization(
                "/api/x",
                &[&joined(&[b"Bearer ", t]), &joined(&[b"Bearer ", t])],
            ),
        ),
        (
            "valid header plus access_token query",
            with_authorization(
                &format!("/api/x?a=1&access_token={token}"),
                &[&joined(&[b"Bearer ", t])],
            ),
        ),
    ];
    for (what, req) in cases {
        let reply = s.gw.send(&Client::h1(), req).await;
        assert_eq!(
            reply.status,
            400,
            "{what}: {:?}",
            String::from_utf8_lossy(&reply.body)
        );
        let description = assert_refused(&reply, 400, Some("invalid_request"), None);
        assert!(!description.contains(&token), "{what}");
    }
    assert_eq!(
        s.upstream.hits(),
        0,
        "refused requests never reach the upstream"
    );
}

#[tokio::test]
async fn section2_insufficient_scope_is_403_naming_the_route_scopes() {
    let s = Setup::start("", "").await;
    for scope in ["read write", "admin", "ops", "admin Ops"] {
        let token = s.k.ec.token(&with(&s.claims(), json!({ "scope": scope })));
        let reply = s.call("/admin/panel", &token).await;
        assert_refused(&reply, 403, Some("insufficient_scope"), Some("admin ops"));
    }
    assert_eq!(s.upstream.hits(), 0);
    let token =
        s.k.ec
            .token(&with(&s.claims(), json!({"scope": "ops read admin"})));
    assert_eq!(s.call("/admin/panel", &token).await.status, 200);
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn section2_unreachable_issuer_is_503_and_upstream_failures_502_504_without_challenge() {
    let s = Setup::start("", "").await;
    let token = s.k.rs.token(&s.claims());

    let reply = s.call("/dead/x", &token).await;
    let body = reply.gateway_error(502);
    assert!(reply.header("www-authenticate").is_none(), "{body}");

    let reply = s.call("/api/slow", &token).await;
    let body = reply.gateway_error(504);
    assert!(reply.header("www-authenticate").is_none(), "{body}");
    assert_eq!(
        s.upstream.hits(),
        1,
        "the slow request reached the upstream"
    );

    // An issuer whose key set cannot be fetched: 503, never forwarded.
    let upstream = Upstream::echo().await;
    let iss = format!("http://127.0.0.1:{}/", closed_port().await);
    let toml = format!(
        r#"
[issuers.gone]
issuer = "{iss}"
jwks_uri = "{iss}jwks"
audiences = ["{AUD}"]
jwks_refresh_s = 1
[upstreams.echo]
url = "{}"
[[routes]]
path = "/api/**"
upstream = "echo"
"#,
        upstream.url()
    );
    let gw = Gateway::start(&toml).await;
    let token = s.k.rs.token(&claims(&iss, AUD));
    let reply = gw.send(&Client::h1(), bearer("/api/x", &token)).await;
    let body = reply.gateway_error(503);
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(reply.header("www-authenticate").is_none());
    assert!(reply
        .header("retry-after")
        .is_some_and(|v| v.parse::<u32>().is_ok()));
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_allows_several_spaces() {
    let s = Setup::start("", "").await;
    let token = s.k.rs.token(&s.claims());
    for scheme in ["Bearer ", "bearer ", "BEARER ", "bEaReR ", "Bearer     "] {
        let value = format!("{scheme}{token}");
        let reply =
            s.gw.send(
                &Client::h1(),
                with_authorization("/api/x", &[value.as_bytes()]),
            )
            .await;
        assert_eq!(reply.status, 200, "{scheme:?}");
        let reply =
            s.gw.send(
                &Client::h2(),
                with_authorization("/api/x", &[value.as_bytes()]),
            )
            .await;
        assert_eq!(reply.status, 200, "{scheme:?} over h2");
    }
    assert_eq!(s.upstream.hits(), 10);
}

#[tokio::test]
async fn token_longer_than_max_token_bytes_is_401_without_key_lookup() {
    let s = Setup::start("max_token_bytes = 2048", "").await;
    let fetches = s.idp.jwks_hits();
    let short = s.k.rs.token(&s.claims());
    assert!(short.len() <= 2048, "{}", short.len());
    assert_eq!(s.call("/api/x", &short).await.status, 200);

    // An unknown kid would trigger a key-set refetch if the token were looked at.
    let unknown = s.k.rs.with_kid("unknown-kid-long");
    let long = unknown.token(&with(&s.claims(), json!({"pad": "p".repeat(2000)})));
    assert!(long.len() > 2048);
    let reply = s.call("/api/x", &long).await;
    assert_invalid_token(&reply, &long, "long token");
    // Exactly at the limit: accepted.
    let mut pad = 0;
    let exact = loop {
        let t =
            s.k.rs
                .token(&with(&s.claims(), json!({ "pad": "p".repeat(pad) })));
        if t.len() >= 2045 {
            break t;
        }
        pad += 1;
    };
    assert!((2045..=2048).contains(&exact.len()), "{}", exact.len());
    assert_eq!(s.call("/api/x", &exact).await.status, 200);
    // A kid over 256 bytes fails without a lookup either.
    let long_kid = s.k.rs.with_kid(&"k".repeat(257)).token(&s.claims());
    assert_invalid_token(
        &s.call("/api/x", &long_kid).await,
        &long_kid,
        "257-byte kid",
    );
    assert_eq!(
        s.idp.jwks_hits(),
        fetches,
        "no key-set fetch for an over-long token or kid"
    );
    assert_eq!(s.upstream.hits(), 2);
    // The counter is sensitive: a 256-byte unknown kid is looked up, and refetched once.
    let unknown = s.k.rs.with_kid(&"k".repeat(256)).token(&s.claims());
    assert_invalid_token(
        &s.call("/api/x", &unknown).await,
        &unknown,
        "256-byte unknown kid",
    );
    assert_eq!(s.idp.jwks_hits(), fetches + 1);
}

/// Tokens that must each be refused with `invalid_token` (section 3).
#[tokio::test]
async fn tampered_tokens_are_401_invalid_token() {
    let s = Setup::start("", "").await;
    // One initial fetch per issuer (corp and strict share the key set).
    let initial_fetches = s.idp.jwks_hits();
    let k = &s.k;
    let attacker_key = Key::rs256("attacker").jwk_alg(None);
    let attacker = TestIdp::with_keys(&[&attacker_key]).await;
    let iss = s.idp.issuer();
    let c = s.claims();
    let valid = k.rs.token(&c);
    let valid_segments: Vec<String> = valid.split('.').map(String::from).collect();
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut case = |what: &str, token: String| cases.push((what.to_string(), token));

    // alg none in every spelling, with an empty and a non-empty signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let unsigned =
            k.rs.jwt(&c)
                .header("alg", json!(alg))
                .header("kid", Value::Null);
        case(
            &format!("alg {alg}, empty signature"),
            unsigned.clone().signature_segment("").encode(),
        );
        case(
            &format!("alg {alg}, non-empty signature"),
            unsigned.signature_segment("c2ln").encode(),
        );
        let keyed = k.rs.jwt(&c).header("alg", json!(alg));
        case(
            &format!("alg {alg} with kid and an RS256 signature"),
            keyed.encode(),
        );
    }
    case("no alg", k.rs.jwt(&c).header("alg", Value::Null).encode());
    case(
        "alg not a string",
        k.rs.jwt(&c).header("alg", json!(["RS256"])).encode(),
    );
    case(
        "alg in the wrong case",
        k.rs.jwt(&c).header("alg", json!("rs256")).encode(),
    );
    case(
        "alg outside the allow-list",
        k.rs.jwt(&c).header("alg", json!("RS384")).encode(),
    );

    // HS* with the RSA public key (in every form) as the HMAC secret.
    let hs_header = json!({"alg": "HS256", "typ": "JWT", "kid": "rs-1"});
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("PEM", k.rs.spki_pem().into_bytes()),
        ("SPKI DER", k.rs.spki_der()),
        ("PKCS#1 DER", k.rs.rsa_pkcs1_der()),
        ("modulus", k.rs.rsa_modulus()),
        ("base64url modulus", b64(k.rs.rsa_modulus()).into_bytes()),
        ("JWK JSON", k.rs.jwk().to_string().into_bytes()),
    ];
    for (form, secret) in &secrets {
        case(
            &format!("HS256 keyed with the {form}"),
            hmac_token("HS256", secret, &hs_header, &c),
        );
    }
    let hs512 = json!({"alg": "HS512", "typ": "JWT"});
    case(
        "HS512 without kid",
        hmac_token("HS512", &k.rs.spki_der(), &hs512, &c),
    );

    // Key and algorithm must fit.
    case("RS256 naming an EC key", k.rs.with_kid("ec-1").token(&c));
    case("ES256 naming an RSA key", k.ec.with_kid("rs-1").token(&c));
    case("EdDSA naming an EC key", k.ed.with_kid("ec-1").token(&c));
    case(
        "RS256 with a key whose JWK alg is PS256",
        k.ps.signing_as(Alg::RS256).token(&c),
    );
    case(
        "PS256 with a key whose JWK alg is RS256",
        k.rs.signing_as(Alg::PS256).token(&c),
    );
    case("unknown kid", k.rs.with_kid("unknown-kid-1").token(&c));
    case(
        "kid of 257 bytes",
        k.rs.with_kid(&"k".repeat(257)).token(&c),
    );
    case(
        "kid not a string",
        k.rs.jwt(&c).header("kid", json!(1)).encode(),
    );
    case(
        "ES256 without kid, two EC keys",
        k.ec.without_kid().token(&c),
    );

    // Key locations in the header: never followed, always refused.
    let evil = attacker_key.jwt(&c);
    case(
        "jku to the attacker",
        evil.header("jku", json!(attacker.jwks_uri())).encode(),
    );
    let evil = attacker_key.jwt(&c);
    case(
        "x5u to the attacker",
        evil.header("x5u", json!(format!("{}/cert.pem", attacker.base_url())))
            .encode(),
    );
    let evil = attacker_key.jwt(&c);
    case(
        "embedded jwk",
        evil.header("jwk", attacker_key.jwk()).encode(),
    );
    let evil = attacker_key.jwt(&c);
    case(
        "x5c with the attacker's key",
        evil.header("x5c", json!([b64(attacker_key.spki_der())]))
            .encode(),
    );
    case(
        "jku next to a valid kid and signature",
        k.rs.jwt(&c)
            .header("jku", json!(attacker.jwks_uri()))
            .encode(),
    );
    case(
        "x5u next to a valid kid and signature",
        k.rs.jwt(&c)
            .header("x5u", json!(attacker.base_url()))
            .encode(),
    );
    case(
        "jwk next to a valid kid and signature",
        k.rs.jwt(&c).header("jwk", k.rs.jwk()).encode(),
    );

    // crit, cty, typ.
    case(
        "crit [exp]",
        k.rs.jwt(&c).header("crit", json!(["exp"])).encode(),
    );
    case("crit []", k.rs.jwt(&c).header("crit", json!([])).encode());
    case("cty JWT", k.rs.jwt(&c).header("cty", json!("JWT")).encode());
    case("cty jwt", k.rs.jwt(&c).header("cty", json!("jwt")).encode());
    for typ in ["dpop+jwt", "secevent+jwt", "JOSE", "at+jwt+x", ""] {
        case(
            &format!("typ {typ:?}"),
            k.rs.jwt(&c).header("typ", json!(typ)).encode(),
        );
    }
    case(
        "typ not a string",
        k.rs.jwt(&c).header("typ", json!(1)).encode(),
    );

    // Structure.
    let (h, p, sig) = (&valid_segments[0], &valid_segments[1], &valid_segments[2]);
    case(
        "JWE-shaped, five segments",
        segments(&[h, "ZW5j", "aXY", p, sig]),
    );
    case("four segments", segments(&[h, p, sig, sig]));
    case("two segments", segments(&[h, p]));
    case("one trailing dot", format!("{valid}."));
    case("padding on the signature", format!("{valid}="));
    case("double padding on the signature", format!("{valid}=="));
    case("empty signature", segments(&[h, p, ""]));
    case("empty header", segments(&["", p, sig]));
    case("empty claims", segments(&[h, "", sig]));
    case(
        "standard base64 signature",
        segments(&[h, p, &sig.replace(['-', '_'], "+")]),
    );
    case(
        "slash in the signature",
        segments(&[h, p, &format!("{}/", &sig[1..])]),
    );
    case("tilde in the claims", segments(&[h, &format!("{p}~"), sig]));
    case(
        "header not JSON",
        k.rs.jwt(&c).raw_header("alg=RS256").encode(),
    );
    case(
        "header a JSON array",
        k.rs.jwt(&c).raw_header(r#"["RS256"]"#).encode(),
    );
    case(
        "claims not JSON",
        k.rs.jwt(&c).raw_claims("sub=alice").encode(),
    );
    case(
        "claims a JSON array",
        k.rs.jwt(&c).raw_claims(&json!([c]).to_string()).encode(),
    );
    case(
        "claims with trailing data",
        k.rs.jwt(&c).raw_claims(&format!("{c} {{}}")).encode(),
    );
    case(
        "opaque token, no issuer can introspect",
        "opaque-token-1234".into(),
    );

    // Duplicate member names.
    let dup_header = r#"{"alg":"RS256","kid":"rs-1","typ":"at+jwt","kid":"rs-1"}"#;
    case(
        "duplicate kid in the header",
        k.rs.jwt(&c).raw_header(dup_header).encode(),
    );
    let dup_alg = r#"{"alg":"none","kid":"rs-1","alg":"RS256"}"#;
    case(
        "duplicate alg in the header",
        k.rs.jwt(&c).raw_header(dup_alg).encode(),
    );
    let body = c.to_string();
    let dup_sub = body.replacen('{', r#"{"sub":"mallory","#, 1);
    case(
        "duplicate sub in the claims",
        k.rs.jwt(&c).raw_claims(&dup_sub).encode(),
    );
    let dup_aud = body.replacen('{', r#"{"aud":"https://evil.test","#, 1);
    case(
        "duplicate aud in the claims",
        k.rs.jwt(&c).raw_claims(&dup_aud).encode(),
    );
    let nested = with(&c, json!({"ext": {"role": "user"}})).to_string();
    let dup_nested = nested.replacen(r#"{"role":"user"}"#, r#"{"role":"user","role":"admin"}"#, 1);
    assert_ne!(nested, dup_nested);
    case(
        "duplicate nested member in the claims",
        k.rs.jwt(&c).raw_claims(&dup_nested).encode(),
    );

    // Claim types and values.
    let t = now();
    for (what, change) in [
        ("exp a string", json!({"exp": (t + 600).to_string()})),
        ("exp missing", json!({"exp": null})),
        ("exp in the past beyond leeway", json!({"exp": t - 30})),
        ("exp long ago", json!({"exp": t - 86_400})),
        ("nbf a string", json!({"nbf": t.to_string()})),
        ("nbf in the future beyond leeway", json!({"nbf": t + 60})),
        ("iat in the future beyond leeway", json!({"iat": t + 60})),
        ("iat a string", json!({"iat": t.to_string()})),
        ("aud a number", json!({"aud": 1})),
        ("aud an array with a number", json!({"aud": [AUD, 1]})),
        ("aud an object", json!({"aud": {"a": AUD}})),
        ("aud missing", json!({"aud": null})),
        ("aud another audience", json!({"aud": "https://evil.test"})),
        ("aud in another case", json!({"aud": "https://API.test"})),
        ("aud empty array", json!({"aud": []})),
        (
            "aud array without ours",
            json!({"aud": ["https://evil.test"]}),
        ),
        ("iss missing", json!({"iss": null})),
        ("iss a number", json!({"iss": 1})),
        ("iss an array", json!({"iss": [iss.clone()]})),
        (
            "iss without the trailing slash",
            json!({"iss": iss.trim_end_matches('/')}),
        ),
        ("iss with a second slash", json!({"iss": format!("{iss}/")})),
        ("iss in upper case", json!({"iss": iss.to_uppercase()})),
        ("iss with a prefix", json!({"iss": format!("x{iss}")})),
        ("iss with a suffix", json!({"iss": format!("{iss}x")})),
        ("iss with a path", json!({"iss": format!("{iss}tenant")})),
        (
            "iss of https",
            json!({"iss": iss.replace("http://", "https://")}),
        ),
        ("iss with a space", json!({"iss": format!("{iss} ")})),
        ("sub a number", json!({"sub": 7})),
        ("client_id an array", json!({"client_id": ["app-1"]})),
        ("scope a number", json!({"scope": 1})),
        (
            "cnf present",
            json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
        ),
        ("cnf present but empty", json!({"cnf": {}})),
    ] {
        case(what, k.rs.token(&with(&c, change)));
    }

    // Signatures.
    case(
        "ECDSA signature in DER form",
        k.ec.jwt(&c).der_signature().encode(),
    );
    case(
        "ECDSA R||S all zero",
        k.ec.jwt(&c).signature_bytes(vec![0; 64]).encode(),
    );
    let order = hex_bytes("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
    let mut r_is_n = order.clone();
    r_is_n.extend_from_slice(&[0; 31]);
    r_is_n.push(1);
    case(
        "ECDSA R equal to the group order",
        k.ec.jwt(&c).signature_bytes(r_is_n).encode(),
    );
    let ec_input = k.ec.jwt(&c).signing_input();
    let ec_sig = k.ec.sign(ec_input.as_bytes());
    case(
        "ECDSA signature one byte short",
        format!("{ec_input}.{}", b64(&ec_sig[..63])),
    );
    case(
        "ECDSA signature one byte long",
        format!("{ec_input}.{}", b64([&ec_sig[..], &[0]].concat())),
    );
    case(
        "RSA signature all zero",
        k.rs.jwt(&c).signature_bytes(vec![0; 256]).encode(),
    );
    case(
        "RSA signature truncated",
        k.rs.jwt(&c)
            .signature_bytes(k.rs.sign(b"x")[..255].to_vec())
            .encode(),
    );
    case(
        "Ed25519 signature all zero",
        k.ed.jwt(&c).signature_bytes(vec![0; 64]).encode(),
    );
    case(
        "signature over other bytes",
        k.rs.jwt(&c).signature_bytes(k.rs.sign(b"other")).encode(),
    );
    case(
        "RSA signature by another key with the same kid",
        k.rs.jwt(&c)
            .signed_by(&Key::rsa(2, Alg::RS256, "rs-1"))
            .encode(),
    );
    case(
        "ECDSA signature by another key with the same kid",
        k.ec.jwt(&c).signed_by(&Key::es256("ec-1")).encode(),
    );
    case(
        "Ed25519 signature by another key with the same kid",
        k.ed.jwt(&c).signed_by(&Key::eddsa("ed-1")).encode(),
    );
    case(
        "PS256 signature where RS256 is claimed",
        k.rs.jwt(&c)
            .signed_by(&k.rs.signing_as(Alg::PS256))
            .encode(),
    );
    let raised = b64(with(&c, json!({"scope": "admin ops"})).to_string());
    case(
        "tampered claims, original signature",
        replace_segment(&valid, 1, &raised),
    );
    let retyped = b64(k.rs.header().to_string().replace("at+jwt", "JWT"));
    case(
        "tampered header, original signature",
        replace_segment(&valid, 0, &retyped),
    );
    let other = k.rs.token(&with(&c, json!({"jti": "another-token"})));
    case(
        "signature of another token",
        replace_segment(&valid, 2, other.split('.').nth(2).expect("signature")),
    );

    for (what, token) in &cases {
        let reply = s.call("/api/x", token).await;
        assert_invalid_token(&reply, token, what);
    }
    assert_eq!(
        s.upstream.hits(),
        0,
        "no refused token reached the upstream"
    );
    assert_eq!(
        attacker.total_hits(),
        0,
        "the gateway never contacted a server a token named"
    );
    let fetches = s.idp.jwks_hits() - initial_fetches;
    assert!(
        fetches <= 1,
        "unknown kids cost at most one refetch per cooldown: {fetches}"
    );

    // The same keys still work: the refusals were about the tokens.
    for key in [&k.rs, &k.ps, &k.ec, &k.ed] {
        assert_eq!(
            s.call("/api/x", &key.token(&c)).await.status,
            200,
            "{:?}",
            key.alg()
        );
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test]
async fn typ_is_checked_per_profile() {
    let s = Setup::start("", "").await;
    let c = s.claims();
    let strict = with(&c, json!({"iss": strict_issuer(&s.idp)}));
    let mut forwarded = 0;
    for (typ, generic_ok, rfc9068_ok) in [
        (None, true, false),
        (Some("JWT"), true, false),
        (Some("jwt"), true, false),
        (Some("at+jwt"), true, true),
        (Some("AT+JWT"), true, true),
        (Some("application/at+jwt"), true, true),
        (Some("application/AT+JWT"), true, true),
        (Some("dpop+jwt"), false, false),
        (Some("application/jwt"), false, false),
        (Some("secevent+jwt"), false, false),
    ] {
        for (claims, ok, profile) in [
            (&c, generic_ok, "generic"),
            (&strict, rfc9068_ok, "rfc9068"),
        ] {
            let token =
                s.k.ed
                    .jwt(claims)
                    .header("typ", typ.map_or(Value::Null, |t| json!(t)))
                    .encode();
            let reply = s.call("/api/x", &token).await;
            if ok {
                assert_eq!(reply.status, 200, "typ {typ:?} in profile {profile}");
                forwarded += 1;
            } else {
                assert_invalid_token(&reply, &token, &format!("typ {typ:?} in profile {profile}"));
            }
            assert_eq!(
                s.upstream.hits(),
                forwarded,
                "typ {typ:?} in profile {profile}"
            );
        }
    }
    // rfc9068 requires iat, sub, client_id and jti; generic does not.
    for missing in ["iat", "sub", "client_id", "jti"] {
        let token = s.k.ed.token(&with(&strict, json!({ missing: null })));
        assert_invalid_token(
            &s.call("/api/x", &token).await,
            &token,
            &format!("rfc9068 without {missing}"),
        );
        let token = s.k.ed.token(&with(&c, json!({ missing: null })));
        assert_eq!(
            s.call("/api/x", &token).await.status,
            200,
            "generic without {missing}"
        );
        forwarded += 1;
    }
    assert_eq!(s.upstream.hits(), forwarded);
}

#[tokio::test]
async fn audience_forms_and_leeway_edges() {
    let s = Setup::start("", "").await;
    let c = s.claims();
    let t = now();
    let accepted = [
        ("aud our string", json!({"aud": AUD})),
        ("aud our second audience", json!({"aud": AUD2})),
        (
            "aud array with ours last",
            json!({"aud": ["https://evil.test", AUD2]}),
        ),
        (
            "aud array with ours first",
            json!({"aud": [AUD, "https://evil.test"]}),
        ),
        ("exp just inside the 5 s leeway", json!({"exp": t - 2})),
        ("nbf in the future within leeway", json!({"nbf": t + 2})),
        ("nbf in the past", json!({"nbf": t - 100})),
        ("iat in the future within leeway", json!({"iat": t + 2})),
        ("no iat", json!({"iat": null})),
        ("fractional exp", json!({"exp": t as f64 + 600.5})),
    ];
    for (what, change) in &accepted {
        let reply = s
            .call("/api/x", &s.k.ps.token(&with(&c, change.clone())))
            .await;
        assert_eq!(
            reply.status,
            200,
            "{what}: {:?}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    let refused = [
        ("exp just outside the 5 s leeway", json!({"exp": t - 7})),
        ("nbf beyond the leeway", json!({"nbf": t + 15})),
        ("iat beyond the leeway", json!({"iat": t + 15})),
    ];
    for (what, change) in &refused {
        let token = s.k.ps.token(&with(&c, change.clone()));
        assert_invalid_token(&s.call("/api/x", &token).await, &token, what);
    }
    assert_eq!(s.upstream.hits(), accepted.len());
}

#[tokio::test]
async fn tokens_of_every_algorithm_are_forwarded_with_identity_headers() {
    let s = Setup::start("", "").await;
    let c = with(
        &s.claims(),
        json!({"sub": "alice", "client_id": "app-1", "scope": "read write"}),
    );
    let keys = [
        ("RS256", s.k.rs.clone()),
        ("PS256", s.k.ps.clone()),
        ("ES256", s.k.ec.clone()),
        ("ES256 second key", s.k.ec2.clone()),
        ("EdDSA", s.k.ed.clone()),
        ("RS256 without kid, one RS256 key", s.k.rs.without_kid()),
        ("EdDSA without kid, one Ed25519 key", s.k.ed.without_kid()),
    ];
    let mut hits = 0;
    for (what, key) in &keys {
        let token = key.token(&c);
        for client in [Client::h1(), Client::h2()] {
            let req = Request::get("/api/orders?x=1")
                .header("authorization", format!("Bearer {token}"))
                .header("x-auth-subject", "mallory")
                .header("x-auth-subject", "eve")
                .header("x-auth-client-id", "evil-app")
                .header("x-auth-scope", "admin")
                .header("x_auth_subject", "underscored")
                .body(empty())
                .expect("request");
            let reply = s.gw.send(&client, req).await;
            assert_eq!(
                reply.status,
                200,
                "{what}: {:?}",
                String::from_utf8_lossy(&reply.body)
            );
            hits += 1;
            assert_eq!(s.upstream.hits(), hits);
            let seen = s.upstream.last();
            assert_eq!(seen.target(), "/api/orders?x=1");
            let all = |name: &str| -> Vec<String> {
                seen.headers
                    .get_all(name)
                    .iter()
                    .map(|v| v.to_str().expect("ASCII").to_string())
                    .collect()
            };
            assert_eq!(all("x-auth-subject"), ["alice"], "{what}");
            assert_eq!(all("x-auth-client-id"), ["app-1"], "{what}");
            assert_eq!(all("x-auth-scope"), ["read write"], "{what}");
            assert!(!seen.has("x_auth_subject"), "{what}");
            assert_eq!(
                all("authorization"),
                [format!("Bearer {token}")],
                "kept by default: {what}"
            );
        }
    }

    // Claims that cannot be a header value are not sent; absent ones neither.
    let odd = with(
        &c,
        json!({"sub": "alice\r\nx-injected: 1", "client_id": null, "scope": ["a", "b"]}),
    );
    let reply = s.call("/api/x", &s.k.ed.token(&odd)).await;
    assert_eq!(reply.status, 200);
    let seen = s.upstream.last();
    assert!(
        !seen.has("x-auth-subject") && !seen.has("x-injected") && !seen.has("x-auth-client-id")
    );
    assert_eq!(seen.header("x-auth-scope"), Some("a b"));
}

#[tokio::test]
async fn strip_authorization_removes_the_token_upstream() {
    let s = Setup::start("", "strip_authorization = true").await;
    let token = s.k.ec.token(&s.claims());
    for client in [Client::h1(), Client::h2()] {
        let reply = s.gw.send(&client, bearer("/api/x", &token)).await;
        assert_eq!(reply.status, 200);
        let seen = s.upstream.last();
        assert!(!seen.has("authorization"), "{:?}", seen.headers);
        assert_eq!(seen.header("x-auth-subject"), Some("alice"));
    }
}

#[tokio::test]
async fn unusable_published_keys_are_skipped() {
    let s = Setup::start("", "").await;
    let c = s.claims();
    let variant = |kid: &str, changes: Value| with(&s.k.rs.with_kid(kid).jwk(), changes);
    let d = b64(s.k.rs.rsa_modulus());
    let mut published: Vec<Value> = s.k.all().iter().map(|k| k.jwk()).collect();
    published.extend([
        variant("use-enc", json!({"use": "enc"})),
        variant("ops-encrypt", json!({"key_ops": ["encrypt"]})),
        variant("private", json!({"d": d})),
        variant("alg-hs256", json!({"alg": "HS256"})),
        variant("alg-es256", json!({"alg": "ES256"})),
        variant("ops-verify", json!({"key_ops": ["sign", "verify"]})),
        variant("no-use", json!({"use": null, "alg": null})),
    ]);
    published.push(json!({"kty": "oct", "kid": "oct", "k": b64(b"shared secret"), "alg": "HS256"}));
    s.idp.set_jwks(published);
    // The first unknown kid refetches the set; every later kid is decided on it.
    for kid in [
        "use-enc",
        "ops-encrypt",
        "private",
        "alg-hs256",
        "alg-es256",
    ] {
        let token = s.k.rs.with_kid(kid).token(&c);
        assert_invalid_token(&s.call("/api/x", &token).await, &token, kid);
    }
    let oct = hmac_token(
        "HS256",
        b"shared secret",
        &json!({"alg": "HS256", "kid": "oct"}),
        &c,
    );
    assert_invalid_token(&s.call("/api/x", &oct).await, &oct, "oct key");
    assert_eq!(s.upstream.hits(), 0);
    for kid in ["ops-verify", "no-use"] {
        assert_eq!(
            s.call("/api/x", &s.k.rs.with_kid(kid).token(&c))
                .await
                .status,
            200,
            "{kid}"
        );
    }
}

#[tokio::test]
async fn cached_identity_expires_at_exp() {
    let s = Setup::start_with("", "leeway_s = 0", "").await;
    let exp = now() + 2;
    let token = s.k.ed.token(&with(&s.claims(), json!({ "exp": exp })));
    assert_eq!(s.call("/api/x", &token).await.status, 200);
    assert_eq!(
        s.call("/api/x", &token).await.status,
        200,
        "served from the identity cache"
    );
    // Wait for the wall clock to pass exp (time passing, not synchronisation).
    let wait = std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp as u64 + 1);
    let left = wait
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left).await;
    assert_invalid_token(
        &s.call("/api/x", &token).await,
        &token,
        "expired cached token",
    );
    assert_eq!(s.upstream.hits(), 2);
}
