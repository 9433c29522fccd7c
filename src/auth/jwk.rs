//! JWK Sets (RFC 7517): the parsed keys, the set indexed by kid, and key
//! selection for a token (docs/behavior.md, key sets). Reading one JWK is
//! `parse`'s; the RSA DER arithmetic is `der`'s.
//!
//! A key is kept only if it can only ever verify: RSA of 2048 to 8192 bits
//! (the range aws-lc-rs verifies; a larger modulus would load and then fail
//! every signature), EC P-256/P-384 and Ed25519; `oct` keys, keys with
//! private members, keys whose `use` is not `sig` or whose `key_ops` lacks
//! `verify`, and keys with an unknown `alg` are skipped and counted, never
//! failing the set. `DecodingKey::from_jwk` would ignore `alg` and `use`
//! and accept `oct`, so the filter is ours; the members are read with
//! `jsonwebtoken::jwk`'s model types where that keeps every check (`parse`
//! says where it does not).
//!
//! Verification stays on aws-lc-rs keys parsed once, when the set is loaded,
//! one per algorithm the key may verify, not on `jsonwebtoken::decode`:
//! jsonwebtoken's verifier rebuilds the RSA key from `n` and `e` on every
//! call. Measured with `cargo bench --bench auth -- rs256`
//! (`benches/auth.rs`, fat LTO, RSA-2048, medians of three runs on a shared
//! 2-core machine under other load):
//!
//! | one RS256 token | jsonwebtoken | tokengate | ratio |
//! |---|--:|--:|--:|
//! | signature check alone (`crypto::verify` / pre-parsed key) | 28.1 µs | 23.4 µs | 1.20 |
//! | whole token (`decode` / uncached `authenticate`) | 30.7 µs | 27.8 µs | 1.11 |
//!
//! The key rebuild costs about 4.6 µs a verification, a fifth of the
//! signature check; `authenticate` does more than `decode` (strict JSON,
//! the JWT profile's rules) and is still the cheaper of the two.

use aws_lc_rs::signature::{self as lc, ParsedPublicKey, VerificationAlgorithm};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Algorithm;

mod der;
#[cfg(test)]
mod fixtures;
mod parse;

pub(crate) use parse::{proof_key, ProofKey};

pub(crate) use der::modulus_bits;

/// The RSA modulus sizes the verifier supports (`RSA_*_2048_8192_*`).
pub(crate) const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    /// Whether a key of this kind can verify `alg` (kty and curve fit).
    pub fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }
}

/// One usable verification key.
pub struct VerifyKey {
    pub kid: Option<String>,
    pub kind: KeyKind,
    /// The JWK's `alg`, when it names one.
    pub alg: Option<Algorithm>,
    /// The key parsed for each algorithm it may verify.
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
    /// A hash of the key material and kid: a cached identity stays valid
    /// only while a key with this fingerprint is in the issuer's latest set.
    pub fingerprint: [u8; 32],
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish()
    }
}

impl VerifyKey {
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }

    /// Checks `signature` (raw bytes; R||S for ECDSA) over `message`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.parsed
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }
}

/// A filtered key set, indexed by kid.
#[derive(Debug, Default)]
pub struct KeySet {
    pub keys: Vec<Arc<VerifyKey>>,
    by_kid: HashMap<String, Vec<usize>>,
    /// Keys that were present but skipped, for logs.
    pub skipped: usize,
}

/// Why a key could not be chosen for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMiss {
    /// No key has this kid (a refetch may help).
    UnknownKid,
    /// Keys exist but none fits the algorithm.
    NoFit,
    /// No kid, and not exactly one key fits the algorithm.
    Ambiguous,
}

impl KeySet {
    /// Parses a JWK Set document; `Err` when it is not `{"keys": [...]}`.
    pub fn from_json(doc: &Value) -> Result<KeySet, &'static str> {
        let keys = doc
            .as_object()
            .and_then(|o| o.get("keys"))
            .and_then(Value::as_array)
            .ok_or("not a JWK Set (an object with a \"keys\" array)")?;
        let mut set = KeySet::default();
        for jwk in keys {
            match parse::parse_key(jwk) {
                Some(key) => {
                    let index = set.keys.len();
                    if let Some(kid) = &key.kid {
                        set.by_kid.entry(kid.clone()).or_default().push(index);
                    }
                    set.keys.push(Arc::new(key));
                }
                None => set.skipped += 1,
            }
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn contains_fingerprint(&self, fingerprint: &[u8; 32]) -> bool {
        self.keys.iter().any(|k| &k.fingerprint == fingerprint)
    }

    /// The key to verify a token with `kid` and `alg`.
    pub fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Arc<VerifyKey>, KeyMiss> {
        match kid {
            Some(kid) => {
                let candidates = self.by_kid.get(kid).ok_or(KeyMiss::UnknownKid)?;
                candidates
                    .iter()
                    .map(|&i| &self.keys[i])
                    .find(|k| k.fits(alg))
                    .ok_or(KeyMiss::NoFit)
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => Ok(k),
                    (None, _) => Err(KeyMiss::NoFit),
                    (Some(_), Some(_)) => Err(KeyMiss::Ambiguous),
                }
            }
        }
    }
}

fn verification_algorithm(alg: Algorithm) -> &'static dyn VerificationAlgorithm {
    match alg {
        Algorithm::RS256 => &lc::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &lc::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &lc::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &lc::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &lc::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &lc::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &lc::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &lc::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &lc::ED25519,
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{ec, ed25519_x, rsa_n};
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    #[test]
    fn from_json_counts_skipped_keys() {
        let set = KeySet::from_json(&json!({"keys": [
            ec("P-256", 32),
            {"kty": "oct", "k": "c2VjcmV0"},
            "not an object",
        ]}))
        .unwrap();
        assert_eq!((set.len(), set.skipped), (1, 2));
    }

    #[test]
    fn from_json_refuses_non_sets() {
        for doc in [json!([]), json!({"keys": {}}), json!({"other": []})] {
            assert!(KeySet::from_json(&doc).is_err(), "{doc}");
        }
    }

    #[test]
    fn select_by_kid_alg_and_uniqueness() {
        let ed = ed25519_x();
        let set = KeySet::from_json(&json!({"keys": [
            {"kty": "RSA", "n": rsa_n(0), "e": "AQAB", "kid": "r1", "alg": "RS256"},
            {"kty": "RSA", "n": rsa_n(1), "e": "AQAB", "kid": "r2"},
            {"kty": "OKP", "crv": "Ed25519", "x": ed, "kid": "e1"},
        ]}))
        .unwrap();
        assert_eq!(
            set.select(Some("r1"), Algorithm::RS256)
                .unwrap()
                .kid
                .as_deref(),
            Some("r1")
        );
        assert_eq!(
            set.select(Some("r1"), Algorithm::PS256).err(),
            Some(KeyMiss::NoFit)
        );
        assert_eq!(
            set.select(Some("r2"), Algorithm::PS256)
                .unwrap()
                .kid
                .as_deref(),
            Some("r2")
        );
        assert_eq!(
            set.select(Some("e1"), Algorithm::ES256).err(),
            Some(KeyMiss::NoFit)
        );
        assert_eq!(
            set.select(Some("nope"), Algorithm::RS256).err(),
            Some(KeyMiss::UnknownKid)
        );
        assert_eq!(
            set.select(None, Algorithm::EdDSA).unwrap().kid.as_deref(),
            Some("e1")
        );
        assert_eq!(
            set.select(None, Algorithm::RS256).err(),
            Some(KeyMiss::Ambiguous)
        );
        assert_eq!(
            set.select(None, Algorithm::ES256).err(),
            Some(KeyMiss::NoFit)
        );
    }

    #[test]
    fn fingerprint_changes_with_material_and_kid() {
        let key = ec("P-256", 32);
        let a = KeySet::from_json(&json!({"keys": [key.clone()]})).unwrap();
        let mut with_kid = key.clone();
        with_kid["kid"] = json!("k");
        let b = KeySet::from_json(&json!({"keys": [with_kid]})).unwrap();
        let a2 = KeySet::from_json(&json!({"keys": [key]})).unwrap();
        let c = KeySet::from_json(&json!({"keys": [ec("P-256", 32)]})).unwrap();
        assert_ne!(a.keys[0].fingerprint, b.keys[0].fingerprint);
        assert_eq!(a.keys[0].fingerprint, a2.keys[0].fingerprint);
        assert_ne!(a.keys[0].fingerprint, c.keys[0].fingerprint);
    }

    #[test]
    fn verify_checks_signatures_with_the_parsed_key() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
        let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = &kp.public_key().as_ref()[1..];
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&point[..32]), "y": URL_SAFE_NO_PAD.encode(&point[32..])});
        let set = KeySet::from_json(&json!({"keys": [jwk]})).unwrap();
        let sig = kp.sign(&SystemRandom::new(), b"msg").unwrap();
        let key = &set.keys[0];
        assert!(key.verify(Algorithm::ES256, b"msg", sig.as_ref()));
        assert!(!key.verify(Algorithm::ES256, b"other", sig.as_ref()));
        assert!(!key.verify(Algorithm::ES384, b"msg", sig.as_ref()));
        assert!(!key.verify(Algorithm::ES256, b"msg", &[0u8; 64]));
    }
}
