//! JWK Set loading: every kept key obeys the filter rules, nothing is lost
//! or invented, and key selection answers consistently.

use serde_json::Value;

use tokengate::auth::jwk::{KeyMiss, KeySet};
use tokengate::config::Algorithm;

/// Members only private keys have (RFC 7518 section 6).
pub(super) const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Whether the kept `key` may have come from `jwk`, by the filter rules.
pub(super) fn may_come_from(key: &tokengate::auth::jwk::VerifyKey, jwk: &Value) -> bool {
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
pub(super) fn check_select(set: &KeySet) {
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
