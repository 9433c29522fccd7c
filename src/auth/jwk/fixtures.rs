//! Test-only JWK material for the key-set tests: real RSA, P-256/P-384 and
//! Ed25519 public keys, and moduli of a chosen size that are not keys.

use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

/// A modulus of `bits` that is not a real key (only for size checks).
pub fn n_of_bits(bits: usize) -> String {
    let mut bytes = vec![0xffu8; bits / 8];
    bytes[0] = 0xc1;
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The modulus of one of two real RSA-2048 keys (generated once).
pub fn rsa_n(slot: usize) -> String {
    use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
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
pub fn ec(crv: &str, len: usize) -> Value {
    use aws_lc_rs::signature::{
        EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
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
pub fn ed25519_x() -> String {
    use aws_lc_rs::signature::Ed25519KeyPair;
    URL_SAFE_NO_PAD.encode(Ed25519KeyPair::generate().unwrap().public_key().as_ref())
}
