//! Introspection answers (RFC 7662): what an answer may turn into, and
//! that the cached principal matches it.

use std::sync::OnceLock;

use serde_json::Value;

use tokengate::auth::introspect::{Answer, Introspector};
use tokengate::auth::json;
use tokengate::fetch::HttpFetcher;

use super::jws::check_scopes;
use super::{issuers, AUDIENCES, ISSUER, NOW};

pub(super) fn introspector() -> &'static Introspector {
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
            None,
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
    let dpop_bound = p.binding.as_ref().is_some_and(|b| b.jkt.is_some());
    assert!(doc
        .get("token_type")
        .is_none_or(|t| t
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")
                || (dpop_bound && t.eq_ignore_ascii_case("dpop")))));
    // A cnf is accepted only as a binding, proven per request.
    assert_eq!(
        Ok(p.binding.clone()),
        tokengate::auth::binding::from_cnf(doc.get("cnf")),
        "cnf not read as the answer's binding"
    );
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
pub(super) fn same_json(a: &Value, b: &Value) -> bool {
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
