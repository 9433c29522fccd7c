//! `tokengate jwks from-pem`: PEM keys → a JWK Set (RFC 7517) for an
//! issuer's `jwks_file`, and the PEM key reading that `tokengate token`
//! shares.
//!
//! Each key gets `kid` = its RFC 7638 thumbprint (base64url SHA-256 of the
//! canonical JSON of the required members), `use: "sig"` and the `alg` the
//! key determines (ES256, ES384, EdDSA; for RSA the caller chooses, RS256 by
//! default). The thumbprint depends on the public key only, so the kid that
//! `tokengate token` puts in a header matches this set's without any
//! bookkeeping. Only public members are ever written: a private key in the
//! input contributes its public half.
//!
//! The kinds accepted are those the gateway's key-set loader keeps
//! ([`crate::auth::jwk`]): RSA of 2048 to 8192 bits, EC P-256 and P-384,
//! Ed25519. PEM armour is decoded by the `pem` crate (it keeps every label,
//! including PKCS#1 `RSA PUBLIC KEY`, which rustls-pki-types skips), key
//! parsing and validation is aws-lc-rs's, and the one structure aws-lc-rs
//! does not take apart (an EC or Ed25519 `SubjectPublicKeyInfo`, for its
//! point) is read with yasna.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, PublicKey as RsaPublicKey, PublicKeyComponents};
use aws_lc_rs::signature::{
    self as lc, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, ParsedPublicKey,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use yasna::models::ObjectIdentifier;

use crate::auth::jwk::{modulus_bits, KeyKind, RSA_BITS};
use crate::config::Algorithm;

/// Why a PEM input gave no usable key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    #[error("no PEM block (\"-----BEGIN ...-----\") found")]
    NoPem,
    #[error("malformed PEM: {0}")]
    Pem(String),
    #[error(
        "an encrypted private key: decrypt it first, e.g. `openssl pkey -in KEY -out plain.pem`"
    )]
    Encrypted,
    #[error("a certificate, not a key: extract its public key first, e.g. `openssl x509 -in CERT -pubkey -noout > key.pem`")]
    Certificate,
    #[error("unsupported PEM block \"{0}\": expected PUBLIC KEY, RSA PUBLIC KEY, PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY")]
    Label(String),
    #[error("the {0} block is not an RSA, EC P-256/P-384 or Ed25519 key, or is malformed")]
    Unusable(&'static str),
    #[error("an RSA key of {0} bits: the gateway verifies 2048 to 8192")]
    RsaSize(usize),
    #[error("a compressed EC point: re-export the key uncompressed, e.g. `openssl pkey -pubin -in KEY -ec_conv_form uncompressed`")]
    CompressedPoint,
    #[error("algorithm {alg} does not fit a {kind} key")]
    AlgMismatch {
        alg: &'static str,
        kind: &'static str,
    },
    #[error("unknown algorithm {0:?}: expected one of RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA")]
    UnknownAlg(String),
    #[error("no private key: `tokengate token` signs with a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block")]
    NotPrivate,
}

/// A [`KeyError`] with the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    pub error: KeyError,
}

/// The public half of a key, in the members a JWK gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicJwk {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Affine coordinates, each of the curve's field length.
    Ec {
        kind: KeyKind,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

/// The DER a signer takes, in the form jsonwebtoken's aws-lc-rs backend
/// reads it: PKCS#1 for RSA, PKCS#8 for EC and Ed25519.
pub(crate) enum SigningDer {
    RsaPkcs1(Vec<u8>),
    EcPkcs8(Vec<u8>),
    Ed25519Pkcs8(Vec<u8>),
}

/// One key read from a PEM block.
pub struct PemKey {
    pub public: PublicJwk,
    /// Present when the block was a private key.
    pub(crate) signing: Option<SigningDer>,
}

impl std::fmt::Debug for PemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemKey")
            .field("public", &self.public)
            .field("private", &self.signing.is_some())
            .finish()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl PublicJwk {
    pub fn kind(&self) -> KeyKind {
        match self {
            PublicJwk::Rsa { .. } => KeyKind::Rsa,
            PublicJwk::Ec { kind, .. } => *kind,
            PublicJwk::Ed25519 { .. } => KeyKind::Ed25519,
        }
    }

    /// The RFC 7638 section 3.2 input: the required members in
    /// lexicographic order, no whitespace (RFC 8037 section 2 for OKP).
    fn canonical_json(&self) -> String {
        match self {
            PublicJwk::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n))
            }
            PublicJwk::Ec { kind, x, y } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                curve_name(*kind),
                b64(x),
                b64(y)
            ),
            PublicJwk::Ed25519 { x } => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x))
            }
        }
    }

    /// The RFC 7638 JWK thumbprint with SHA-256, base64url.
    pub fn thumbprint(&self) -> String {
        b64(digest(&SHA256, self.canonical_json().as_bytes()).as_ref())
    }

    /// The algorithm a token signed by this key uses unless told otherwise.
    pub fn default_alg(&self) -> Algorithm {
        match self.kind() {
            KeyKind::Rsa => Algorithm::RS256,
            KeyKind::P256 => Algorithm::ES256,
            KeyKind::P384 => Algorithm::ES384,
            KeyKind::Ed25519 => Algorithm::EdDSA,
        }
    }

    /// `alg`, or this key's default; refused when it does not fit the key.
    pub fn choose_alg(&self, alg: Option<Algorithm>) -> Result<Algorithm, KeyError> {
        let alg = alg.unwrap_or_else(|| self.default_alg());
        match self.kind().fits(alg) {
            true => Ok(alg),
            false => Err(KeyError::AlgMismatch {
                alg: alg.name(),
                kind: kind_name(self.kind()),
            }),
        }
    }

    /// The public JWK: `kty`, `use`, `alg`, `kid` (the thumbprint) and the
    /// key members; never a private member.
    pub fn to_jwk(&self, alg: Algorithm) -> Value {
        let mut jwk = json!({
            "kty": match self { PublicJwk::Rsa { .. } => "RSA", PublicJwk::Ec { .. } => "EC", PublicJwk::Ed25519 { .. } => "OKP" },
            "use": "sig",
            "alg": alg.name(),
            "kid": self.thumbprint(),
        });
        let members = match self {
            PublicJwk::Rsa { n, e } => json!({"n": b64(n), "e": b64(e)}),
            PublicJwk::Ec { kind, x, y } => {
                json!({"crv": curve_name(*kind), "x": b64(x), "y": b64(y)})
            }
            PublicJwk::Ed25519 { x } => json!({"crv": "Ed25519", "x": b64(x)}),
        };
        if let (Some(jwk), Some(members)) = (jwk.as_object_mut(), members.as_object()) {
            jwk.extend(members.clone());
        }
        jwk
    }
}

fn curve_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::P384 => "P-384",
        _ => "P-256",
    }
}

fn kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Rsa => "RSA",
        KeyKind::P256 => "EC P-256",
        KeyKind::P384 => "EC P-384",
        KeyKind::Ed25519 => "Ed25519",
    }
}

/// `--alg` values: the JOSE names the gateway verifies.
pub fn parse_alg(name: &str) -> Result<Algorithm, KeyError> {
    Algorithm::from_name(name).ok_or_else(|| KeyError::UnknownAlg(name.to_string()))
}

/// Every key in PEM `text`, in order; an unusable block is an error, not
/// skipped, so a set never silently lacks a key its author meant to add.
pub fn parse_pem(text: &[u8]) -> Result<Vec<PemKey>, KeyError> {
    let blocks = pem::parse_many(text).map_err(|e| KeyError::Pem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(KeyError::NoPem);
    }
    blocks
        .iter()
        .map(|b| parse_block(b.tag(), b.contents()))
        .collect()
}

/// Reads every key of every file.
pub fn read_pem_files(paths: &[PathBuf]) -> Result<Vec<PemKey>, FileError> {
    let mut keys = Vec::new();
    for path in paths {
        keys.extend(read_pem_file(path)?);
    }
    Ok(keys)
}

pub fn read_pem_file(path: &Path) -> Result<Vec<PemKey>, FileError> {
    let at = |error| FileError {
        path: path.to_path_buf(),
        error,
    };
    let text = std::fs::read(path).map_err(|e| at(KeyError::Read(e)))?;
    parse_pem(&text).map_err(at)
}

/// The JWK Set of `keys`: RSA keys get `rsa_alg` (default RS256).
pub fn jwk_set(keys: &[PemKey], rsa_alg: Option<Algorithm>) -> Result<Value, KeyError> {
    let jwks = keys
        .iter()
        .map(|k| {
            let alg = match k.public {
                PublicJwk::Rsa { .. } => k.public.choose_alg(rsa_alg)?,
                _ => k.public.default_alg(),
            };
            Ok(k.public.to_jwk(alg))
        })
        .collect::<Result<Vec<_>, KeyError>>()?;
    Ok(json!({ "keys": jwks }))
}

/// `tokengate jwks from-pem FILE...`: the JWK Set as pretty JSON.
pub fn from_pem_files(paths: &[PathBuf], rsa_alg: Option<Algorithm>) -> Result<String, FileError> {
    let mut jwks = Vec::new();
    for path in paths {
        let keys = read_pem_file(path)?;
        let set = jwk_set(&keys, rsa_alg).map_err(|error| FileError {
            path: path.clone(),
            error,
        })?;
        if let Some(list) = set["keys"].as_array() {
            jwks.extend(list.iter().cloned());
        }
    }
    let set = json!({ "keys": jwks });
    Ok(serde_json::to_string_pretty(&set).unwrap_or_default() + "\n")
}

/// One PEM block by label (RFC 7468 section 13 for `PUBLIC KEY`, RFC 8017
/// appendix A.1 for the PKCS#1 forms, RFC 5958 for `PRIVATE KEY`, RFC 5915
/// for `EC PRIVATE KEY`).
fn parse_block(label: &str, der: &[u8]) -> Result<PemKey, KeyError> {
    let public_only = |public| PemKey {
        public,
        signing: None,
    };
    match label {
        "PUBLIC KEY" => spki(der).map(public_only),
        "RSA PUBLIC KEY" => RsaPublicKey::from_der(der)
            .map_err(|_| KeyError::Unusable("RSA PUBLIC KEY"))
            .and_then(|k| rsa_public(&k))
            .map(public_only),
        "PRIVATE KEY" => pkcs8(der),
        "RSA PRIVATE KEY" => {
            let pair = RsaKeyPair::from_der(der).map_err(|_| rsa_or_size(der))?;
            Ok(PemKey {
                public: rsa_public(pair.public_key())?,
                signing: Some(SigningDer::RsaPkcs1(der.to_vec())),
            })
        }
        "EC PRIVATE KEY" => ec_private(|alg| EcdsaKeyPair::from_private_key_der(alg, der))
            .ok_or(KeyError::Unusable("EC PRIVATE KEY"))?,
        "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted),
        "CERTIFICATE" | "TRUSTED CERTIFICATE" => Err(KeyError::Certificate),
        other => Err(KeyError::Label(other.to_string())),
    }
}

/// aws-lc-rs refuses RSA private keys outside 2048-8192 bits with a
/// generic error; say which size it was when the DER shows it.
fn rsa_or_size(pkcs1: &[u8]) -> KeyError {
    let modulus = yasna::parse_der(pkcs1, |r| {
        r.read_sequence(|r| {
            r.next().read_u8()?;
            let (n, _negative) = r.next().read_bigint_bytes()?;
            for _ in 0..7 {
                r.next().read_der()?;
            }
            r.read_optional(|r| r.read_der())?;
            Ok(n)
        })
    });
    match modulus {
        Ok(n) => KeyError::RsaSize(modulus_bits(&n)),
        Err(_) => KeyError::Unusable("RSA PRIVATE KEY"),
    }
}

fn rsa_public(key: &RsaPublicKey) -> Result<PublicJwk, KeyError> {
    let c = PublicKeyComponents::<Vec<u8>>::from(key);
    let n = strip_zeros(c.n);
    let bits = modulus_bits(&n);
    if !RSA_BITS.contains(&bits) {
        return Err(KeyError::RsaSize(bits));
    }
    Ok(PublicJwk::Rsa {
        n,
        e: strip_zeros(c.e),
    })
}

fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.drain(..zeros.min(bytes.len().saturating_sub(1)));
    bytes
}

const OID_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
const OID_EC: &[u64] = &[1, 2, 840, 10045, 2, 1];
const OID_P256: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
const OID_P384: &[u64] = &[1, 3, 132, 0, 34];
const OID_ED25519: &[u64] = &[1, 3, 101, 112];

/// A `SubjectPublicKeyInfo` (RFC 5280 section 4.1.2.7): RSA goes to
/// aws-lc-rs whole; for EC and Ed25519 the algorithm and curve OIDs pick the
/// kind, aws-lc-rs validates the key, and the BIT STRING is the point.
fn spki(der: &[u8]) -> Result<PublicJwk, KeyError> {
    const WHAT: KeyError = KeyError::Unusable("PUBLIC KEY");
    let (alg, params, key) = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let (alg, params) = r.next().read_sequence(|r| {
                let alg = r.next().read_oid()?;
                let params = r.read_optional(|r| r.read_der())?;
                Ok((alg, params))
            })?;
            let (key, _unused_bits) = r.next().read_bitvec_bytes()?;
            Ok((alg, params, key))
        })
    })
    .map_err(|_| WHAT)?;
    let curve = params.and_then(|p| yasna::parse_der(&p, |r| r.read_oid()).ok());
    let is = |oid: &ObjectIdentifier, want: &[u64]| oid.components().as_slice() == want;
    if is(&alg, OID_RSA) {
        let key = RsaPublicKey::from_der(der).map_err(|_| WHAT)?;
        return rsa_public(&key);
    }
    let (kind, verify): (KeyKind, &'static dyn lc::VerificationAlgorithm) = match &curve {
        _ if is(&alg, OID_ED25519) => (KeyKind::Ed25519, &lc::ED25519),
        Some(c) if is(&alg, OID_EC) && is(c, OID_P256) => {
            (KeyKind::P256, &lc::ECDSA_P256_SHA256_FIXED)
        }
        Some(c) if is(&alg, OID_EC) && is(c, OID_P384) => {
            (KeyKind::P384, &lc::ECDSA_P384_SHA384_FIXED)
        }
        _ => return Err(WHAT),
    };
    ParsedPublicKey::new(verify, &key).map_err(|_| WHAT)?;
    match kind {
        KeyKind::Ed25519 if key.len() == 32 => Ok(PublicJwk::Ed25519 { x: key }),
        KeyKind::Ed25519 => Err(WHAT),
        _ if key.first() != Some(&0x04) => Err(KeyError::CompressedPoint),
        _ => ec_point(kind, &key).ok_or(WHAT),
    }
}

/// `0x04 || x || y` → the EC JWK members.
fn ec_point(kind: KeyKind, point: &[u8]) -> Option<PublicJwk> {
    let len = match kind {
        KeyKind::P256 => 32,
        KeyKind::P384 => 48,
        _ => return None,
    };
    let coords = point.strip_prefix(&[0x04])?;
    (coords.len() == 2 * len).then(|| PublicJwk::Ec {
        kind,
        x: coords[..len].to_vec(),
        y: coords[len..].to_vec(),
    })
}

/// An EC private key parsed by `parse` for P-256 or P-384, whichever fits.
fn ec_private(
    parse: impl Fn(
        &'static EcdsaSigningAlgorithm,
    ) -> Result<EcdsaKeyPair, aws_lc_rs::error::KeyRejected>,
) -> Option<Result<PemKey, KeyError>> {
    let curves = [
        (KeyKind::P256, &lc::ECDSA_P256_SHA256_FIXED_SIGNING),
        (KeyKind::P384, &lc::ECDSA_P384_SHA384_FIXED_SIGNING),
    ];
    curves.into_iter().find_map(|(kind, alg)| {
        let pair = parse(alg).ok()?;
        let public = ec_point(kind, pair.public_key().as_ref())?;
        let pkcs8 = pair.to_pkcs8v1().ok()?;
        Some(Ok(PemKey {
            public,
            signing: Some(SigningDer::EcPkcs8(pkcs8.as_ref().to_vec())),
        }))
    })
}

/// A PKCS#8 `PrivateKeyInfo` (RFC 5958): RSA, EC or Ed25519.
fn pkcs8(der: &[u8]) -> Result<PemKey, KeyError> {
    if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
        let pkcs1 = pkcs8_private_key(der).ok_or(KeyError::Unusable("PRIVATE KEY"))?;
        return Ok(PemKey {
            public: rsa_public(pair.public_key())?,
            signing: Some(SigningDer::RsaPkcs1(pkcs1)),
        });
    }
    if let Some(key) = ec_private(|alg| EcdsaKeyPair::from_pkcs8(alg, der)) {
        return key;
    }
    if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
        return Ok(PemKey {
            public: PublicJwk::Ed25519 {
                x: pair.public_key().as_ref().to_vec(),
            },
            signing: Some(SigningDer::Ed25519Pkcs8(der.to_vec())),
        });
    }
    // An RSA key of an unsupported size still deserves that reason.
    match pkcs8_private_key(der) {
        Some(inner) if matches!(rsa_or_size(&inner), KeyError::RsaSize(_)) => {
            Err(rsa_or_size(&inner))
        }
        _ => Err(KeyError::Unusable("PRIVATE KEY")),
    }
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo`: for RSA,
/// the PKCS#1 `RSAPrivateKey` the signer takes.
fn pkcs8_private_key(der: &[u8]) -> Option<Vec<u8>> {
    yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            r.next().read_u8()?;
            r.next().read_der()?;
            let key = r.next().read_bytes()?;
            r.read_optional(|r| r.read_der())?;
            r.read_optional(|r| r.read_der())?;
            Ok(key)
        })
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwk::KeySet;
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
    use aws_lc_rs::rsa::KeySize;
    use std::sync::OnceLock;

    fn pem_of(label: &str, der: &[u8]) -> String {
        pem::encode(&pem::Pem::new(label, der.to_vec()))
    }

    fn rsa_pair() -> &'static RsaKeyPair {
        static PAIR: OnceLock<RsaKeyPair> = OnceLock::new();
        PAIR.get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
    }

    fn spki_of(pair: &RsaKeyPair) -> Option<Vec<u8>> {
        let der: PublicKeyX509Der = pair.public_key().as_der().ok()?;
        Some(der.as_ref().to_vec())
    }

    fn rsa_pkcs8() -> Vec<u8> {
        let der: Pkcs8V1Der = rsa_pair().as_der().unwrap();
        der.as_ref().to_vec()
    }

    fn ec_pair(alg: &'static EcdsaSigningAlgorithm) -> EcdsaKeyPair {
        EcdsaKeyPair::generate(alg).unwrap()
    }

    fn ec_spki(pair: &EcdsaKeyPair) -> Vec<u8> {
        let der: PublicKeyX509Der = pair.public_key().as_der().unwrap();
        der.as_ref().to_vec()
    }

    fn ed_pkcs8() -> Vec<u8> {
        Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn thumbprint_matches_rfc7638_and_rfc8037_examples() {
        // RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let rsa = PublicJwk::Rsa {
            n: URL_SAFE_NO_PAD.decode(n).unwrap(),
            e: URL_SAFE_NO_PAD.decode("AQAB").unwrap(),
        };
        assert_eq!(
            rsa.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // RFC 8037 appendix A.3.
        let ed = PublicJwk::Ed25519 {
            x: URL_SAFE_NO_PAD
                .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
                .unwrap(),
        };
        assert_eq!(
            ed.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    /// Every PEM kind: its label, the DER, the key kind it yields and
    /// whether it can sign.
    #[test]
    fn parse_pem_reads_every_supported_kind() {
        let rsa = rsa_pair();
        let rsa_spki = spki_of(rsa).unwrap();
        let rsa_pkcs1_public = rsa.public_key().as_ref().to_vec();
        let rsa_pkcs1 = pkcs8_private_key(&rsa_pkcs8()).unwrap();
        let p256 = ec_pair(&lc::ECDSA_P256_SHA256_FIXED_SIGNING);
        let p384 = ec_pair(&lc::ECDSA_P384_SHA384_FIXED_SIGNING);
        let sec1 = |p: &EcdsaKeyPair| {
            let der: aws_lc_rs::encoding::EcPrivateKeyRfc5915Der =
                p.private_key().as_der().unwrap();
            der.as_ref().to_vec()
        };
        let ed = ed_pkcs8();
        let ed_pair = Ed25519KeyPair::from_pkcs8(&ed).unwrap();
        let ed_spki: PublicKeyX509Der = ed_pair.public_key().as_der().unwrap();
        let cases: Vec<(&str, Vec<u8>, KeyKind, bool)> = vec![
            ("PUBLIC KEY", rsa_spki, KeyKind::Rsa, false),
            ("RSA PUBLIC KEY", rsa_pkcs1_public, KeyKind::Rsa, false),
            ("PRIVATE KEY", rsa_pkcs8(), KeyKind::Rsa, true),
            ("RSA PRIVATE KEY", rsa_pkcs1, KeyKind::Rsa, true),
            ("PUBLIC KEY", ec_spki(&p256), KeyKind::P256, false),
            (
                "PRIVATE KEY",
                p256.to_pkcs8v1().unwrap().as_ref().to_vec(),
                KeyKind::P256,
                true,
            ),
            ("EC PRIVATE KEY", sec1(&p256), KeyKind::P256, true),
            ("PUBLIC KEY", ec_spki(&p384), KeyKind::P384, false),
            (
                "PRIVATE KEY",
                p384.to_pkcs8v1().unwrap().as_ref().to_vec(),
                KeyKind::P384,
                true,
            ),
            ("EC PRIVATE KEY", sec1(&p384), KeyKind::P384, true),
            (
                "PUBLIC KEY",
                ed_spki.as_ref().to_vec(),
                KeyKind::Ed25519,
                false,
            ),
            ("PRIVATE KEY", ed.clone(), KeyKind::Ed25519, true),
        ];
        let rsa_public = PublicJwk::Rsa {
            n: PublicKeyComponents::<Vec<u8>>::from(rsa.public_key()).n,
            e: vec![1, 0, 1],
        };
        for (label, der, kind, private) in cases {
            let keys = parse_pem(pem_of(label, &der).as_bytes())
                .unwrap_or_else(|e| panic!("{label} {kind:?}: {e}"));
            assert_eq!(keys.len(), 1, "{label}");
            assert_eq!(keys[0].public.kind(), kind, "{label}");
            assert_eq!(keys[0].signing.is_some(), private, "{label} {kind:?}");
            if kind == KeyKind::Rsa {
                // Public and private forms of one key: one thumbprint.
                assert_eq!(keys[0].public, rsa_public, "{label}");
            }
        }
    }

    #[test]
    fn parse_pem_refuses_what_it_cannot_use() {
        let p521 = ec_pair(&lc::ECDSA_P521_SHA512_FIXED_SIGNING);
        let p521_pkcs8 = p521.to_pkcs8v1().unwrap().as_ref().to_vec();
        type Expect = fn(&KeyError) -> bool;
        let cases: Vec<(String, Expect)> = vec![
            ("".into(), |e| matches!(e, KeyError::NoPem)),
            ("just text\n".into(), |e| matches!(e, KeyError::NoPem)),
            (
                "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n".into(),
                |e| matches!(e, KeyError::Pem(_)),
            ),
            ("-----BEGIN PUBLIC KEY-----\nAAAA\n".into(), |e| {
                matches!(e, KeyError::Pem(_) | KeyError::NoPem)
            }),
            (pem_of("PUBLIC KEY", b"junk"), |e| {
                matches!(e, KeyError::Unusable("PUBLIC KEY"))
            }),
            (pem_of("RSA PUBLIC KEY", b"junk"), |e| {
                matches!(e, KeyError::Unusable("RSA PUBLIC KEY"))
            }),
            (pem_of("PRIVATE KEY", b"junk"), |e| {
                matches!(e, KeyError::Unusable("PRIVATE KEY"))
            }),
            (pem_of("PRIVATE KEY", &p521_pkcs8), |e| {
                matches!(e, KeyError::Unusable("PRIVATE KEY"))
            }),
            (pem_of("PUBLIC KEY", &ec_spki(&p521)), |e| {
                matches!(e, KeyError::Unusable("PUBLIC KEY"))
            }),
            (pem_of("EC PRIVATE KEY", b"junk"), |e| {
                matches!(e, KeyError::Unusable("EC PRIVATE KEY"))
            }),
            (pem_of("ENCRYPTED PRIVATE KEY", b"x"), |e| {
                matches!(e, KeyError::Encrypted)
            }),
            (pem_of("CERTIFICATE", b"x"), |e| {
                matches!(e, KeyError::Certificate)
            }),
            (
                pem_of("DSA PRIVATE KEY", b"x"),
                |e| matches!(e, KeyError::Label(l) if l == "DSA PRIVATE KEY"),
            ),
        ];
        for (text, expected) in cases {
            match parse_pem(text.as_bytes()) {
                Ok(keys) => panic!("{text:?} gave {keys:?}"),
                Err(e) => assert!(expected(&e), "{text:?}: {e:?}"),
            }
        }
    }

    #[test]
    fn compressed_ec_points_are_refused_with_a_reason() {
        let pair = ec_pair(&lc::ECDSA_P256_SHA256_FIXED_SIGNING);
        let mut spki = ec_spki(&pair);
        // Rewrite the uncompressed point as its compressed form, fixing up
        // the three DER lengths that enclose it.
        let point = spki.split_off(spki.len() - 65);
        let mut compressed = vec![0x02 | (point[64] & 1)];
        compressed.extend_from_slice(&point[1..33]);
        let prefix_len = spki.len();
        spki.extend_from_slice(&compressed);
        spki[1] -= 32;
        spki[prefix_len - 2] -= 32; // BIT STRING length
        let err = parse_pem(pem_of("PUBLIC KEY", &spki).as_bytes()).unwrap_err();
        assert!(matches!(err, KeyError::CompressedPoint), "{err:?}");
    }

    #[test]
    fn jwk_set_is_accepted_by_the_gateway_loader() {
        let p256 = ec_pair(&lc::ECDSA_P256_SHA256_FIXED_SIGNING);
        let p384 = ec_pair(&lc::ECDSA_P384_SHA384_FIXED_SIGNING);
        let text = [
            pem_of("PRIVATE KEY", &rsa_pkcs8()),
            pem_of("PUBLIC KEY", &ec_spki(&p256)),
            pem_of("PRIVATE KEY", p384.to_pkcs8v1().unwrap().as_ref()),
            pem_of("PRIVATE KEY", &ed_pkcs8()),
        ]
        .concat();
        let keys = parse_pem(text.as_bytes()).unwrap();
        for (rsa_alg, want) in [
            (None, Algorithm::RS256),
            (Some(Algorithm::PS256), Algorithm::PS256),
        ] {
            let doc = jwk_set(&keys, rsa_alg).unwrap();
            let set = KeySet::from_json(&doc).unwrap();
            assert_eq!((set.len(), set.skipped), (4, 0), "{doc}");
            let algs = [want, Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA];
            for (key, alg) in keys.iter().zip(algs) {
                let kid = key.public.thumbprint();
                let chosen = set.select(Some(&kid), alg).unwrap();
                assert_eq!(chosen.alg, Some(alg), "{doc}");
            }
            for jwk in doc["keys"].as_array().unwrap() {
                assert_eq!(jwk["use"], "sig");
                for private in ["d", "p", "q", "dp", "dq", "qi"] {
                    assert!(jwk.get(private).is_none(), "{jwk}");
                }
            }
        }
        let err = jwk_set(&keys, Some(Algorithm::ES256)).unwrap_err();
        assert!(matches!(err, KeyError::AlgMismatch { .. }), "{err:?}");
    }

    #[test]
    fn choose_alg_defaults_by_key_kind_and_refuses_misfits() {
        let rsa = PublicJwk::Rsa {
            n: vec![0xc1; 256],
            e: vec![1, 0, 1],
        };
        let ed = PublicJwk::Ed25519 { x: vec![0; 32] };
        assert_eq!(rsa.choose_alg(None).unwrap(), Algorithm::RS256);
        assert_eq!(
            rsa.choose_alg(Some(Algorithm::PS384)).unwrap(),
            Algorithm::PS384
        );
        assert!(rsa.choose_alg(Some(Algorithm::EdDSA)).is_err());
        assert_eq!(ed.choose_alg(None).unwrap(), Algorithm::EdDSA);
        assert!(ed.choose_alg(Some(Algorithm::ES256)).is_err());
        assert!(parse_alg("HS256").is_err());
        assert!(parse_alg("none").is_err());
        assert_eq!(parse_alg("PS256").unwrap(), Algorithm::PS256);
    }
}
