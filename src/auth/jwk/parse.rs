//! One JWK to a [`VerifyKey`], or `None` when the key must be skipped: the
//! load-time filter of docs/behavior.md's key-set rules, and the parsing of
//! the key into aws-lc-rs verification keys.
//!
//! The members are read through `jsonwebtoken::jwk::Jwk`, except where the
//! model would loosen a check:
//!
//! * private members (`d`, `p`, ..., `k`): the model ignores members it does
//!   not name, so their absence is checked on the raw object first;
//! * `null` for `use`, `key_ops`, `alg` or `kid`: the model reads `null` as
//!   absent, and such a key is refused, so `null` is checked on the raw
//!   object too;
//! * `kty`, `crv` and key-size checks: the model accepts any `n` and `e`,
//!   P-521 and `Ed25519` under `EC`; the match below keeps only what
//!   aws-lc-rs verifies.
//!
//! Where the model is stricter, the key is skipped: a member it types
//! (`x5c`, `x5u`, `x5t`, `x5t#S256`, a `key_ops` entry) with another JSON
//! type makes the whole JWK unreadable.

use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::signature::ParsedPublicKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use serde::Deserialize;
use serde_json::Value;

use super::der::{modulus_bits, rsa_public_key_der};
use super::{verification_algorithm, KeyKind, VerifyKey, RSA_BITS};
use crate::config::Algorithm;

/// Members that only private keys have (RFC 7518 section 6).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Members the model reads `null` as absent for, where we refuse the key.
const NOT_NULL: &[&str] = &["use", "key_ops", "alg", "kid"];

/// A key's verification form: its kind, the public key in the form
/// aws-lc-rs parses, and the text its fingerprint covers.
type Material = (KeyKind, Vec<u8>, String);

/// One JWK → a usable key, or `None` when it must be skipped.
pub(super) fn parse_key(jwk: &Value) -> Option<VerifyKey> {
    let object = jwk.as_object()?;
    if PRIVATE_MEMBERS.iter().any(|m| object.contains_key(*m))
        || NOT_NULL
            .iter()
            .any(|m| object.get(*m) == Some(&Value::Null))
    {
        return None;
    }
    let jwk = Jwk::deserialize(jwk).ok()?;
    let common = &jwk.common;
    if common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
        || common
            .key_operations
            .as_ref()
            .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return None;
    }
    let alg = match common.key_algorithm {
        None => None,
        Some(a) => Some(algorithm(a)?),
    };
    let (kind, public, material) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => rsa_material(&rsa.n, &rsa.e)?,
        AlgorithmParameters::EllipticCurve(ec) => ec_material(&ec.curve, &ec.x, &ec.y)?,
        AlgorithmParameters::OctetKeyPair(okp) => ed25519_material(&okp.curve, &okp.x)?,
        _ => return None,
    };
    if alg.is_some_and(|a| !kind.fits(a)) {
        return None;
    }
    let parsed: Vec<(Algorithm, ParsedPublicKey)> = Algorithm::ALL
        .into_iter()
        .filter(|a| kind.fits(*a) && alg.is_none_or(|only| only == *a))
        .filter_map(|a| {
            ParsedPublicKey::new(verification_algorithm(a), &public)
                .ok()
                .map(|k| (a, k))
        })
        .collect();
    if parsed.is_empty() {
        // Not a valid point / modulus: unusable.
        return None;
    }
    let kid = common.key_id.clone();
    let fingerprint = fingerprint(kid.as_deref(), alg, &material);
    Some(VerifyKey {
        kid,
        kind,
        alg,
        parsed,
        fingerprint,
    })
}

/// A DPoP proof's public key, parsed for the proof's one algorithm, and its
/// RFC 7638 thumbprint (base64url of SHA-256 over the required members in
/// lexicographic order, without white space).
pub struct ProofKey {
    pub key: ParsedPublicKey,
    pub thumbprint: String,
}

/// The `jwk` header of a DPoP proof → a key for `alg` only: a JSON object
/// with string members, no private member, a kty (and curve) that fits
/// `alg`, and a valid point or modulus. Parsing once for one algorithm is
/// what keeps a proof to one key parse.
pub(crate) fn proof_key(jwk: &Value, alg: Algorithm) -> Result<ProofKey, &'static str> {
    const BAD: &str = "proof key is not a usable public JWK";
    let object = jwk.as_object().ok_or(BAD)?;
    if PRIVATE_MEMBERS.iter().any(|m| object.contains_key(*m)) {
        return Err("proof key has private members");
    }
    let text = |name: &str| object.get(name).and_then(Value::as_str).ok_or(BAD);
    let (material, canonical) = match text("kty")? {
        "RSA" => {
            let (n, e) = (text("n")?, text("e")?);
            (
                rsa_material(n, e),
                format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
            )
        }
        "EC" => {
            let (crv, x, y) = (text("crv")?, text("x")?, text("y")?);
            let curve = match crv {
                "P-256" => EllipticCurve::P256,
                "P-384" => EllipticCurve::P384,
                _ => return Err(BAD),
            };
            let canonical = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#);
            (ec_material(&curve, x, y), canonical)
        }
        "OKP" => {
            let (crv, x) = (text("crv")?, text("x")?);
            let curve = match crv {
                "Ed25519" => EllipticCurve::Ed25519,
                _ => return Err(BAD),
            };
            let canonical = format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{x}"}}"#);
            (ed25519_material(&curve, x), canonical)
        }
        _ => return Err(BAD),
    };
    let (kind, public, _) = material.ok_or(BAD)?;
    if !kind.fits(alg) {
        return Err("proof key does not fit the proof algorithm");
    }
    let key = ParsedPublicKey::new(verification_algorithm(alg), &public).map_err(|_| BAD)?;
    let digest = aws_lc_rs::digest::digest(&SHA256, canonical.as_bytes());
    Ok(ProofKey {
        key,
        thumbprint: URL_SAFE_NO_PAD.encode(digest.as_ref()),
    })
}

/// The algorithms we verify, by their JWK `alg` name; `None` for the rest.
fn algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    use KeyAlgorithm as K;
    Some(match alg {
        K::RS256 => Algorithm::RS256,
        K::RS384 => Algorithm::RS384,
        K::RS512 => Algorithm::RS512,
        K::PS256 => Algorithm::PS256,
        K::PS384 => Algorithm::PS384,
        K::PS512 => Algorithm::PS512,
        K::ES256 => Algorithm::ES256,
        K::ES384 => Algorithm::ES384,
        K::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

fn b64(value: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value).ok()
}

/// RSA of [`RSA_BITS`] with a non-empty exponent.
fn rsa_material(n: &str, e: &str) -> Option<Material> {
    let (modulus, exponent) = (b64(n)?, b64(e)?);
    if !RSA_BITS.contains(&modulus_bits(&modulus)) || exponent.is_empty() {
        return None;
    }
    let der = rsa_public_key_der(&modulus, &exponent);
    Some((KeyKind::Rsa, der, format!("RSA.{n}.{e}")))
}

/// P-256 or P-384, each coordinate of the curve's length.
fn ec_material(curve: &EllipticCurve, x: &str, y: &str) -> Option<Material> {
    let (kind, len) = match curve {
        EllipticCurve::P256 => (KeyKind::P256, 32),
        EllipticCurve::P384 => (KeyKind::P384, 48),
        _ => return None,
    };
    let (xb, yb) = (b64(x)?, b64(y)?);
    if xb.len() != len || yb.len() != len {
        return None;
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&xb);
    point.extend_from_slice(&yb);
    Some((kind, point, format!("EC.{x}.{y}")))
}

/// Ed25519 with a 32-byte public key.
fn ed25519_material(curve: &EllipticCurve, x: &str) -> Option<Material> {
    let xb = b64(x)?;
    if *curve != EllipticCurve::Ed25519 || xb.len() != 32 {
        return None;
    }
    Some((KeyKind::Ed25519, xb, format!("OKP.{x}")))
}

/// SHA-256 over the kid, the JWK's `alg` and the key material.
fn fingerprint(kid: Option<&str>, alg: Option<Algorithm>, material: &str) -> [u8; 32] {
    let mut hasher = Context::new(&SHA256);
    hasher.update(kid.unwrap_or("").as_bytes());
    hasher.update(&[0]);
    hasher.update(alg.map_or("", |a| a.name()).as_bytes());
    hasher.update(&[0]);
    hasher.update(material.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(hasher.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ec, ed25519_x, n_of_bits, rsa_n};
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_key_filters_unusable_keys() {
        let ed = ed25519_x();
        let rsa = |extra: Value| {
            let mut k = json!({"kty": "RSA", "n": rsa_n(0), "e": "AQAB", "kid": "r"});
            for (name, v) in extra.as_object().unwrap() {
                k[name] = v.clone();
            }
            k
        };
        let cases: Vec<(Value, bool)> = vec![
            (rsa(json!({})), true),
            (
                rsa(json!({"use": "sig", "alg": "PS256", "key_ops": ["verify"]})),
                true,
            ),
            (rsa(json!({"key_ops": ["sign", "verify"]})), true),
            (rsa(json!({"x5c": ["MIIB"]})), true),
            (
                json!({"kty": "RSA", "n": n_of_bits(1024), "e": "AQAB"}),
                false,
            ),
            (
                json!({"kty": "RSA", "n": n_of_bits(2040), "e": "AQAB"}),
                false,
            ),
            (
                json!({"kty": "RSA", "n": n_of_bits(8200), "e": "AQAB"}),
                false,
            ),
            (
                json!({"kty": "RSA", "n": n_of_bits(16384), "e": "AQAB"}),
                false,
            ),
            (json!({"kty": "RSA", "n": rsa_n(0), "e": ""}), false),
            (json!({"kty": "RSA", "n": rsa_n(0), "e": 3}), false),
            (json!({"kty": "RSA", "n": rsa_n(0)}), false),
            (rsa(json!({"d": "AQAB"})), false),
            (rsa(json!({"oth": []})), false),
            (rsa(json!({"use": "enc"})), false),
            (rsa(json!({"use": 1})), false),
            (rsa(json!({"key_ops": ["encrypt"]})), false),
            (rsa(json!({"key_ops": "verify"})), false),
            (rsa(json!({"alg": "RSA-OAEP"})), false),
            (rsa(json!({"alg": "ES256"})), false),
            (rsa(json!({"alg": "HS256"})), false),
            (rsa(json!({"alg": "no-such-alg"})), false),
            (rsa(json!({"kid": 5})), false),
            (rsa(json!({"kid": null})), false),
            (rsa(json!({"alg": null})), false),
            (rsa(json!({"use": null})), false),
            (rsa(json!({"key_ops": null})), false),
            (rsa(json!({"x5c": "not a list"})), false),
            (json!({"kty": "oct", "k": "c2VjcmV0"}), false),
            (json!({"kty": "oct"}), false),
            (json!({"kty": "rsa", "n": rsa_n(0), "e": "AQAB"}), false),
            (ec("P-256", 32), true),
            (ec("P-384", 48), true),
            (ec("P-521", 66), false),
            (ec("P-256", 31), false),
            (ec("secp256k1", 32), false),
            (
                json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode([7u8; 32]), "y": URL_SAFE_NO_PAD.encode([7u8; 32])}),
                false,
            ),
            (
                json!({"kty": "EC", "crv": "Ed25519", "x": ed, "y": ed}),
                false,
            ),
            (json!({"kty": "OKP", "crv": "Ed25519", "x": ed}), true),
            (json!({"kty": "OKP", "crv": "X25519", "x": ed}), false),
            (json!({"kty": "OKP", "crv": "P-256", "x": ed}), false),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "x": ed, "d": ed}),
                false,
            ),
            (json!("not an object"), false),
        ];
        for (jwk, usable) in cases {
            assert_eq!(parse_key(&jwk).is_some(), usable, "{jwk}");
        }
    }

    #[test]
    fn fingerprint_covers_kid_alg_and_material() {
        let base = fingerprint(Some("k"), Some(Algorithm::RS256), "RSA.n.e");
        for other in [
            fingerprint(None, Some(Algorithm::RS256), "RSA.n.e"),
            fingerprint(Some("k"), None, "RSA.n.e"),
            fingerprint(Some("k"), Some(Algorithm::RS256), "RSA.n.f"),
        ] {
            assert_ne!(base, other);
        }
        assert_eq!(
            base,
            fingerprint(Some("k"), Some(Algorithm::RS256), "RSA.n.e")
        );
    }
}
