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
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

use crate::auth::jwk::KeyKind;
use crate::config::Algorithm;

mod der;
#[cfg(test)]
mod tests;

use der::parse_block;

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
