//! Compact JWS parsing and the claim checks: the JOSE header rules, `typ`,
//! the registered claims and the scopes a principal carries.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use tokengate::auth::{claims, json, jws, Principal};
use tokengate::config::Profile;

use super::{issuers, jwt, AUDIENCES, ISSUER, NOW, SCOPE_CLAIMS};

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

pub(super) fn check_token(token: &str) {
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

pub(super) fn check_typ_rules(typ: Option<&str>) {
    let at_jwt = typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    let generic_ok = at_jwt || typ.is_none_or(|t| t.eq_ignore_ascii_case("jwt"));
    assert_eq!(claims::check_typ(typ, Profile::Rfc9068).is_ok(), at_jwt);
    assert_eq!(claims::check_typ(typ, Profile::Generic).is_ok(), generic_ok);
}

pub(super) fn number(claims: &Map<String, Value>, name: &str) -> Option<f64> {
    claims.get(name).and_then(Value::as_f64)
}

pub(super) fn check_claims(claims: &Map<String, Value>) {
    let forward = ["sub".to_string(), "tenant".to_string()];
    let [generic, rfc9068] = issuers();
    let got_generic = claims::validate(claims, generic, jwt(generic), 0, &forward, NOW);
    let got_rfc9068 = claims::validate(claims, rfc9068, jwt(rfc9068), 1, &forward, NOW);
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
    // A cnf is accepted only as a binding, proven per request.
    assert_eq!(
        Ok(p.binding.clone()),
        tokengate::auth::binding::from_cnf(claims.get("cnf")),
        "cnf not read as the token's binding"
    );
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
    // A forwarded claim is the token's, rendered as its header value.
    for (name, value) in &p.forwarded {
        let rendered = claims.get(name).and_then(Principal::header_value);
        assert_eq!(rendered.as_deref(), value.to_str().ok());
    }
}

/// Scopes come from the first scope claim present; a string splits on spaces.
pub(super) fn check_scopes(claims: &Map<String, Value>, scopes: &[String]) {
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
