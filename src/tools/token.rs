//! `tokengate token`: DEVELOPMENT ONLY. Mints a signed JWT from a local
//! private key, to try a configuration before an identity provider is at
//! hand.
//!
//! Nothing here weakens the gateway: such a token is verified like any
//! other, so it is accepted only where its key is in a configured key set
//! (typically a `jwks_file` built from the same key with
//! `tokengate jwks from-pem`) and its `iss` and `aud` match that issuer.
//! The default `kid` is the key's RFC 7638 thumbprint, the kid
//! `jwks from-pem` gives it, and the default `typ` is `at+jwt` with `iat`,
//! `exp` and a random `jti`, so a token with `--sub` and `--client-id` also
//! passes the `rfc9068` profile (RFC 9068 section 2).
//!
//! Signing is jsonwebtoken's `encode` on its aws-lc-rs backend
//! (`default-features = false, features = ["aws_lc_rs"]`: no `ring`, no
//! PEM parser of its own); the key comes from [`super::jwks`], which
//! already hands over the DER that backend reads.

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Map, Value};

use super::jwks::{KeyError, PemKey, SigningDer};
use crate::config::Algorithm;

/// Printed on stderr on every run, and part of `--help`.
pub const DEVELOPMENT_ONLY: &str = "tokengate token is for DEVELOPMENT ONLY: it signs with a local key; the gateway accepts the token only if that key is in a configured key set";

/// What goes into the token.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    pub iss: String,
    pub aud: Vec<String>,
    pub sub: Option<String>,
    pub client_id: Option<String>,
    pub scope: Option<String>,
    /// Seconds from `iat` to `exp`.
    pub ttl_s: u64,
    /// Default: the key's RFC 7638 thumbprint.
    pub kid: Option<String>,
    /// Default: by key type (RS256, ES256, ES384, EdDSA).
    pub alg: Option<Algorithm>,
    pub typ: String,
    /// Extra claims, set last (they may replace the ones above).
    pub claims: Vec<(String, Value)>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the key file holds {0} private keys; give a file with exactly one")]
    SeveralKeys(usize),
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// `--claim k=v`: `v` as JSON when it parses (`n=5`, `admin=true`,
/// `roles=["a","b"]`), otherwise as a string (`tenant=acme`).
pub fn parse_claim(arg: &str) -> Result<(String, Value), String> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?}: expected NAME=VALUE"))?;
    if name.is_empty() {
        return Err(format!("{arg:?}: empty claim name"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    Ok((name.to_string(), value))
}

/// The one private key among `keys`.
pub fn signing_key(keys: Vec<PemKey>) -> Result<PemKey, TokenError> {
    let mut private: Vec<PemKey> = keys.into_iter().filter(|k| k.signing.is_some()).collect();
    match private.len() {
        0 => Err(KeyError::NotPrivate.into()),
        1 => Ok(private.remove(0)),
        n => Err(TokenError::SeveralKeys(n)),
    }
}

/// The claims of `spec` at `now` (seconds since the epoch).
pub fn claims(spec: &TokenSpec, now: u64, jti: &str) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("iss".into(), spec.iss.clone().into());
    let aud = match spec.aud.as_slice() {
        [one] => Value::String(one.clone()),
        many => many.iter().cloned().map(Value::String).collect(),
    };
    claims.insert("aud".into(), aud);
    for (name, value) in [
        ("sub", &spec.sub),
        ("client_id", &spec.client_id),
        ("scope", &spec.scope),
    ] {
        if let Some(v) = value {
            claims.insert(name.into(), v.clone().into());
        }
    }
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(spec.ttl_s).into());
    claims.insert("jti".into(), jti.into());
    for (name, value) in &spec.claims {
        claims.insert(name.clone(), value.clone());
    }
    claims
}

/// Signs `spec` with `key` at `now`.
pub fn mint(spec: &TokenSpec, key: &PemKey, now: u64) -> Result<String, TokenError> {
    let Some(signing) = &key.signing else {
        return Err(KeyError::NotPrivate.into());
    };
    let alg = key.public.choose_alg(spec.alg)?;
    let mut header = Header::new(jose_alg(alg));
    header.typ = Some(spec.typ.clone());
    header.kid = Some(spec.kid.clone().unwrap_or_else(|| key.public.thumbprint()));
    let jti = format!("{:032x}", rand::random::<u128>());
    jsonwebtoken::encode(&header, &claims(spec, now, &jti), &encoding_key(signing))
        .map_err(|e| TokenError::Sign(e.to_string()))
}

/// The key jsonwebtoken signs with (also `tokengate dpop-proof`'s).
pub(crate) fn encoding_key(signing: &SigningDer) -> EncodingKey {
    match signing {
        SigningDer::RsaPkcs1(der) => EncodingKey::from_rsa_der(der),
        SigningDer::EcPkcs8(der) => EncodingKey::from_ec_der(der),
        SigningDer::Ed25519Pkcs8(der) => EncodingKey::from_ed_der(der),
    }
}

pub(crate) fn jose_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    use jsonwebtoken::Algorithm as J;
    match alg {
        Algorithm::RS256 => J::RS256,
        Algorithm::RS384 => J::RS384,
        Algorithm::RS512 => J::RS512,
        Algorithm::PS256 => J::PS256,
        Algorithm::PS384 => J::PS384,
        Algorithm::PS512 => J::PS512,
        Algorithm::ES256 => J::ES256,
        Algorithm::ES384 => J::ES384,
        Algorithm::EdDSA => J::EdDSA,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwk::KeySet;
    use crate::tools::jwks::{jwk_set, parse_pem};
    use aws_lc_rs::signature::{self as lc, EcdsaKeyPair, Ed25519KeyPair};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    fn pem_key(der: &[u8]) -> PemKey {
        let text = pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()));
        parse_pem(text.as_bytes()).unwrap().remove(0)
    }

    fn spec() -> TokenSpec {
        TokenSpec {
            iss: "https://idp.test/".into(),
            aud: vec!["api".into()],
            sub: Some("alice".into()),
            client_id: Some("app".into()),
            scope: Some("a b".into()),
            ttl_s: 60,
            typ: "at+jwt".into(),
            ..TokenSpec::default()
        }
    }

    fn segment(token: &str, i: usize) -> Value {
        let part = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// Each key kind signs a token that the key set built from the same
    /// key verifies under the header's kid and alg.
    #[test]
    fn mint_signs_what_the_matching_key_set_verifies() {
        let p256 = EcdsaKeyPair::generate(&lc::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p384 = EcdsaKeyPair::generate(&lc::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let ed = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let rsa_der: aws_lc_rs::encoding::Pkcs8V1Der =
            aws_lc_rs::encoding::AsDer::as_der(&rsa).unwrap();
        let cases = [
            (pem_key(rsa_der.as_ref()), None, "RS256"),
            (pem_key(rsa_der.as_ref()), Some(Algorithm::PS256), "PS256"),
            (pem_key(p256.to_pkcs8v1().unwrap().as_ref()), None, "ES256"),
            (pem_key(p384.to_pkcs8v1().unwrap().as_ref()), None, "ES384"),
            (pem_key(ed.as_ref()), None, "EdDSA"),
        ];
        for (key, alg, name) in cases {
            let spec = TokenSpec { alg, ..spec() };
            let token = mint(&spec, &key, 1_000).unwrap();
            let header = segment(&token, 0);
            assert_eq!(header["alg"], name);
            assert_eq!(header["typ"], "at+jwt");
            assert_eq!(header["kid"], key.public.thumbprint());
            let set =
                KeySet::from_json(&jwk_set(std::slice::from_ref(&key), alg).unwrap()).unwrap();
            let alg = Algorithm::from_name(name).unwrap();
            let verifier = set.select(Some(&key.public.thumbprint()), alg).unwrap();
            let (input, sig) = token.rsplit_once('.').unwrap();
            let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            assert!(verifier.verify(alg, input.as_bytes(), &sig), "{name}");
        }
    }

    #[test]
    fn claims_carry_spec_times_and_extra_claims_last() {
        let many = TokenSpec {
            aud: vec!["a1".into(), "a2".into()],
            claims: vec![
                ("tenant".into(), json!("acme")),
                ("sub".into(), json!("bob")),
            ],
            ..spec()
        };
        let c = Value::Object(claims(&many, 1_000, "j1"));
        assert_eq!(c["iss"], "https://idp.test/");
        assert_eq!(c["aud"], json!(["a1", "a2"]));
        assert_eq!(c["sub"], "bob");
        assert_eq!(c["client_id"], "app");
        assert_eq!(c["scope"], "a b");
        assert_eq!(c["iat"], 1_000);
        assert_eq!(c["exp"], 1_060);
        assert_eq!(c["jti"], "j1");
        assert_eq!(c["tenant"], "acme");
        let one = Value::Object(claims(
            &TokenSpec {
                sub: None,
                ..spec()
            },
            0,
            "j",
        ));
        assert_eq!(one["aud"], "api");
        assert!(one.get("sub").is_none());
    }

    #[test]
    fn parse_claim_reads_json_or_falls_back_to_string() {
        let cases = [
            ("n=5", Some(("n", json!(5)))),
            ("admin=true", Some(("admin", json!(true)))),
            ("roles=[\"a\",\"b\"]", Some(("roles", json!(["a", "b"])))),
            ("tenant=acme", Some(("tenant", json!("acme")))),
            ("url=https://x/?a=b", Some(("url", json!("https://x/?a=b")))),
            ("empty=", Some(("empty", json!("")))),
            ("noequals", None),
            ("=v", None),
        ];
        for (arg, want) in cases {
            let got = parse_claim(arg).ok();
            let want = want.map(|(k, v)| (k.to_string(), v));
            assert_eq!(got, want, "{arg}");
        }
    }

    #[test]
    fn mint_refuses_public_keys_and_misfit_algorithms() {
        let p256 = EcdsaKeyPair::generate(&lc::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let key = pem_key(p256.to_pkcs8v1().unwrap().as_ref());
        let bad_alg = TokenSpec {
            alg: Some(Algorithm::RS256),
            ..spec()
        };
        assert!(matches!(
            mint(&bad_alg, &key, 0),
            Err(TokenError::Key(KeyError::AlgMismatch { .. }))
        ));
        let public = PemKey {
            public: key.public.clone(),
            signing: None,
        };
        assert!(matches!(
            mint(&spec(), &public, 0),
            Err(TokenError::Key(KeyError::NotPrivate))
        ));
        assert!(matches!(
            signing_key(vec![public]),
            Err(TokenError::Key(KeyError::NotPrivate))
        ));
    }
}
