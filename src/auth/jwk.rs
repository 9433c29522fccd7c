//! JWK Sets (RFC 7517): parsing, filtering at load, and key selection.
//!
//! A key is kept only if it can only ever verify: RSA of 2048 to 8192 bits
//! (the range aws-lc-rs verifies; a larger modulus would load and then fail
//! every signature), EC P-256/P-384 and Ed25519; `oct` keys, keys with private members, keys
//! whose `use` is not `sig` or whose `key_ops` lacks `verify`, and keys with
//! an unknown `alg` are skipped. `DecodingKey::from_jwk` would ignore `alg`
//! and `use` and accept `oct`, so the parsing is ours.
//!
//! Each usable key is parsed into aws-lc-rs verification keys once, when the
//! set is loaded, one per algorithm it may verify. jsonwebtoken's
//! `crypto::verify` rebuilds the RSA key from `n` and `e` on every call;
//! measured, that setup was about as costly as the signature check itself.

use aws_lc_rs::signature::{self as lc, ParsedPublicKey, VerificationAlgorithm};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use aws_lc_rs::digest::{Context, SHA256};
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Algorithm;

/// The RSA modulus sizes the verifier supports (`RSA_*_2048_8192_*`).
pub(crate) const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// Members that only private keys have (RFC 7518 section 6).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

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
            match parse_key(jwk) {
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

fn str_member<'a>(jwk: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

fn b64_len(value: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value).ok()
}

/// One JWK → a usable key, or `None` when it must be skipped.
fn parse_key(jwk: &Value) -> Option<VerifyKey> {
    let jwk = jwk.as_object()?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return None;
    }
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return None,
    }
    match jwk.get("key_ops") {
        None => {}
        Some(Value::Array(ops)) if ops.iter().any(|o| o == "verify") => {}
        Some(_) => return None,
    }
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(a)) => Some(Algorithm::from_name(a)?),
        Some(_) => return None,
    };
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return None,
    };
    let (kind, public, material) = match str_member(jwk, "kty")? {
        "RSA" => {
            let (n, e) = (str_member(jwk, "n")?, str_member(jwk, "e")?);
            let modulus = b64_len(n)?;
            let exponent = b64_len(e)?;
            if !RSA_BITS.contains(&modulus_bits(&modulus)) || exponent.is_empty() {
                return None;
            }
            (
                KeyKind::Rsa,
                rsa_public_key_der(&modulus, &exponent),
                format!("RSA.{n}.{e}"),
            )
        }
        "EC" => {
            let (x, y) = (str_member(jwk, "x")?, str_member(jwk, "y")?);
            let (kind, len) = match str_member(jwk, "crv")? {
                "P-256" => (KeyKind::P256, 32),
                "P-384" => (KeyKind::P384, 48),
                _ => return None,
            };
            let (xb, yb) = (b64_len(x)?, b64_len(y)?);
            if xb.len() != len || yb.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&xb);
            point.extend_from_slice(&yb);
            (kind, point, format!("EC.{x}.{y}"))
        }
        "OKP" => {
            let x = str_member(jwk, "x")?;
            let xb = b64_len(x)?;
            if str_member(jwk, "crv")? != "Ed25519" || xb.len() != 32 {
                return None;
            }
            (KeyKind::Ed25519, xb, format!("OKP.{x}"))
        }
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
    let mut hasher = Context::new(&SHA256);
    hasher.update(kid.as_deref().unwrap_or("").as_bytes());
    hasher.update(&[0]);
    hasher.update(alg.map_or("", |a| a.name()).as_bytes());
    hasher.update(&[0]);
    hasher.update(material.as_bytes());
    let mut fingerprint = [0; 32];
    fingerprint.copy_from_slice(hasher.finish().as_ref());
    Some(VerifyKey {
        kid,
        kind,
        alg,
        parsed,
        fingerprint,
    })
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

/// DER of an RFC 8017 `RSAPublicKey ::= SEQUENCE { modulus, publicExponent }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn length(out: &mut Vec<u8>, len: usize) {
        match len {
            0..=0x7f => out.push(len as u8),
            0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
            _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        }
    }
    fn integer(out: &mut Vec<u8>, bytes: &[u8]) {
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let digits = &bytes[skip.min(bytes.len().saturating_sub(1))..];
        let pad = digits.first().is_some_and(|b| b & 0x80 != 0);
        out.push(0x02);
        length(out, digits.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(digits);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut der = Vec::with_capacity(body.len() + 4);
    der.push(0x30);
    length(&mut der, body.len());
    der.extend_from_slice(&body);
    der
}

pub(crate) fn modulus_bits(modulus: &[u8]) -> usize {
    let skip = modulus.iter().take_while(|&&b| b == 0).count();
    match modulus.get(skip) {
        None => 0,
        Some(&first) => (modulus.len() - skip - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A modulus of `bits` that is not a real key (only for size checks).
    fn n_of_bits(bits: usize) -> String {
        let mut bytes = vec![0xffu8; bits / 8];
        bytes[0] = 0xc1;
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The modulus of one of two real RSA-2048 keys (generated once).
    fn rsa_n(slot: usize) -> String {
        use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
        use aws_lc_rs::signature::KeyPair as _;
        static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        KEYS.get_or_init(|| {
            (0..2)
                .map(|_| {
                    let kp = KeyPair::generate(KeySize::Rsa2048).unwrap();
                    let c = PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
                    URL_SAFE_NO_PAD.encode(c.n)
                })
                .collect()
        })[slot]
            .clone()
    }

    /// An EC JWK: a real point for P-256 / P-384 of the right length, junk otherwise.
    fn ec(crv: &str, len: usize) -> Value {
        use aws_lc_rs::signature::{
            EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
            ECDSA_P384_SHA384_FIXED_SIGNING,
        };
        let alg = match (crv, len) {
            ("P-256", 32) => Some(&ECDSA_P256_SHA256_FIXED_SIGNING),
            ("P-384", 48) => Some(&ECDSA_P384_SHA384_FIXED_SIGNING),
            _ => None,
        };
        let (x, y) = match alg {
            Some(alg) => {
                let kp = EcdsaKeyPair::generate(alg).unwrap();
                let point = kp.public_key().as_ref()[1..].to_vec();
                let (x, y) = point.split_at(len);
                (x.to_vec(), y.to_vec())
            }
            None => (vec![7u8; len], vec![7u8; len]),
        };
        json!({"kty": "EC", "crv": crv, "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)})
    }

    /// A real Ed25519 public key.
    fn ed25519_x() -> String {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
        URL_SAFE_NO_PAD.encode(Ed25519KeyPair::generate().unwrap().public_key().as_ref())
    }

    #[test]
    fn from_json_filters_unusable_keys() {
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
            (rsa(json!({"d": "AQAB"})), false),
            (rsa(json!({"use": "enc"})), false),
            (rsa(json!({"key_ops": ["encrypt"]})), false),
            (rsa(json!({"alg": "RSA-OAEP"})), false),
            (rsa(json!({"alg": "ES256"})), false),
            (rsa(json!({"alg": "HS256"})), false),
            (rsa(json!({"kid": 5})), false),
            (json!({"kty": "oct", "k": "c2VjcmV0"}), false),
            (json!({"kty": "oct"}), false),
            (ec("P-256", 32), true),
            (ec("P-384", 48), true),
            (ec("P-521", 66), false),
            (ec("P-256", 31), false),
            (
                json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode([7u8; 32]), "y": URL_SAFE_NO_PAD.encode([7u8; 32])}),
                false,
            ),
            (json!({"kty": "OKP", "crv": "Ed25519", "x": ed}), true),
            (json!({"kty": "OKP", "crv": "X25519", "x": ed}), false),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "x": ed, "d": ed}),
                false,
            ),
            (json!("not an object"), false),
        ];
        for (jwk, usable) in cases {
            let set = KeySet::from_json(&json!({ "keys": [jwk.clone()] })).unwrap();
            assert_eq!(set.len(), usize::from(usable), "{jwk}");
            assert_eq!(set.skipped, usize::from(!usable), "{jwk}");
        }
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

    #[test]
    fn rsa_public_key_der_encodes_integers_minimally() {
        assert_eq!(
            rsa_public_key_der(&[0x00, 0x81], &[0x01, 0x00, 0x01]),
            vec![0x30, 0x09, 0x02, 0x02, 0x00, 0x81, 0x02, 0x03, 0x01, 0x00, 0x01]
        );
        assert_eq!(
            rsa_public_key_der(&[0x7f], &[0x03]),
            vec![0x30, 0x06, 0x02, 0x01, 0x7f, 0x02, 0x01, 0x03]
        );
    }
}
