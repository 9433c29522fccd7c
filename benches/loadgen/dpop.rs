//! DPoP proofs for `run --dpop-key`: one distinct ES256 proof (RFC 9449)
//! per request, made before the run. Signing one per request on the
//! generator's core, which it shares with the upstream, would make the
//! generator the bottleneck, so a pool is signed up front: every proof for
//! `GET` to the target URL with `ath` over the run's one token, `iat` at
//! the time of signing (a run lasts seconds, the gateway accepts proofs for
//! minutes), and a `jti` of a random prefix and a counter, so no two proofs
//! of any run repeat one another.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use http::HeaderValue;
use serde_json::json;
use std::path::Path;
use std::time::Instant;

use crate::mint::{b64, now};
use crate::BoxError;

/// `n` proofs by the P-256 key in `key_file` (PKCS#8 PEM) for `GET url`
/// with `token`, as `DPoP` header values.
pub(crate) fn proofs(
    key_file: &Path,
    url: &str,
    token: &str,
    n: usize,
) -> Result<Vec<HeaderValue>, BoxError> {
    let started = Instant::now();
    let text =
        std::fs::read(key_file).map_err(|e| format!("cannot read {}: {e}", key_file.display()))?;
    let pem = pem::parse(text)?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pem.contents())
        .map_err(|e| format!("{}: not a P-256 PKCS#8 key: {e}", key_file.display()))?;
    let point = pair.public_key().as_ref();
    let header = json!({
        "typ": "dpop+jwt",
        "alg": "ES256",
        "jwk": {"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])},
    });
    let header = b64(header.to_string());
    let htu = &url[..url.find(['?', '#']).unwrap_or(url.len())];
    let ath = b64(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ));
    let prefix = b64(rand::random::<[u8; 9]>());
    let iat = now();
    let rng = SystemRandom::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let claims = format!(
            r#"{{"jti":"{prefix}{i:x}","htm":"GET","htu":"{htu}","iat":{iat},"ath":"{ath}"}}"#
        );
        let input = format!("{header}.{}", b64(claims));
        let signature = pair.sign(&rng, input.as_bytes())?;
        out.push(HeaderValue::try_from(format!(
            "{input}.{}",
            b64(signature.as_ref())
        ))?);
    }
    if n > 1 {
        eprintln!(
            "dpop: {n} proofs signed in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(out)
}
