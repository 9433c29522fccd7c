//! The shared assertions on gateway answers: refusals with their RFC 6750
//! challenge ([`assert_refused`], [`assert_invalid_token`],
//! [`assert_invalid_token_hides`]), the fail-closed 503
//! ([`assert_unavailable`]), a forwarded answer ([`assert_forwarded`]) and a
//! refused request target ([`assert_bad_target`]).

use std::collections::BTreeMap;

use super::{RawReply, Reply};

/// The realm of every configuration that does not set `server.realm`.
pub const DEFAULT_REALM: &str = "tokengate";

/// The body as text, for failure messages.
pub fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// The status, the body in the failure message.
pub fn assert_status(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {:?}", text(reply));
}

/// Parses an RFC 6750 challenge: `Bearer` then `name="value"` parameters,
/// every value quoted and every name at most once.
pub fn parse_challenge(value: &str) -> BTreeMap<String, String> {
    let rest = value
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("challenge is not Bearer: {value:?}"));
    parse_params(value, rest)
}

/// Parses a challenge of any scheme (`DPoP realm="..", algs=".."`) by the
/// rules of [`parse_challenge`]: the scheme, then its parameters.
pub fn parse_scheme_challenge(value: &str) -> (String, BTreeMap<String, String>) {
    let (scheme, rest) = value
        .split_once(' ')
        .unwrap_or_else(|| panic!("challenge without parameters: {value:?}"));
    (scheme.to_string(), parse_params(value, rest))
}

/// The `name="value"` parameters in `rest`, the part of challenge `value`
/// after its scheme.
fn parse_params(value: &str, rest: &str) -> BTreeMap<String, String> {
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

/// Asserts a gateway refusal: status, one challenge that starts with the
/// realm and carries exactly `realm` plus `error`/`error_description` when
/// `error` is set, plus a last `scope` for 403; the JSON body and its
/// headers. Returns the description.
pub fn assert_refused(
    reply: &Reply,
    realm: &str,
    status: u16,
    error: Option<&str>,
    scope: Option<&str>,
) -> String {
    let body = reply.gateway_error(status);
    let description = body["error_description"]
        .as_str()
        .expect("description")
        .to_string();
    let challenges = reply.header_all("www-authenticate");
    assert_eq!(challenges.len(), 1, "one challenge: {challenges:?}");
    let challenge = challenges[0];
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{realm}\"")),
        "{challenge}"
    );
    let params = parse_challenge(challenge);
    assert_eq!(
        params.get("realm").map(String::as_str),
        Some(realm),
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
            if let Some(scope) = scope {
                assert!(
                    challenge.ends_with(&format!(", scope=\"{scope}\"")),
                    "{challenge}"
                );
            }
            let expected = 3 + usize::from(scope.is_some());
            assert_eq!(params.len(), expected, "{params:?}");
        }
    }
    assert!(description.is_ascii() && !description.is_empty());
    description
}

/// 403 `insufficient_scope` in the default realm, the challenge naming
/// `scope`.
pub fn assert_insufficient_scope(reply: &Reply, scope: &str) {
    assert_refused(
        reply,
        DEFAULT_REALM,
        403,
        Some("insufficient_scope"),
        Some(scope),
    );
}

/// 401 `invalid_token` with its challenge in the default realm.
pub fn assert_invalid_token(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {:?}", text(reply));
    assert_eq!(reply.gateway_error(401)["error"], "invalid_token", "{what}");
    let challenge = reply.header("www-authenticate").expect("challenge");
    assert!(
        challenge.starts_with("Bearer realm=\"tokengate\""),
        "{what}: {challenge}"
    );
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
}

/// 401 `invalid_token` in `realm` whose description echoes nothing of the
/// token: not the token, none of its longer segments, no key id or
/// algorithm the tests use.
pub fn assert_invalid_token_hides(reply: &Reply, realm: &str, token: &str, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {:?}", text(reply));
    let description = assert_refused(reply, realm, 401, Some("invalid_token"), None);
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

/// 503 `temporarily_unavailable` with `Retry-After` and no challenge.
pub fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {:?}", text(reply));
    let body = reply.gateway_error(503);
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    assert!(
        reply.header("www-authenticate").is_none(),
        "{what}: no challenge on 503"
    );
    let retry = reply.header("retry-after").expect("Retry-After");
    assert!(retry.parse::<u32>().is_ok_and(|s| s > 0), "{what}: {retry}");
}

/// 200 from the `echo` upstream.
pub fn assert_forwarded(reply: &Reply, what: &str) {
    assert_status(reply, 200, what);
    assert_eq!(
        reply.header("x-upstream"),
        Some("echo"),
        "{what}: the upstream answered"
    );
}

/// 400, and `invalid_request` when the gateway (not hyper) wrote the body.
pub fn assert_bad_target(reply: &RawReply, what: &str) {
    assert_eq!(reply.status, 400, "{what}: {}", reply.head);
    if let Some(json) = reply.gateway_json() {
        assert_eq!(json["error"], "invalid_request", "{what}: {json}");
        assert!(json["error_description"].is_string(), "{what}: {json}");
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
    }
}
