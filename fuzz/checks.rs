//! Invariant checks shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`) and
//! the corpus replay test (`tests/fuzz_corpus.rs`), so that every corpus file
//! is held to the same rules on stable as under libFuzzer.
//!
//! Each `check_<target>` takes the raw fuzz input, runs one parser on it and
//! panics when a rule of the parser's contract is broken. "Did not panic" is
//! the least of them: each check states what a result must look like.

use std::path::Path;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};

use tokengate::auth::bearer::{self, Credential};
use tokengate::auth::introspect::{Answer, Introspector};
use tokengate::auth::jwk::{KeyMiss, KeySet};
use tokengate::auth::AuthError;
use tokengate::auth::{claims, json, jws};
use tokengate::config::{Algorithm, Config, IssuerConfig, Profile};
use tokengate::fetch::HttpFetcher;
use tokengate::target::{normalize_host, normalize_path};

/// The time every claim check runs at.
const NOW: f64 = 1_700_000_000.0;

/// The token length limit of the bearer check: small, so the fuzzer reaches it.
const MAX_TOKEN_BYTES: usize = 200;

/// Issuer, audiences and claim names of the fixed configs below.
const ISSUER: &str = "https://idp.example.com/";
const AUDIENCES: [&str; 2] = ["api", "api2"];
const SCOPE_CLAIMS: [&str; 2] = ["scope", "scp"];

fn fixed_config(profile: &str) -> Config {
    let text = format!(
        r#"
[upstreams.a]
url = "http://127.0.0.1:1"
[issuers.i]
issuer = "{ISSUER}"
jwks_uri = "https://idp.example.com/jwks"
audiences = ["api", "api2"]
profile = "{profile}"
leeway_s = 30
[issuers.i.introspection]
endpoint = "https://idp.example.com/introspect"
client_id = "gateway"
client_secret = "secret"
"#
    );
    match Config::from_toml(&text, Path::new("."), Vec::new()) {
        Ok(c) => c,
        Err(e) => panic!("the fixed fuzz config does not load: {e:?}"),
    }
}

/// The fixed issuers: index 0 `generic`, index 1 `rfc9068`, same values.
fn issuers() -> &'static [IssuerConfig; 2] {
    static ISSUERS: OnceLock<[IssuerConfig; 2]> = OnceLock::new();
    ISSUERS.get_or_init(|| {
        [
            fixed_config("generic").issuers.remove(0),
            fixed_config("rfc9068").issuers.remove(0),
        ]
    })
}

// ---------------------------------------------------------------------------
// bearer

/// What `bearer::extract` must answer, written from the contract (behavior
/// section 2, RFC 6750 section 2.1) independently of the implementation.
#[derive(Debug, PartialEq, Eq)]
enum BearerModel {
    None,
    Bearer(String),
    InvalidRequest,
    InvalidToken,
}

fn b64token_ok(token: &[u8]) -> bool {
    let body = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body > 0
        && token[..body].iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

fn bearer_model(values: &[&[u8]], query: Option<&str>) -> BearerModel {
    let value = match values {
        [] => return BearerModel::None,
        [one] => *one,
        _ => return BearerModel::InvalidRequest,
    };
    // A parameter named `access_token`, also percent-encoded
    // (`access%5Ftoken`), as a backend would decode the name.
    let query_token = query.is_some_and(|q| {
        q.split('&').any(|pair| {
            pair.split('=').next().map(percent_decoded) == Some(b"access_token".to_vec())
        })
    });
    if query_token {
        return BearerModel::InvalidRequest;
    }
    let scheme_ok = value.len() >= 6 && value[..6].eq_ignore_ascii_case(b"bearer");
    let rest = if scheme_ok { &value[6..] } else { value };
    match rest.first() {
        _ if !scheme_ok => return BearerModel::None,
        None | Some(b' ') | Some(b'\t') => {}
        Some(_) => return BearerModel::None,
    }
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    let token = &rest[spaces..];
    if spaces == 0 || !b64token_ok(token) {
        return BearerModel::InvalidRequest;
    }
    if token.len() > MAX_TOKEN_BYTES {
        return BearerModel::InvalidToken;
    }
    BearerModel::Bearer(String::from_utf8_lossy(token).into_owned())
}

/// `%XX` escapes decoded; anything else (a stray `%`) kept as it is.
fn percent_decoded(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| bytes[i] == b'%' && h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// Input: lines; a line starting with `?` is the raw query (the last one
/// wins), every other line is one `Authorization` header value. Lines that
/// are not valid header values are dropped (hyper would refuse them).
pub fn check_bearer(data: &[u8]) {
    let mut headers = HeaderMap::new();
    let mut query: Option<String> = None;
    let mut values: Vec<&[u8]> = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        if let Some(q) = line.strip_prefix(b"?") {
            query = Some(String::from_utf8_lossy(q).into_owned());
        } else if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(AUTHORIZATION, v);
            values.push(line);
        }
    }
    let got = bearer::extract(&headers, query.as_deref(), MAX_TOKEN_BYTES);
    let want = bearer_model(&values, query.as_deref());
    match (&got, &want) {
        (Ok(Credential::None), BearerModel::None) => {}
        (Ok(Credential::Bearer(t)), BearerModel::Bearer(w)) => {
            assert_eq!(t, w, "extracted token differs from the grammar's");
            let value = values[0];
            assert!(
                value.ends_with(t.as_bytes()),
                "token is not the header's tail"
            );
            assert!(b64token_ok(t.as_bytes()) && t.len() <= MAX_TOKEN_BYTES);
        }
        (Err(AuthError::InvalidRequest(_)), BearerModel::InvalidRequest) => {}
        (Err(AuthError::InvalidToken(_)), BearerModel::InvalidToken) => {}
        _ => panic!("extract gave {got:?}, the contract says {want:?}"),
    }
}

// ---------------------------------------------------------------------------
// jws + claims

/// Input: either a compact token, or (when it starts with `{`) a header JSON
/// line, a claims JSON line and an optional signature line, which are encoded
/// into a token first, so the fuzzer can mutate the JSON directly.
pub fn check_jws(data: &[u8]) {
    if data.first() == Some(&b'{') {
        let mut lines = data.splitn(3, |&b| b == b'\n');
        let header = lines.next().unwrap_or_default();
        let claims = lines.next().unwrap_or_default();
        let signature = match lines.next() {
            Some(s) if !s.is_empty() => String::from_utf8_lossy(s).into_owned(),
            _ => "c2ln".to_string(),
        };
        let token = format!(
            "{}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        check_token(&token);
    } else if let Ok(token) = std::str::from_utf8(data) {
        check_token(token);
    }
}

fn check_token(token: &str) {
    let Ok(jwt) = jws::parse(token) else {
        return;
    };
    // Round trip: the parts re-join to the input, and each part is the
    // canonical encoding of what was decoded.
    assert_eq!(format!("{}.{}", jwt.signing_input, jwt.signature), token);
    let (header_b64, payload_b64) = match jwt.signing_input.split_once('.') {
        Some(parts) => parts,
        None => panic!("signing input without a '.'"),
    };
    for segment in [header_b64, payload_b64, jwt.signature] {
        assert!(!segment.is_empty(), "empty segment accepted");
        assert!(
            segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "segment outside base64url accepted: {segment:?}"
        );
    }
    let decode = |s: &str| match URL_SAFE_NO_PAD.decode(s) {
        Ok(bytes) => bytes,
        Err(e) => panic!("accepted segment does not decode: {e}"),
    };
    let header_bytes = decode(header_b64);
    let payload_bytes = decode(payload_b64);
    assert_eq!(URL_SAFE_NO_PAD.encode(&header_bytes), header_b64);
    assert_eq!(URL_SAFE_NO_PAD.encode(&payload_bytes), payload_b64);
    // The header is a strict JSON object and the fields come from it.
    let header = match json::parse_object(&header_bytes) {
        Some(h) => h,
        None => panic!("accepted header is not a strict JSON object"),
    };
    assert_eq!(header.get("alg").and_then(Value::as_str), Some(&*jwt.alg));
    assert!(!jwt.alg.eq_ignore_ascii_case("none"), "alg none accepted");
    for refused in ["jku", "x5u", "jwk", "crit"] {
        assert!(
            !header.contains_key(refused),
            "header with {refused} accepted"
        );
    }
    if let Some(cty) = header.get("cty") {
        assert!(cty.as_str().is_some_and(|c| !c.eq_ignore_ascii_case("jwt")));
    }
    assert_eq!(
        header.get("kid").and_then(Value::as_str),
        jwt.kid.as_deref()
    );
    assert!(jwt
        .kid
        .as_ref()
        .is_none_or(|k| k.len() <= jws::MAX_KID_BYTES));
    assert_eq!(
        header.get("typ").and_then(Value::as_str),
        jwt.typ.as_deref()
    );
    assert_eq!(
        json::parse_object(&payload_bytes).as_ref(),
        Some(&jwt.claims)
    );

    check_typ_rules(jwt.typ.as_deref());
    check_claims(&jwt.claims);
}

fn check_typ_rules(typ: Option<&str>) {
    let at_jwt = typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    let generic_ok = at_jwt || typ.is_none_or(|t| t.eq_ignore_ascii_case("jwt"));
    assert_eq!(claims::check_typ(typ, Profile::Rfc9068).is_ok(), at_jwt);
    assert_eq!(claims::check_typ(typ, Profile::Generic).is_ok(), generic_ok);
}

fn number(claims: &Map<String, Value>, name: &str) -> Option<f64> {
    claims.get(name).and_then(Value::as_f64)
}

fn check_claims(claims: &Map<String, Value>) {
    let forward = ["sub".to_string(), "tenant".to_string()];
    let [generic, rfc9068] = issuers();
    let got_generic = claims::validate(claims, generic, 0, &forward, NOW);
    let got_rfc9068 = claims::validate(claims, rfc9068, 1, &forward, NOW);
    if got_rfc9068.is_ok() {
        assert!(got_generic.is_ok(), "rfc9068 accepts what generic refuses");
        for c in ["iat", "sub", "client_id", "jti"] {
            assert!(claims.contains_key(c), "rfc9068 accepted without {c}");
        }
    }
    let Ok(p) = got_generic else {
        return;
    };
    let leeway = generic.leeway.as_secs_f64();
    assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISSUER));
    let aud_ok = |a: &Value| a.as_str().is_some_and(|a| AUDIENCES.contains(&a));
    match claims.get("aud") {
        Some(Value::Array(items)) => {
            assert!(items.iter().all(Value::is_string) && items.iter().any(aud_ok))
        }
        Some(a) => assert!(aud_ok(a), "audience {a} accepted"),
        None => panic!("token without aud accepted"),
    }
    let exp = match number(claims, "exp") {
        Some(exp) => exp,
        None => panic!("token without a numeric exp accepted"),
    };
    assert!(NOW < exp + leeway, "expired token accepted");
    assert_eq!(p.expires_at, exp);
    for (name, late) in [("nbf", false), ("iat", true)] {
        match claims.get(name) {
            None => {}
            Some(v) => {
                let t = match v.as_f64() {
                    Some(t) => t,
                    None => panic!("non-numeric {name} accepted"),
                };
                if late {
                    assert!(t <= NOW + leeway, "{name} in the future accepted");
                } else {
                    assert!(NOW >= t - leeway, "{name} in the future accepted");
                }
            }
        }
    }
    for name in ["iss", "sub", "jti", "client_id"] {
        assert!(claims.get(name).is_none_or(Value::is_string));
    }
    assert!(!claims.contains_key("cnf"), "cnf-bound token accepted");
    let scope_claims = SCOPE_CLAIMS.map(String::from);
    assert_eq!(
        claims::scopes(claims, &scope_claims).as_ref(),
        Ok(&p.scopes)
    );
    check_scopes(claims, &p.scopes);
    assert_eq!(
        p.subject.as_deref(),
        claims.get("sub").and_then(Value::as_str)
    );
    for (name, value) in &p.forwarded {
        assert_eq!(claims.get(name), Some(value));
    }
}

/// Scopes come from the first scope claim present; a string splits on spaces.
fn check_scopes(claims: &Map<String, Value>, scopes: &[String]) {
    match SCOPE_CLAIMS.iter().find_map(|c| claims.get(*c)) {
        None => assert!(scopes.is_empty()),
        Some(Value::String(s)) => {
            assert!(scopes.iter().all(|x| !x.is_empty() && !x.contains(' ')));
            let words: Vec<&str> = s.split(' ').filter(|x| !x.is_empty()).collect();
            assert_eq!(scopes, words.as_slice());
        }
        Some(Value::Array(items)) => {
            let strings: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            assert_eq!(strings.len(), items.len());
            assert_eq!(scopes, strings.as_slice());
        }
        Some(other) => panic!("scope claim {other} accepted"),
    }
}

// ---------------------------------------------------------------------------
// jwk

/// Members only private keys have (RFC 7518 section 6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Whether the kept `key` may have come from `jwk`, by the filter rules.
fn may_come_from(key: &tokengate::auth::jwk::VerifyKey, jwk: &Value) -> bool {
    use tokengate::auth::jwk::KeyKind;
    let Some(jwk) = jwk.as_object() else {
        return false;
    };
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let kind_ok = match key.kind {
        KeyKind::Rsa => text("kty") == Some("RSA"),
        KeyKind::P256 => text("kty") == Some("EC") && text("crv") == Some("P-256"),
        KeyKind::P384 => text("kty") == Some("EC") && text("crv") == Some("P-384"),
        KeyKind::Ed25519 => text("kty") == Some("OKP") && text("crv") == Some("Ed25519"),
    };
    kind_ok
        && PRIVATE_MEMBERS.iter().all(|m| !jwk.contains_key(*m))
        && jwk.get("use").is_none_or(|u| u == "sig")
        && jwk.get("key_ops").is_none_or(|ops| {
            ops.as_array()
                .is_some_and(|ops| ops.iter().any(|o| o == "verify"))
        })
        && text("kid") == key.kid.as_deref()
        && jwk.get("kid").is_none_or(Value::is_string)
        && match (jwk.get("alg"), key.alg) {
            (None, None) => true,
            (Some(a), Some(alg)) => a == alg.name(),
            _ => false,
        }
}

/// Input: a JWK Set document (any JSON).
pub fn check_jwk(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let jwks = doc.get("keys").and_then(Value::as_array);
    let set = match (KeySet::from_json(&doc), jwks) {
        (Ok(set), Some(_)) => set,
        (Err(_), None) => return,
        (got, _) => panic!("from_json gave {got:?} for a document with keys = {jwks:?}"),
    };
    let jwks = jwks.map_or(&[][..], Vec::as_slice);
    assert_eq!(set.len() + set.skipped, jwks.len(), "keys lost or invented");
    // The kept keys are, in order, a subsequence of the JWKs they may come from.
    let mut rest = jwks.iter();
    for key in &set.keys {
        assert!(
            rest.any(|jwk| may_come_from(key, jwk)),
            "kept key {key:?} matches no remaining JWK"
        );
        assert!(key.alg.is_none_or(|a| key.kind.fits(a)));
        assert!(Algorithm::ALL.iter().any(|a| key.fits(*a)));
        assert!(set.contains_fingerprint(&key.fingerprint));
    }
    // Loading is deterministic.
    if let Ok(again) = KeySet::from_json(&doc) {
        let prints = |s: &KeySet| s.keys.iter().map(|k| k.fingerprint).collect::<Vec<_>>();
        assert_eq!(prints(&set), prints(&again));
    }
    check_select(&set);
}

/// `select` against a scan of the keys, for every kid present, no kid and
/// an unknown kid, and every algorithm.
fn check_select(set: &KeySet) {
    let mut kids: Vec<Option<&str>> = set.keys.iter().map(|k| k.kid.as_deref()).collect();
    kids.push(None);
    kids.push(Some("\u{0}not-a-kid"));
    kids.dedup();
    for alg in Algorithm::ALL {
        for &kid in &kids {
            let got = set.select(kid, alg);
            let fitting: Vec<_> = set
                .keys
                .iter()
                .filter(|k| k.fits(alg) && kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
                .collect();
            let kid_known =
                kid.is_none_or(|kid| set.keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
            match got {
                Ok(k) => {
                    assert!(k.fits(alg));
                    match kid {
                        Some(kid) => {
                            assert_eq!(k.kid.as_deref(), Some(kid));
                            assert!(
                                std::sync::Arc::ptr_eq(k, fitting[0]),
                                "not the first fitting key"
                            );
                        }
                        None => assert_eq!(fitting.len(), 1, "kid-less choice among several keys"),
                    }
                }
                Err(KeyMiss::UnknownKid) => assert!(!kid_known),
                Err(KeyMiss::NoFit) => assert!(kid_known && fitting.is_empty()),
                Err(KeyMiss::Ambiguous) => assert!(kid.is_none() && fitting.len() > 1),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// request target

/// Input: the whole input, and each of its lines, as a path and as a host.
pub fn check_target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_path(&text);
    check_host(&text);
    if text.contains('\n') {
        for line in text.split('\n') {
            check_path(line);
            check_host(line);
        }
    }
}

fn unhex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decodes; `None` for a broken escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = unhex(*b.get(i + 1)?)?;
            let l = unhex(*b.get(i + 2)?)?;
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn check_path(raw: &str) {
    let Ok(out) = normalize_path(raw) else {
        return;
    };
    let bytes = out.as_bytes();
    assert_eq!(bytes.first(), Some(&b'/'));
    for &b in bytes {
        assert!(
            (0x20..0x7f).contains(&b) && !matches!(b, b'\\' | b';' | b'#'),
            "byte {b:#04x} in normalised path {out:?}"
        );
    }
    let upper = out.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00"] {
        assert!(!upper.contains(bad), "{bad} in normalised path {out:?}");
    }
    assert!(!out.contains("//"), "empty segment in {out:?}");
    // Escapes left in place are upper-case and never of an unreserved or
    // control byte.
    let mut i = 0;
    while let Some(p) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + p;
        let esc = &bytes[at + 1..at + 3];
        assert!(esc
            .iter()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)));
        let v = unhex(esc[0]).unwrap_or(0) * 16 + unhex(esc[1]).unwrap_or(0);
        assert!(!(v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~')));
        assert!(v >= 0x20 && v != 0x7f);
        i = at + 3;
    }
    // Decoded, the path has the same separators, and no dot segment.
    let decoded = match percent_decode(&out) {
        Some(d) => d,
        None => panic!("broken escape in normalised path {out:?}"),
    };
    assert_eq!(
        decoded.iter().filter(|&&b| b == b'/').count(),
        bytes.iter().filter(|&&b| b == b'/').count()
    );
    for seg in decoded[1..].split(|&b| b == b'/') {
        assert!(seg != b"." && seg != b"..", "dot segment in {out:?}");
    }
    // Same meaning as the input, and idempotent.
    assert_eq!(percent_decode(raw).as_deref(), Some(&decoded[..]));
    assert_eq!(normalize_path(&out).as_deref(), Ok(&*out), "not idempotent");
}

fn check_host(raw: &str) {
    let Ok(host) = normalize_host(raw) else {
        return;
    };
    assert!(!host.is_empty());
    assert!(!host.ends_with('.'), "trailing dot kept in {host:?}");
    assert!(
        host.bytes().all(|b| b.is_ascii_lowercase()
            || b.is_ascii_digit()
            || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')),
        "normalised host {host:?}"
    );
    assert_eq!(
        normalize_host(&host).as_deref(),
        Ok(&*host),
        "not idempotent"
    );
    assert!(
        raw.to_ascii_lowercase().starts_with(&host),
        "host {host:?} is not the start of {raw:?}"
    );
}

// ---------------------------------------------------------------------------
// introspection answer

fn introspector() -> &'static Introspector {
    static INTROSPECTOR: OnceLock<Introspector> = OnceLock::new();
    INTROSPECTOR.get_or_init(|| {
        let issuer = &issuers()[0];
        let Some(config) = issuer.introspection.as_ref() else {
            panic!("the fixed fuzz issuer has no introspection");
        };
        let fetcher = match HttpFetcher::new() {
            Ok(f) => f,
            Err(e) => panic!("no HTTP client: {e}"),
        };
        Introspector::new(
            0,
            issuer,
            config,
            vec!["sub".into(), "tenant".into()],
            fetcher,
            tokengate::clock::Clock::system(),
        )
    })
}

/// Input: an introspection answer body.
pub fn check_introspect(data: &[u8]) {
    let strict = json::parse_object(data);
    let lenient = serde_json::from_slice::<Value>(data).ok();
    let Some(doc) = strict else {
        return;
    };
    // Strict parsing agrees with serde_json where it accepts, and round-trips.
    assert_eq!(lenient.as_ref().and_then(Value::as_object), Some(&doc));
    let text = match serde_json::to_vec(&doc) {
        Ok(t) => t,
        Err(e) => panic!("cannot serialise a parsed object: {e}"),
    };
    let again = match json::parse_object(&text) {
        Some(again) => Value::Object(again),
        None => panic!("a parsed object does not parse again"),
    };
    assert!(
        same_json(&again, &Value::Object(doc.clone())),
        "{again} != {doc:?}"
    );

    let p = match introspector().judge(&doc, NOW) {
        Answer::Active(p) => p,
        Answer::Refused(_) => return,
    };
    assert_eq!(
        doc.get("active"),
        Some(&Value::Bool(true)),
        "active without active: true"
    );
    assert!(p.expires_at > NOW, "expired answer accepted");
    match doc.get("exp") {
        None => {}
        Some(v) => assert_eq!(v.as_f64(), Some(p.expires_at)),
    }
    assert!(
        doc.get("iss").is_none_or(|i| i == ISSUER),
        "foreign iss accepted"
    );
    let aud_ok = |a: &Value| a.as_str().is_some_and(|a| AUDIENCES.contains(&a));
    match doc.get("aud") {
        None => {}
        Some(Value::Array(items)) => assert!(items.iter().any(aud_ok)),
        Some(a) => assert!(aud_ok(a), "audience {a} accepted"),
    }
    assert!(doc
        .get("token_type")
        .is_none_or(|t| t.as_str().is_some_and(|t| t.eq_ignore_ascii_case("bearer"))));
    assert!(!doc.contains_key("cnf"), "cnf-bound answer accepted");
    check_scopes(&doc, &p.scopes);
    assert_eq!(p.subject.as_deref(), doc.get("sub").and_then(Value::as_str));
    assert_eq!(
        p.client_id.as_deref(),
        doc.get("client_id").and_then(Value::as_str)
    );
}

/// Equality, except that floats may differ in the last bit: serde_json's
/// default float parsing is documented as best-effort, not round-trip exact.
/// Integers must be equal.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs()),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------
// config

/// Input: a configuration file (TOML).
pub fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new("fuzz-config-base-that-does-not-exist");
    let first = Config::from_toml(text, base, Vec::new());
    let second = Config::from_toml(text, base, Vec::new());
    // Loading is a function of the text.
    assert_eq!(
        format!("{first:?}"),
        format!("{second:?}"),
        "two loads differ"
    );
    let config = match first {
        Ok(c) => c,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused without a reason");
            return;
        }
    };
    let sorted = |names: Vec<&str>| names.windows(2).all(|w| w[0] < w[1]);
    assert!(sorted(
        config.issuers.iter().map(|i| i.name.as_str()).collect()
    ));
    assert!(sorted(
        config.upstreams.iter().map(|u| u.name.as_str()).collect()
    ));
    for (i, issuer) in config.issuers.iter().enumerate() {
        assert!(!issuer.audiences.is_empty(), "issuer without audiences");
        assert!(!issuer.issuer.is_empty(), "issuer without an issuer value");
        assert!(
            config.issuers[..i]
                .iter()
                .all(|e| e.issuer != issuer.issuer),
            "two issuers with one issuer value"
        );
        assert!(issuer.key_source.is_some() || issuer.introspection.is_some());
    }
    for route in &config.routes {
        assert!(route.upstream < config.upstreams.len());
        assert!(route.issuers.iter().all(|&i| i < config.issuers.len()));
        assert!(route.path.as_str().starts_with('/'));
        if let Some(host) = &route.host {
            assert_eq!(
                normalize_host(host).as_deref(),
                Ok(host.as_str()),
                "route host"
            );
        }
        if let Some(prefix) = &route.strip_prefix {
            assert_eq!(normalize_path(prefix).as_deref(), Ok(prefix.as_str()));
        }
        assert!(route.methods.as_ref().is_none_or(|m| !m.is_empty()));
    }
}
