//! The DER inside a PEM block, per label: SubjectPublicKeyInfo, PKCS#1
//! and PKCS#8 RSA keys, SEC 1 EC private keys and PKCS#8 EC and Ed25519
//! keys, to the public JWK members and, for a private key, the DER a signer
//! takes.

use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, PublicKey as RsaPublicKey, PublicKeyComponents};
use aws_lc_rs::signature::{
    self as lc, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, ParsedPublicKey,
};
use yasna::models::ObjectIdentifier;

use super::{KeyError, PemKey, PublicJwk, SigningDer};
use crate::auth::jwk::{modulus_bits, KeyKind, RSA_BITS};

/// One PEM block by label (RFC 7468 section 13 for `PUBLIC KEY`, RFC 8017
/// appendix A.1 for the PKCS#1 forms, RFC 5958 for `PRIVATE KEY`, RFC 5915
/// for `EC PRIVATE KEY`).
pub(super) fn parse_block(label: &str, der: &[u8]) -> Result<PemKey, KeyError> {
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
pub(super) fn pkcs8_private_key(der: &[u8]) -> Option<Vec<u8>> {
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
