//! Tests of `tokengate jwks`: thumbprints, every PEM kind read or refused
//! with a reason, and the set the gateway's loader accepts.

use super::der::pkcs8_private_key;
use super::*;
use crate::auth::jwk::KeySet;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, PublicKeyComponents};
use aws_lc_rs::signature::{
    self as lc, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _,
};
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
        let der: aws_lc_rs::encoding::EcPrivateKeyRfc5915Der = p.private_key().as_der().unwrap();
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
