//! A token minter for black-box tests: RS256, PS256, ES256 and EdDSA signing
//! keys (aws-lc-rs), each with an optional `kid`, that publish their public
//! JWK and sign JWS compact tokens, well-formed or deliberately broken.
//! Well-formed tokens are signed by `jsonwebtoken::encode`; only the broken
//! or unusual ones it cannot produce are put together by hand.
//!
//! ```ignore
//! let key = Key::rs256("k1");
//! let good = key.token(&claims(&iss, AUD));
//! let evil = key.jwt(&claims(&iss, AUD)).header("alg", json!("none")).signature_segment("").encode();
//! ```
//!
//! A [`Jwt`] builds any malformed form: header or claims given as raw JSON
//! text (for duplicate member names), header members set or removed,
//! signature bytes of our choosing (zeroed, DER-encoded ECDSA, empty), a
//! signature by another key, or arbitrary segments via [`segments`].
//! Claims from [`claims`] are minted relative to the current time.
//!
//! RSA key generation is slow, so RSA key pairs come from a small pool
//! generated once per test binary; [`Key::with_kid`] reuses key material
//! under another kid.

// A path of its own: benches include this file with `#[path]` as well.
#[path = "mint/jwt.rs"]
mod jwt;

pub use jwt::Jwt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, Pkcs8V2Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING,
    ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The audience every test issuer accepts.
pub const AUD: &str = "https://api.test";

/// base64url without padding (RFC 7515 section 2).
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the epoch, the clock of `exp`, `nbf` and `iat`.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Joins raw segments with `.`: `segments(&["a", "b", "c", "d"])`.
pub fn segments(parts: &[&str]) -> String {
    parts.join(".")
}

/// The usual valid claims for `iss` and `aud`: `sub`, `client_id`, `scope`,
/// a unique `jti`, `iat` now and `exp` ten minutes from now.
pub fn claims(iss: &str, aud: &str) -> Value {
    static JTI: AtomicU64 = AtomicU64::new(0);
    let t = now();
    json!({
        "iss": iss,
        "aud": aud,
        "sub": "alice",
        "client_id": "app-1",
        "scope": "read write",
        "jti": format!("jti-{}", JTI.fetch_add(1, Ordering::Relaxed)),
        "iat": t,
        "exp": t + 600,
    })
}

/// `base` with `changes` applied: each member set, or removed when `null`.
pub fn with(base: &Value, changes: Value) -> Value {
    let mut out = base.clone();
    let target = out.as_object_mut().expect("claims are an object");
    for (name, value) in changes.as_object().expect("changes are an object") {
        if value.is_null() {
            target.remove(name);
        } else {
            target.insert(name.clone(), value.clone());
        }
    }
    out
}

/// An HS* token signed with `secret` (which a gateway must never accept).
pub fn hmac_token(alg: &str, secret: &[u8], header: &Value, claims: &Value) -> String {
    let standard = EncodingKey::from_secret(secret)
        .ok()
        .zip(standard_header(header))
        .filter(|_| header.get("alg") == Some(&json!(alg)))
        .and_then(|(key, header)| encode(&header, claims, &key));
    if let Some(token) = standard {
        return token;
    }
    // Hand-built: an empty secret, a header `jsonwebtoken::Header` cannot
    // carry as it is, or a header naming another algorithm than `alg`.
    let digest = match alg {
        "HS256" => aws_lc_rs::hmac::HMAC_SHA256,
        "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
        "HS512" => aws_lc_rs::hmac::HMAC_SHA512,
        other => panic!("not an HMAC algorithm: {other}"),
    };
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let tag = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(digest, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// `header` as a `jsonwebtoken::Header` when that carries exactly the same
/// members (a known `alg`, string-valued extras, nothing dropped or added).
fn standard_header(header: &Value) -> Option<Header> {
    let parsed: Header = serde_json::from_value(header.clone()).ok()?;
    (serde_json::to_value(&parsed).ok()? == *header).then_some(parsed)
}

/// `jsonwebtoken::encode`, or `None` where it refuses (a header `alg`
/// another key family signs).
fn encode(header: &Header, claims: &Value, key: &EncodingKey) -> Option<String> {
    jsonwebtoken::encode(header, claims, key).ok()
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo`: the content
/// of its third element, an OCTET STRING (what `EncodingKey::from_rsa_der`
/// takes).
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    /// One DER element at the start of `der`: (tag, content, rest).
    fn element(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (der[0], der[1]);
        let (len, start) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            let len = der[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + n)
        };
        (tag, &der[start..start + len], &der[start + len..])
    }
    let (tag, info, _) = element(pkcs8);
    assert_eq!(tag, 0x30, "PrivateKeyInfo is a SEQUENCE");
    let (_, _version, rest) = element(info);
    let (_, _algorithm, rest) = element(rest);
    let (tag, key, _) = element(rest);
    assert_eq!(tag, 0x04, "privateKey is an OCTET STRING");
    key.to_vec()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    PS256,
    ES256,
    EdDSA,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::PS256 => "PS256",
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
        }
    }
}

struct EcPair {
    fixed: EcdsaKeyPair,
    /// The same private key, signing in ASN.1 DER form.
    der: EcdsaKeyPair,
}

#[derive(Clone)]
enum Material {
    Rsa(Arc<RsaKeyPair>),
    Ec(Arc<EcPair>),
    Ed(Arc<Ed25519KeyPair>),
}

/// Slots of the per-binary RSA key pool.
const RSA_POOL: usize = 6;

/// The RSA key pair in `slot`, generated on first use.
fn rsa_pair(slot: usize) -> Arc<RsaKeyPair> {
    static POOL: [OnceLock<Arc<RsaKeyPair>>; RSA_POOL] = [const { OnceLock::new() }; RSA_POOL];
    POOL[slot]
        .get_or_init(|| {
            Arc::new(RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"))
        })
        .clone()
}

/// A signing key with its algorithm and optional kid.
#[derive(Clone)]
pub struct Key {
    kid: Option<String>,
    alg: Alg,
    /// The `alg` member of the published JWK; `None` leaves it out.
    jwk_alg: Option<&'static str>,
    material: Material,
}

impl Key {
    /// RS256 with the first pooled RSA key.
    pub fn rs256(kid: &str) -> Key {
        Key::rsa(0, Alg::RS256, kid)
    }

    /// PS256 with the second pooled RSA key.
    pub fn ps256(kid: &str) -> Key {
        Key::rsa(1, Alg::PS256, kid)
    }

    /// An RSA key from pool `slot` (0..6; distinct slots are distinct keys).
    pub fn rsa(slot: usize, alg: Alg, kid: &str) -> Key {
        assert!(
            matches!(alg, Alg::RS256 | Alg::PS256),
            "{alg:?} is not an RSA algorithm"
        );
        Key {
            kid: Some(kid.to_string()),
            alg,
            jwk_alg: Some(alg.name()),
            material: Material::Rsa(rsa_pair(slot)),
        }
    }

    /// A fresh P-256 key.
    pub fn es256(kid: &str) -> Key {
        let fixed =
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("EC key generation");
        let pkcs8 = fixed.to_pkcs8v1().expect("EC PKCS#8");
        let der = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
            .expect("EC key");
        Key {
            kid: Some(kid.to_string()),
            alg: Alg::ES256,
            jwk_alg: Some("ES256"),
            material: Material::Ec(Arc::new(EcPair { fixed, der })),
        }
    }

    /// A fresh Ed25519 key.
    pub fn eddsa(kid: &str) -> Key {
        Key {
            kid: Some(kid.to_string()),
            alg: Alg::EdDSA,
            jwk_alg: Some("EdDSA"),
            material: Material::Ed(Arc::new(
                Ed25519KeyPair::generate().expect("Ed25519 key generation"),
            )),
        }
    }

    /// The same key material under another kid.
    pub fn with_kid(&self, kid: &str) -> Key {
        Key {
            kid: Some(kid.to_string()),
            ..self.clone()
        }
    }

    /// The same key material without a kid (tokens carry none, nor does the JWK).
    pub fn without_kid(&self) -> Key {
        Key {
            kid: None,
            ..self.clone()
        }
    }

    /// The same RSA key signing with another RSA algorithm; the JWK keeps
    /// the `alg` it had.
    pub fn signing_as(&self, alg: Alg) -> Key {
        assert!(
            matches!(self.material, Material::Rsa(_)) && matches!(alg, Alg::RS256 | Alg::PS256)
        );
        Key {
            alg,
            ..self.clone()
        }
    }

    /// The same key with the JWK's `alg` member set to `alg`, or left out.
    pub fn jwk_alg(&self, alg: Option<&'static str>) -> Key {
        Key {
            jwk_alg: alg,
            ..self.clone()
        }
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The public JWK (RFC 7517), with `use: sig`, the kid and the JWK alg.
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.material {
            Material::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Material::Ec(pair) => {
                let point = pair.fixed.public_key().as_ref();
                assert_eq!(point.len(), 65, "uncompressed P-256 point");
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            Material::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())})
            }
        };
        jwk["use"] = json!("sig");
        if let Some(kid) = &self.kid {
            jwk["kid"] = json!(kid);
        }
        if let Some(alg) = self.jwk_alg {
            jwk["alg"] = json!(alg);
        }
        jwk
    }

    /// RSA only: the modulus, big-endian.
    pub fn rsa_modulus(&self) -> Vec<u8> {
        match &self.material {
            Material::Rsa(pair) => pair
                .public_key()
                .modulus()
                .big_endian_without_leading_zero()
                .to_vec(),
            _ => panic!("not an RSA key"),
        }
    }

    /// RSA only: the public key as PKCS#1 `RSAPublicKey` DER.
    pub fn rsa_pkcs1_der(&self) -> Vec<u8> {
        match &self.material {
            Material::Rsa(pair) => pair.public_key().as_ref().to_vec(),
            _ => panic!("not an RSA key"),
        }
    }

    /// The public key as X.509 `SubjectPublicKeyInfo` DER.
    pub fn spki_der(&self) -> Vec<u8> {
        let der = match &self.material {
            Material::Rsa(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Material::Ec(pair) => pair
                .fixed
                .public_key()
                .as_der()
                .map(|d| d.as_ref().to_vec()),
            Material::Ed(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
        };
        der.expect("public key DER")
    }

    /// The public key as a `-----BEGIN PUBLIC KEY-----` PEM document.
    pub fn spki_pem(&self) -> String {
        let body = STANDARD.encode(self.spki_der());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// This key's private half for `jsonwebtoken`.
    pub fn encoding_key(&self) -> EncodingKey {
        match &self.material {
            Material::Rsa(pair) => {
                let pkcs8: Pkcs8V1Der = pair.as_der().expect("RSA PKCS#8");
                EncodingKey::from_rsa_der(&pkcs1_from_pkcs8(pkcs8.as_ref()))
            }
            Material::Ec(pair) => {
                EncodingKey::from_ec_der(pair.fixed.to_pkcs8v1().expect("EC PKCS#8").as_ref())
            }
            Material::Ed(pair) => {
                let pkcs8: Pkcs8V2Der = pair.as_der().expect("Ed25519 PKCS#8");
                EncodingKey::from_ed_der(pkcs8.as_ref())
            }
        }
    }

    /// Signs `input` with this key's algorithm (ECDSA as raw R||S): the
    /// signature of hand-built tokens.
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match (&self.material, self.alg) {
            (Material::Rsa(pair), alg) => {
                let padding = if alg == Alg::PS256 {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, input, &mut sig)
                    .expect("RSA signature");
                sig
            }
            (Material::Ec(pair), _) => pair
                .fixed
                .sign(&rng, input)
                .expect("ECDSA signature")
                .as_ref()
                .to_vec(),
            (Material::Ed(pair), _) => pair.sign(input).as_ref().to_vec(),
        }
    }

    /// ECDSA only: signs `input` with an ASN.1 DER signature.
    pub fn sign_der(&self, input: &[u8]) -> Vec<u8> {
        match &self.material {
            Material::Ec(pair) => pair
                .der
                .sign(&SystemRandom::new(), input)
                .expect("ECDSA signature")
                .as_ref()
                .to_vec(),
            _ => panic!("not an EC key"),
        }
    }

    /// The default header: `alg`, `kid` (if any) and `typ: at+jwt`.
    pub fn header(&self) -> Value {
        let mut header = json!({"alg": self.alg.name(), "typ": "at+jwt"});
        if let Some(kid) = &self.kid {
            header["kid"] = json!(kid);
        }
        header
    }

    /// A token builder for `claims`, signed by this key.
    pub fn jwt(&self, claims: &Value) -> Jwt {
        Jwt::new(self, claims)
    }

    /// A well-formed, correctly signed token for `claims`, signed by
    /// `jsonwebtoken::encode`.
    pub fn token(&self, claims: &Value) -> String {
        self.jwt(claims)
            .encode_standard()
            .expect("jsonwebtoken signs a well-formed token")
    }
}

/// Replaces segment `index` (0 header, 1 claims, 2 signature) of `token`.
pub fn replace_segment(token: &str, index: usize, segment: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = segment;
    parts.join(".")
}
