//! Bearer credential extraction (RFC 6750 section 2.1, docs/behavior.md
//! section 3).
//!
//! `Authorization: Bearer <b64token>`: the scheme is case-insensitive and one
//! or more spaces may follow it; the token must match
//! `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. Anything
//! else that announces itself as Bearer, two `Authorization` headers, or an
//! `access_token` query parameter next to the header is a malformed request.
//! An `access_token` query parameter alone is ignored (the gateway never
//! accepts tokens in URLs); another scheme is no credential at all.
//!
//! With `[dpop]`, `Authorization: DPoP <token>` (RFC 9449 section 7.1) is
//! read by the same rules: the scheme case-insensitive, the same token
//! grammar; without it, `DPoP` is just another scheme.

use http::header::AUTHORIZATION;
use http::HeaderMap;
use std::borrow::Cow;

use super::error::AuthError;

/// The credential a request carries, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    None,
    Bearer(&'a str),
    /// A token presented with the DPoP scheme.
    Dpop(&'a str),
}

/// Extracts the bearer token; `query` is the raw query string.
pub fn extract<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
    max_token_bytes: usize,
) -> Result<Credential<'a>, AuthError> {
    extract_with(headers, query, max_token_bytes, false)
}

/// The scheme at the start of a credential, and its length: `Bearer`, or
/// with `dpop_on` also `DPoP`; followed by a space, a tab or nothing.
fn scheme(bytes: &[u8], dpop_on: bool) -> Option<(bool, usize)> {
    let named = |name: &[u8]| {
        bytes.len() >= name.len()
            && bytes[..name.len()].eq_ignore_ascii_case(name)
            && bytes
                .get(name.len())
                .is_none_or(|&b| b == b' ' || b == b'\t')
    };
    if named(b"bearer") {
        Some((false, 6))
    } else if dpop_on && named(b"dpop") {
        Some((true, 4))
    } else {
        None
    }
}

/// Whether the request's (first) `Authorization` header uses the DPoP
/// scheme, well-formed or not: its refusals are answered with the DPoP
/// challenge.
pub fn uses_dpop_scheme(headers: &HeaderMap) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| scheme(v.as_bytes(), true))
        .is_some_and(|(dpop, _)| dpop)
}

/// Extracts a Bearer or (with `dpop_on`) DPoP credential.
pub fn extract_with<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
    max_token_bytes: usize,
    dpop_on: bool,
) -> Result<Credential<'a>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(Credential::None);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest("multiple Authorization headers"));
    }
    if query.is_some_and(has_access_token_param) {
        return Err(AuthError::InvalidRequest(
            "token in both the Authorization header and the query",
        ));
    }
    let bytes = value.as_bytes();
    let Some((dpop, scheme_len)) = scheme(bytes, dpop_on) else {
        return Ok(Credential::None);
    };
    let rest = &bytes[scheme_len..];
    let malformed = AuthError::InvalidRequest(if dpop {
        "malformed DPoP credential"
    } else {
        "malformed bearer credential"
    });
    let token_start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    if token_start == 0 || token_start == rest.len() {
        return Err(malformed);
    }
    let token = &rest[token_start..];
    if !is_b64token(token) {
        return Err(malformed);
    }
    if token.len() > max_token_bytes {
        return Err(AuthError::InvalidToken("token too long"));
    }
    // is_b64token admits ASCII only, so this cannot fail.
    match std::str::from_utf8(token) {
        Ok(t) if dpop => Ok(Credential::Dpop(t)),
        Ok(t) => Ok(Credential::Bearer(t)),
        Err(_) => Err(malformed),
    }
}

fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body_len > 0 && all_bytes(&token[..body_len], is_b64token_byte)
}

fn is_b64token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// Whether every byte passes `ok`. Checks whole 32-byte blocks without an
/// early exit, which the compiler turns into vector code: a token is checked
/// on every request, and a JWT is about a kilobyte.
pub(crate) fn all_bytes(bytes: &[u8], ok: impl Fn(u8) -> bool + Copy) -> bool {
    let mut blocks = bytes.chunks_exact(32);
    let blocks_ok = blocks
        .by_ref()
        .all(|block| block.iter().fold(true, |acc, &b| acc & ok(b)));
    blocks_ok && blocks.remainder().iter().all(|&b| ok(b))
}

/// Whether the query has a parameter named `access_token` (RFC 6750 2.3).
pub fn has_access_token_param(query: &str) -> bool {
    query.split('&').any(is_access_token_pair)
}

/// The query without its `access_token` parameters (for
/// `forward.strip_authorization`, so that a token in a URL never reaches
/// the upstream's logs); `None` when nothing is left. Borrows when there is
/// nothing to remove.
pub fn without_access_token(query: &str) -> Option<Cow<'_, str>> {
    if !has_access_token_param(query) {
        return Some(Cow::Borrowed(query));
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !is_access_token_pair(pair))
        .collect();
    (!kept.iter().all(|p| p.is_empty())).then(|| Cow::Owned(kept.join("&")))
}

/// A `name=value` pair whose name is `access_token`, also when the name is
/// percent-encoded (`access%5Ftoken`), as a backend would decode it.
fn is_access_token_pair(pair: &str) -> bool {
    let name = pair.split_once('=').map_or(pair, |(n, _)| n);
    if !name.contains('%') {
        return name == "access_token";
    }
    let bytes = name.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(b) => {
                decoded.push(b);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    decoded == b"access_token"
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn without_access_token_table() {
        let cases = [
            ("a=1&b=2", Some("a=1&b=2")),
            ("access_token=t", None),
            ("a=1&access_token=t&b=2", Some("a=1&b=2")),
            ("access_token=t&access_token=u&a", Some("a")),
            ("access%5Ftoken=t&a=1", Some("a=1")),
            ("access%5ftoken=t", None),
            ("access_tokens=1", Some("access_tokens=1")),
            ("x_access_token=1", Some("x_access_token=1")),
            ("access_token", None),
            ("&access_token=t&", None),
            ("access%+5Ftoken=t", Some("access%+5Ftoken=t")),
        ];
        for (query, want) in cases {
            assert_eq!(without_access_token(query).as_deref(), want, "{query}");
        }
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn extract_grammar_table() {
        let ok = |t: &'static str| Ok::<_, AuthError>(Credential::Bearer(t));
        let bad = Err::<Credential, _>(AuthError::InvalidRequest("malformed bearer credential"));
        let cases: Vec<(&[u8], Result<Credential, AuthError>)> = vec![
            (b"Bearer abc", ok("abc")),
            (b"bearer abc", ok("abc")),
            (b"BEARER abc", ok("abc")),
            (b"Bearer    abc", ok("abc")),
            (b"Bearer a-b.c_d~e+f/g==", ok("a-b.c_d~e+f/g==")),
            (b"Basic dXNlcjpwYXNz", Ok(Credential::None)),
            (b"Bearerabc", Ok(Credential::None)),
            (b"Digest x", Ok(Credential::None)),
            (b"Bearer", bad.clone()),
            (b"Bearer ", bad.clone()),
            (b"Bearer   ", bad.clone()),
            (b"Bearer\tabc", bad.clone()),
            (b"Bearer a\tb", bad.clone()),
            (b"Bearer abc def", bad.clone()),
            (b"Bearer abc ", bad.clone()),
            (b"Bearer abc,def", bad.clone()),
            (b"Bearer \"abc\"", bad.clone()),
            (b"Bearer ab=c", bad.clone()),
            (b"Bearer ===", bad.clone()),
            (b"Bearer caf\xc3\xa9", bad.clone()),
        ];
        for (value, want) in cases {
            let h = headers(&[value]);
            assert_eq!(
                extract(&h, None, 8192),
                want,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn extract_two_headers_is_invalid_request() {
        let h = headers(&[b"Bearer a", b"Bearer b"]);
        assert!(matches!(
            extract(&h, None, 8192),
            Err(AuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn extract_query_token_next_to_header_is_invalid_request() {
        let h = headers(&[b"Bearer a"]);
        assert!(matches!(
            extract(&h, Some("x=1&access_token=b"), 8192),
            Err(AuthError::InvalidRequest(_))
        ));
        assert_eq!(
            extract(&h, Some("access_tokens=1"), 8192),
            Ok(Credential::Bearer("a"))
        );
    }

    #[test]
    fn extract_query_token_alone_is_no_credential() {
        assert_eq!(
            extract(&HeaderMap::new(), Some("access_token=b"), 8192),
            Ok(Credential::None)
        );
    }

    #[test]
    fn extract_token_over_limit_is_invalid_token() {
        let h = headers(&[b"Bearer abcdef"]);
        assert_eq!(extract(&h, None, 6), Ok(Credential::Bearer("abcdef")));
        assert_eq!(
            extract(&h, None, 5),
            Err(AuthError::InvalidToken("token too long"))
        );
    }
}
