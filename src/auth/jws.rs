//! JWT structure, checked before any key lookup or crypto (docs/behavior.md
//! section 4, RFC 7515 / RFC 7519): exactly three base64url segments without
//! padding, a non-empty signature, a header and claims that are JSON objects
//! without duplicate names, and header parameters the gateway refuses to act
//! on (`jku`, `x5u`, `jwk`, `crit`, `cty: JWT`, `alg: none`).
//!
//! JWT libraries are lenient in places where a gateway must not be, so
//! these checks are ours; the signature arithmetic is aws-lc-rs's
//! (see `jwk`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::json;

/// A kid longer than this fails without a lookup.
pub const MAX_KID_BYTES: usize = 256;

/// The parts of a structurally valid JWT.
#[derive(Debug)]
pub struct Jwt<'a> {
    pub alg: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
    pub claims: Map<String, Value>,
    /// `header.payload`, the JWS signing input.
    pub signing_input: &'a str,
    /// The base64url signature segment.
    pub signature: &'a str,
}

/// Whether `token` is JWT-shaped (and so never sent to introspection).
/// Anything with a `.` is treated as a JWT, and refused unless it is one.
pub fn is_jwt_shaped(token: &str) -> bool {
    token.contains('.')
}

fn is_b64url(segment: &str) -> bool {
    super::bearer::all_bytes(segment.as_bytes(), |b| {
        b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
    })
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, &'static str> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| "malformed token encoding")
}

/// A compact JWS split and decoded, before any header rule.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// `header.payload`, the JWS signing input.
    pub signing_input: &'a str,
    /// The base64url signature segment.
    pub signature: &'a str,
}

/// Splits a compact JWS into its JSON header and claims (both objects with
/// unique names) and its signature segment; the error is the client-facing
/// reason, written for an access token.
pub fn decode(token: &str) -> Result<Decoded<'_>, &'static str> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(match token.split('.').count() {
            5 => "encrypted tokens are not accepted",
            _ => "token is not a signed JWT",
        });
    };
    if token.contains('=') {
        return Err("padding is not allowed in a JWT");
    }
    if header_b64.is_empty() || payload_b64.is_empty() {
        return Err("token is not a signed JWT");
    }
    if signature.is_empty() {
        return Err("token has no signature");
    }
    if !(is_b64url(header_b64) && is_b64url(payload_b64) && is_b64url(signature)) {
        return Err("malformed token encoding");
    }
    let header = json::parse_object(&decode_segment(header_b64)?)
        .ok_or("token header is not a JSON object with unique names")?;
    let claims = json::parse_object(&decode_segment(payload_b64)?)
        .ok_or("token claims are not a JSON object with unique names")?;
    Ok(Decoded {
        header,
        claims,
        signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
        signature,
    })
}

/// Checks the structure and header; the error is the client-facing reason.
pub fn parse(token: &str) -> Result<Jwt<'_>, &'static str> {
    let d = decode(token)?;
    let (alg, kid, typ) = check_header(&d.header)?;
    Ok(Jwt {
        alg,
        kid,
        typ,
        claims: d.claims,
        signing_input: d.signing_input,
        signature: d.signature,
    })
}

type HeaderFields = (String, Option<String>, Option<String>);

fn check_header(header: &Map<String, Value>) -> Result<HeaderFields, &'static str> {
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err("token header has no algorithm"),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err("unsigned tokens are not accepted");
    }
    for name in ["jku", "x5u", "jwk"] {
        if header.contains_key(name) {
            return Err("token header names a key location");
        }
    }
    if header.contains_key("crit") {
        return Err("token header has critical extensions");
    }
    match header.get("cty") {
        None => {}
        Some(Value::String(c)) if !c.eq_ignore_ascii_case("JWT") => {}
        Some(_) => return Err("nested tokens are not accepted"),
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= MAX_KID_BYTES => Some(k.clone()),
        Some(Value::String(_)) => return Err("token key id is too long"),
        Some(_) => return Err("token key id is not a string"),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err("token type is not a string"),
    };
    Ok((alg, kid, typ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, claims: &str, sig: &str) -> String {
        format!("{}.{}.{sig}", b64(header), b64(claims))
    }

    const H: &str = r#"{"alg":"RS256","kid":"k1","typ":"at+jwt"}"#;
    const C: &str = r#"{"iss":"i","exp":1}"#;

    #[test]
    fn parse_accepts_a_well_formed_token() {
        let t = token(H, C, "c2ln");
        let jwt = parse(&t).unwrap();
        assert_eq!(jwt.alg, "RS256");
        assert_eq!(jwt.kid.as_deref(), Some("k1"));
        assert_eq!(jwt.typ.as_deref(), Some("at+jwt"));
        assert_eq!(jwt.claims["iss"], "i");
        assert_eq!(jwt.signature, "c2ln");
        assert!(t.starts_with(jwt.signing_input) && t[jwt.signing_input.len()..].starts_with('.'));
    }

    #[test]
    fn parse_refuses_structural_defects() {
        let long_kid = format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(257));
        let cases: Vec<(String, &str)> = vec![
            (
                format!("{}.{}", b64(H), b64(C)),
                "token is not a signed JWT",
            ),
            (
                format!("{}.{}.c2ln.x", b64(H), b64(C)),
                "token is not a signed JWT",
            ),
            ("a.b.c.d.e".into(), "encrypted tokens are not accepted"),
            (token(H, C, ""), "token has no signature"),
            (format!(".{}.c2ln", b64(C)), "token is not a signed JWT"),
            (
                format!("{}=.{}.c2ln", b64(H), b64(C)),
                "padding is not allowed in a JWT",
            ),
            (token(H, C, "c2ln=="), "padding is not allowed in a JWT"),
            (token(H, C, "c2+n"), "malformed token encoding"),
            (token(H, C, "c2/n"), "malformed token encoding"),
            (
                token("[1]", C, "c2ln"),
                "token header is not a JSON object with unique names",
            ),
            (
                token(r#"{"alg":"RS256","alg":"RS256"}"#, C, "c2ln"),
                "token header is not a JSON object with unique names",
            ),
            (
                token(H, r#"{"sub":"a","sub":"b"}"#, "c2ln"),
                "token claims are not a JSON object with unique names",
            ),
            (
                token(H, "not json", "c2ln"),
                "token claims are not a JSON object with unique names",
            ),
            (
                token(r#"{"kid":"k"}"#, C, "c2ln"),
                "token header has no algorithm",
            ),
            (
                token(r#"{"alg":5}"#, C, "c2ln"),
                "token header has no algorithm",
            ),
            (
                token(r#"{"alg":"none"}"#, C, "c2ln"),
                "unsigned tokens are not accepted",
            ),
            (
                token(r#"{"alg":"NONE"}"#, C, "c2ln"),
                "unsigned tokens are not accepted",
            ),
            (
                token(r#"{"alg":"nOnE"}"#, C, "c2ln"),
                "unsigned tokens are not accepted",
            ),
            (
                token(r#"{"alg":"RS256","jku":"https://evil/jwks"}"#, C, "c2ln"),
                "token header names a key location",
            ),
            (
                token(r#"{"alg":"RS256","x5u":"https://evil/cert"}"#, C, "c2ln"),
                "token header names a key location",
            ),
            (
                token(r#"{"alg":"RS256","jwk":{"kty":"RSA"}}"#, C, "c2ln"),
                "token header names a key location",
            ),
            (
                token(r#"{"alg":"RS256","crit":["exp"]}"#, C, "c2ln"),
                "token header has critical extensions",
            ),
            (
                token(r#"{"alg":"RS256","cty":"JWT"}"#, C, "c2ln"),
                "nested tokens are not accepted",
            ),
            (
                token(r#"{"alg":"RS256","cty":"jwt"}"#, C, "c2ln"),
                "nested tokens are not accepted",
            ),
            (
                token(r#"{"alg":"RS256","kid":7}"#, C, "c2ln"),
                "token key id is not a string",
            ),
            (token(&long_kid, C, "c2ln"), "token key id is too long"),
            (
                token(r#"{"alg":"RS256","typ":1}"#, C, "c2ln"),
                "token type is not a string",
            ),
        ];
        for (t, want) in cases {
            assert_eq!(parse(&t).err(), Some(want), "{t}");
        }
    }

    #[test]
    fn parse_kid_of_256_bytes_is_accepted() {
        let h = format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(256));
        assert!(parse(&token(&h, C, "c2ln")).is_ok());
    }

    #[test]
    fn is_jwt_shaped_table() {
        assert!(is_jwt_shaped("a.b.c"));
        assert!(is_jwt_shaped("a.b"));
        assert!(!is_jwt_shaped("opaque-token_123"));
    }
}
