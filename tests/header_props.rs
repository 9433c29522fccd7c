//! Property tests of header hygiene (behavior.md section 6) on random
//! header maps: after `clean_request` no hop-by-hop header, no header named
//! by `Connection`, no routing override, no `Forwarded`, no identity header,
//! no client-address header (unless the peer is trusted) and (unless
//! allowed) no name with `_` is left, and every other header is
//! kept with its values in order; `clean_response` likewise for its lists.
//!
//! The lists below are written from the contract, not taken from the code,
//! so a header dropped from the code's lists fails here.

#[path = "common/header_names.rs"]
mod header_names;

use header_names::ROUTING_OVERRIDES;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use tokengate::proxy::headers::{clean_request, clean_response, RequestPolicy};

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "http2-settings",
];

/// Client-address headers: kept only from a trusted proxy.
const CLIENT_ADDRESS: &[&str] = &[
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "forwarded-for",
];

/// Names that must survive unless `Connection` names them.
const ORDINARY: &[&str] = &[
    "accept",
    "authorization",
    "cookie",
    "content-type",
    "content-length",
    "x-custom",
    "x-request-id",
    "x-forwarded-for",
    "x-auth-subject",
    "x-auth-scope",
    "proxy-authenticate",
    "x_custom",
    "x_auth_subject",
    "x-a_b",
];

static UPGRADE_TOKEN: HeaderValue = HeaderValue::from_static("upgrade");

const IDENTITY: &[&str] = &["x-auth-subject", "x-auth-scope", "x-auth-client-id"];

fn name() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        2 => prop::sample::select(HOP_BY_HOP),
        1 => prop::sample::select(ROUTING_OVERRIDES),
        1 => Just("forwarded"),
        1 => prop::sample::select(CLIENT_ADDRESS),
        4 => prop::sample::select(ORDINARY),
    ]
}

/// A `Connection` value: tokens naming random headers (any case, odd
/// spacing, empty list members), plus the usual `close` / `keep-alive`.
fn connection_value() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        3 => name().prop_map(String::from),
        1 => name().prop_map(|n| n.to_ascii_uppercase()),
        1 => prop::sample::select(&["close", "keep-alive", "upgrade", ""][..]).prop_map(String::from),
    ];
    let sep = prop::sample::select(&[",", ", ", " ,", ",,", " , "][..]);
    prop::collection::vec((token, sep), 1..4).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(t, s)| format!("{t}{s}"))
            .collect::<String>()
    })
}

fn header() -> impl Strategy<Value = (String, String)> {
    let value =
        prop::sample::select(&["1", "v", "a, b", "x y", "close"][..]).prop_map(String::from);
    prop_oneof![
        6 => (name().prop_map(String::from), value),
        1 => (Just("connection".to_string()), connection_value()),
    ]
}

fn header_map() -> impl Strategy<Value = HeaderMap> {
    prop::collection::vec(header(), 0..16).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).expect("generated name"),
                HeaderValue::from_str(&v).expect("generated value"),
            );
        }
        map
    })
}

/// The names `Connection` lists, lower-cased (RFC 9110 section 7.6.1).
fn connection_named(map: &HeaderMap) -> Vec<String> {
    map.get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn values<'a>(map: &'a HeaderMap, name: &str) -> Vec<&'a HeaderValue> {
    map.get_all(name).iter().collect()
}

/// Checks `after` against `before`: exactly the headers for which `strip`
/// holds are gone, every other one is kept with its values in order, and
/// nothing else was added except `added`.
fn check_cleaned(
    before: &HeaderMap,
    after: &HeaderMap,
    strip: impl Fn(&str) -> bool,
    added: &[&str],
) -> Result<(), TestCaseError> {
    let named = connection_named(before);
    for name in before.keys() {
        let n = name.as_str();
        if added.contains(&n) {
            continue;
        }
        let gone = strip(n) || named.iter().any(|c| c == n);
        if gone {
            prop_assert!(!after.contains_key(name), "{} left in {:?}", n, after);
        } else {
            prop_assert_eq!(
                values(after, n),
                values(before, n),
                "{} changed in {:?}",
                n,
                after
            );
        }
    }
    for name in after.keys() {
        prop_assert!(
            before.contains_key(name) || added.contains(&name.as_str()),
            "{} added",
            name
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn clean_request_leaves_only_end_to_end_headers(
        before in header_map(),
        identity in prop::sample::subsequence(IDENTITY.to_vec(), 0..=IDENTITY.len()),
        allow_underscore in any::<bool>(),
        peer_trusted in any::<bool>(),
    ) {
        let identity: Vec<HeaderName> =
            identity.iter().map(|n| HeaderName::from_static(n)).collect();
        let policy = RequestPolicy {
            identity_headers: &identity,
            allow_underscore_headers: allow_underscore,
            peer_trusted,
            upgrade: None,
        };
        let mut after = before.clone();
        clean_request(&mut after, &policy);
        check_cleaned(
            &before,
            &after,
            |n| {
                HOP_BY_HOP.contains(&n)
                    || ROUTING_OVERRIDES.contains(&n)
                    || n == "forwarded"
                    || (!peer_trusted && CLIENT_ADDRESS.contains(&n))
                    || identity.iter().any(|i| i == n)
                    || (!allow_underscore && n.contains('_'))
            },
            &[],
        )?;
    }

    #[test]
    fn clean_request_upgrade_sets_only_the_upgrade_pair(before in header_map()) {
        let upgrade = HeaderValue::from_static("websocket");
        let policy = RequestPolicy {
            identity_headers: &[],
            allow_underscore_headers: false,
            peer_trusted: false,
            upgrade: Some(upgrade.clone()),
        };
        let mut after = before.clone();
        clean_request(&mut after, &policy);
        check_cleaned(
            &before,
            &after,
            |n| {
                HOP_BY_HOP.contains(&n)
                    || ROUTING_OVERRIDES.contains(&n)
                    || n == "forwarded"
                    || CLIENT_ADDRESS.contains(&n)
                    || n.contains('_')
            },
            &["connection", "upgrade"],
        )?;
        prop_assert_eq!(values(&after, "connection"), vec![&UPGRADE_TOKEN]);
        prop_assert_eq!(values(&after, "upgrade"), vec![&upgrade]);
    }

    #[test]
    fn clean_response_leaves_only_end_to_end_headers(
        before in header_map(),
        switching in any::<bool>(),
    ) {
        let mut after = before.clone();
        clean_response(&mut after, switching);
        let upgrade = before.get("upgrade").filter(|_| switching);
        let added: &[&str] = if upgrade.is_some() { &["connection", "upgrade"] } else { &[] };
        check_cleaned(
            &before,
            &after,
            |n| HOP_BY_HOP.contains(&n) || n == "proxy-authenticate",
            added,
        )?;
        if let Some(upgrade) = upgrade {
            prop_assert_eq!(values(&after, "connection"), vec![&UPGRADE_TOKEN]);
            prop_assert_eq!(values(&after, "upgrade"), vec![upgrade]);
        }
    }
}
