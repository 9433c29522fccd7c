//! `bearer::extract` against a model of the credential rules written from
//! RFC 6750 section 2.1, independently of the implementation.

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use tokengate::auth::bearer::{self, Credential};
use tokengate::auth::AuthError;

use super::MAX_TOKEN_BYTES;

/// What `bearer::extract` must answer, written from the contract (behavior
/// section 2, RFC 6750 section 2.1) independently of the implementation.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BearerModel {
    None,
    Bearer(String),
    InvalidRequest,
    InvalidToken,
}

pub(super) fn b64token_ok(token: &[u8]) -> bool {
    let body = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body > 0
        && token[..body].iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

pub(super) fn bearer_model(values: &[&[u8]], query: Option<&str>) -> BearerModel {
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
pub(super) fn percent_decoded(text: &str) -> Vec<u8> {
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
