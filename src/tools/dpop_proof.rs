//! `tokengate dpop-proof`: a DPoP proof (RFC 9449 section 4) for one
//! request, so a DPoP client needs nothing beyond curl and this binary:
//!
//! ```sh
//! curl -H "Authorization: DPoP $TOKEN" \
//!      -H "DPoP: $(tokengate dpop-proof --key key.pem --method GET --url "$URL" --token "$TOKEN")" "$URL"
//! ```
//!
//! The key is a private key PEM file as `tokengate token` reads it; a file
//! that does not exist yet is created first with a new EC P-256 key (PKCS#8,
//! mode 0600 on unix), so the same key signs every later proof and the
//! token the issuer bound to it keeps working. The proof's header has `typ`
//! `dpop+jwt`, the key's algorithm (ES256 for P-256) and the public `jwk`
//! (its RFC 7638 members only); its claims are a random `jti`, `htm`,
//! `htu` (the URL without query and fragment), `iat` and, when given,
//! `ath` (base64url SHA-256 of the access token, for a resource request,
//! not for a token request) and the server's `nonce`. Signing is
//! jsonwebtoken's `encode`, as for `tokengate token`. A proof is good for
//! one request: make a fresh one for each.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::Header;
use serde_json::{Map, Value};
use std::path::Path;

use super::jwks::{FileError, KeyError, PemKey, PublicJwk};
use super::token::{encoding_key, jose_alg, signing_key, TokenError};

/// What the proof is for.
#[derive(Debug, Clone, Default)]
pub struct ProofSpec {
    /// The request method, e.g. `GET` (`htm`).
    pub method: String,
    /// The request URL; its query and fragment are left out of `htu`.
    pub url: String,
    /// The access token the request carries (`ath`); none for a token
    /// request.
    pub token: Option<String>,
    /// A server nonce from a `DPoP-Nonce` header.
    pub nonce: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error(transparent)]
    Key(#[from] FileError),
    #[error("{}: {error}", path.display())]
    Token {
        path: std::path::PathBuf,
        error: TokenError,
    },
    #[error("cannot create a key: {0}")]
    Generate(String),
    #[error("--url must be an absolute http or https URL")]
    Url,
    #[error("--method must be an HTTP method, e.g. GET or POST")]
    Method,
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// The one private key in `path`; when the file does not exist, a new
/// P-256 key is written there first. The flag says whether it was.
pub fn load_or_create_key(path: &Path) -> Result<(PemKey, bool), ProofError> {
    let created = match create_key(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => {
            return Err(FileError {
                path: path.to_path_buf(),
                error: KeyError::Read(e),
            }
            .into())
        }
    };
    let keys = super::jwks::read_pem_file(path)?;
    let key = signing_key(keys).map_err(|error| ProofError::Token {
        path: path.to_path_buf(),
        error,
    })?;
    Ok((key, created))
}

/// Writes a new P-256 key as PKCS#8 PEM to `path`, which must not exist.
fn create_key(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    let text = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// The claims of the proof for `spec` at `now` (seconds since the epoch).
pub fn claims(spec: &ProofSpec, now: u64, jti: &str) -> Result<Map<String, Value>, ProofError> {
    let method_ok = !spec.method.is_empty()
        && http::Method::from_bytes(spec.method.as_bytes())
            .is_ok_and(|m| m.as_str() == spec.method);
    if !method_ok {
        return Err(ProofError::Method);
    }
    let end = spec.url.find(['?', '#']).unwrap_or(spec.url.len());
    let htu = &spec.url[..end];
    if crate::auth::dpop::normalize_uri(htu).is_none() {
        return Err(ProofError::Url);
    }
    let mut claims = Map::new();
    claims.insert("jti".into(), jti.into());
    claims.insert("htm".into(), spec.method.clone().into());
    claims.insert("htu".into(), htu.into());
    claims.insert("iat".into(), now.into());
    if let Some(token) = &spec.token {
        let ath = URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()));
        claims.insert("ath".into(), ath.into());
    }
    if let Some(nonce) = &spec.nonce {
        claims.insert("nonce".into(), nonce.clone().into());
    }
    Ok(claims)
}

/// The public `jwk` of a proof: the RFC 7638 required members only.
fn proof_jwk(public: &PublicJwk) -> Result<Jwk, ProofError> {
    let mut jwk = public.to_jwk(public.default_alg());
    if let Some(members) = jwk.as_object_mut() {
        for other in ["use", "alg", "kid"] {
            members.remove(other);
        }
    }
    serde_json::from_value(jwk).map_err(|e| ProofError::Sign(e.to_string()))
}

/// The proof for `spec`, signed by `key` at `now`.
pub fn proof(spec: &ProofSpec, key: &PemKey, now: u64) -> Result<String, ProofError> {
    let Some(signing) = &key.signing else {
        return Err(ProofError::Sign(KeyError::NotPrivate.to_string()));
    };
    let jti = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let claims = claims(spec, now, &jti)?;
    let alg = key.public.default_alg();
    let mut header = Header::new(jose_alg(alg));
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(proof_jwk(&key.public)?);
    jsonwebtoken::encode(&header, &claims, &encoding_key(signing))
        .map_err(|e| ProofError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests;
