//! A token minter for black-box tests: RS256, PS256, ES256 and EdDSA signing
//! keys (aws-lc-rs), each with an optional `kid`, that publish their public
//! JWK and sign JWS compact tokens, well-formed or deliberately broken.
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

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING,
    ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
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

    /// Signs `input` with this key's algorithm (ECDSA as raw R||S).
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
        Jwt {
            key: self.clone(),
            header: self.header(),
            raw_header: None,
            claims: claims.clone(),
            raw_claims: None,
            signature: Signature::Valid,
        }
    }

    /// A well-formed, correctly signed token for `claims`.
    pub fn token(&self, claims: &Value) -> String {
        self.jwt(claims).encode()
    }
}

#[derive(Clone)]
enum Signature {
    /// This key's signature over the signing input.
    Valid,
    /// ECDSA in ASN.1 DER instead of R||S.
    Der,
    /// Another key's signature.
    By(Key),
    Bytes(Vec<u8>),
    /// The third segment verbatim.
    Segment(String),
}

/// A token under construction; [`Jwt::encode`] produces the compact form.
#[derive(Clone)]
pub struct Jwt {
    key: Key,
    header: Value,
    raw_header: Option<String>,
    claims: Value,
    raw_claims: Option<String>,
    signature: Signature,
}

impl Jwt {
    /// Sets a header member; `Value::Null` removes it.
    pub fn header(mut self, name: &str, value: Value) -> Jwt {
        let header = self.header.as_object_mut().expect("header object");
        if value.is_null() {
            header.remove(name);
        } else {
            header.insert(name.to_string(), value);
        }
        self
    }

    /// Replaces the whole header object.
    pub fn header_object(mut self, header: Map<String, Value>) -> Jwt {
        self.header = Value::Object(header);
        self
    }

    /// The header segment encodes exactly this text.
    pub fn raw_header(mut self, text: &str) -> Jwt {
        self.raw_header = Some(text.to_string());
        self
    }

    /// The claims segment encodes exactly this text.
    pub fn raw_claims(mut self, text: &str) -> Jwt {
        self.raw_claims = Some(text.to_string());
        self
    }

    /// Signs ECDSA in DER form instead of raw R||S.
    pub fn der_signature(mut self) -> Jwt {
        self.signature = Signature::Der;
        self
    }

    /// Signs with `other` (whatever the header says).
    pub fn signed_by(mut self, other: &Key) -> Jwt {
        self.signature = Signature::By(other.clone());
        self
    }

    /// Uses these bytes as the signature.
    pub fn signature_bytes(mut self, bytes: Vec<u8>) -> Jwt {
        self.signature = Signature::Bytes(bytes);
        self
    }

    /// Uses this text verbatim as the third segment.
    pub fn signature_segment(mut self, text: &str) -> Jwt {
        self.signature = Signature::Segment(text.to_string());
        self
    }

    /// `base64url(header) "." base64url(claims)`.
    pub fn signing_input(&self) -> String {
        let header = self
            .raw_header
            .clone()
            .unwrap_or_else(|| self.header.to_string());
        let claims = self
            .raw_claims
            .clone()
            .unwrap_or_else(|| self.claims.to_string());
        format!("{}.{}", b64(header), b64(claims))
    }

    /// The compact serialization.
    pub fn encode(&self) -> String {
        let input = self.signing_input();
        let signature = match &self.signature {
            Signature::Valid => b64(self.key.sign(input.as_bytes())),
            Signature::Der => b64(self.key.sign_der(input.as_bytes())),
            Signature::By(other) => b64(other.sign(input.as_bytes())),
            Signature::Bytes(bytes) => b64(bytes),
            Signature::Segment(text) => text.clone(),
        };
        format!("{input}.{signature}")
    }
}

/// Replaces segment `index` (0 header, 1 claims, 2 signature) of `token`.
pub fn replace_segment(token: &str, index: usize, segment: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = segment;
    parts.join(".")
}
