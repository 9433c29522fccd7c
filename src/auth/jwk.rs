//! JWK Sets (RFC 7517): parsing, filtering at load, and key selection.
//!
//! A key is kept only if it can only ever verify: RSA of at least 2048 bits,
//! EC P-256/P-384 and Ed25519; `oct` keys, keys with private members, keys
//! whose `use` is not `sig` or whose `key_ops` lacks `verify`, and keys with
//! an unknown `alg` are skipped. `DecodingKey::from_jwk` would ignore `alg`
//! and `use` and accept `oct`, so the parsing is ours.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::DecodingKey;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Algorithm;

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
    pub key: DecodingKey,
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
    let (kind, key, material) = match str_member(jwk, "kty")? {
        "RSA" => {
            let (n, e) = (str_member(jwk, "n")?, str_member(jwk, "e")?);
            let modulus = b64_len(n)?;
            let bits = modulus_bits(&modulus);
            if bits < 2048 || b64_len(e)?.is_empty() {
                return None;
            }
            let key = DecodingKey::from_rsa_components(n, e).ok()?;
            (KeyKind::Rsa, key, format!("RSA.{n}.{e}"))
        }
        "EC" => {
            let (x, y) = (str_member(jwk, "x")?, str_member(jwk, "y")?);
            let (kind, len) = match str_member(jwk, "crv")? {
                "P-256" => (KeyKind::P256, 32),
                "P-384" => (KeyKind::P384, 48),
                _ => return None,
            };
            if b64_len(x)?.len() != len || b64_len(y)?.len() != len {
                return None;
            }
            let key = DecodingKey::from_ec_components(x, y).ok()?;
            (kind, key, format!("EC.{x}.{y}"))
        }
        "OKP" => {
            let x = str_member(jwk, "x")?;
            if str_member(jwk, "crv")? != "Ed25519" || b64_len(x)?.len() != 32 {
                return None;
            }
            let key = DecodingKey::from_ed_components(x).ok()?;
            (KeyKind::Ed25519, key, format!("OKP.{x}"))
        }
        _ => return None,
    };
    if alg.is_some_and(|a| !kind.fits(a)) {
        return None;
    }
    let mut hasher = Sha256::new();
    hasher.update(kid.as_deref().unwrap_or("").as_bytes());
    hasher.update([0]);
    hasher.update(alg.map_or("", |a| a.name()).as_bytes());
    hasher.update([0]);
    hasher.update(material.as_bytes());
    Some(VerifyKey {
        kid,
        kind,
        alg,
        key,
        fingerprint: hasher.finalize().into(),
    })
}

fn modulus_bits(modulus: &[u8]) -> usize {
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

    fn n_of_bits(bits: usize) -> String {
        let mut bytes = vec![0xffu8; bits / 8];
        bytes[0] = 0xc1;
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn ec(crv: &str, len: usize) -> Value {
        let c = URL_SAFE_NO_PAD.encode(vec![7u8; len]);
        json!({"kty": "EC", "crv": crv, "x": c, "y": c})
    }

    #[test]
    fn from_json_filters_unusable_keys() {
        let ed = URL_SAFE_NO_PAD.encode([9u8; 32]);
        let rsa = |extra: Value| {
            let mut k = json!({"kty": "RSA", "n": n_of_bits(2048), "e": "AQAB", "kid": "r"});
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
        let ed = URL_SAFE_NO_PAD.encode([9u8; 32]);
        let set = KeySet::from_json(&json!({"keys": [
            {"kty": "RSA", "n": n_of_bits(2048), "e": "AQAB", "kid": "r1", "alg": "RS256"},
            {"kty": "RSA", "n": n_of_bits(3072), "e": "AQAB", "kid": "r2"},
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
        let a = KeySet::from_json(&json!({"keys": [ec("P-256", 32)]})).unwrap();
        let mut other = ec("P-256", 32);
        other["kid"] = json!("k");
        let b = KeySet::from_json(&json!({"keys": [other]})).unwrap();
        let a2 = KeySet::from_json(&json!({"keys": [ec("P-256", 32)]})).unwrap();
        assert_ne!(a.keys[0].fingerprint, b.keys[0].fingerprint);
        assert_eq!(a.keys[0].fingerprint, a2.keys[0].fingerprint);
    }
}
