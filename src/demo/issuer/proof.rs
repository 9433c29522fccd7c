//! DPoP at the demo issuer's token endpoint (RFC 9449 section 5): a token
//! request may carry one `DPoP` proof for `POST` to the token URL; the
//! token then is bound to the proof key (`cnf.jkt`, its RFC 7638
//! thumbprint) and issued with `token_type: "DPoP"`.
//!
//! The proof is checked by the gateway's own [`Dpop`] (structure, `typ`,
//! `alg`, key, signature, `jti`, `htm`, `htu`, `iat` and replays), without
//! `ath`: no access token exists yet. The issuer takes the algorithms and
//! the `iat` window from the demo configuration's `[dpop]`, and asks for no
//! server nonce.

use http::{HeaderMap, Method};

use super::{oauth_error, OAuthError};
use crate::auth::dpop::{Dpop, DPOP};
use crate::auth::AuthError;
use crate::clock::Clock;
use crate::config::DpopConfig;

/// The token endpoint's DPoP state: the checks and their replay cache.
pub(super) struct TokenProofs {
    dpop: Dpop,
    token_url: String,
}

/// A verified proof whose `jti` is recorded only when a token is issued.
pub(super) struct Accepted(crate::auth::dpop::Proof);

impl Accepted {
    pub(super) fn jkt(&self) -> &str {
        &self.0.thumbprint
    }
}

impl TokenProofs {
    pub(super) fn new(config: &DpopConfig, token_url: String) -> TokenProofs {
        let config = DpopConfig {
            require_nonce: false,
            ..config.clone()
        };
        TokenProofs {
            dpop: Dpop::new(&config, None, &Clock::system(), None),
            token_url,
        }
    }

    /// The algorithms a proof may use, for the discovery document.
    pub(super) fn algorithms(&self) -> Vec<&'static str> {
        self.dpop
            .config
            .algorithms
            .iter()
            .map(|a| a.name())
            .collect()
    }

    /// `None` without a `DPoP` header; the checked proof, or RFC 9449's
    /// `invalid_dpop_proof`, with one.
    pub(super) fn check(&self, headers: &HeaderMap) -> Result<Option<Accepted>, OAuthError> {
        if !headers.contains_key(&DPOP) {
            return Ok(None);
        }
        self.dpop
            .verify_token_request(headers, &Method::POST, &self.token_url)
            .map(|proof| Some(Accepted(proof)))
            .map_err(invalid_proof)
    }

    /// Records the proof's `jti`: a second token request with the same
    /// proof is a replay.
    pub(super) async fn remember(&self, proof: &Accepted) -> Result<(), OAuthError> {
        self.dpop.remember(&proof.0).await.map_err(invalid_proof)
    }
}

fn invalid_proof(e: AuthError) -> OAuthError {
    let why = match e {
        AuthError::InvalidDpopProof(why) => why,
        _ => "the DPoP proof is not valid",
    };
    oauth_error("invalid_dpop_proof", why)
}

#[cfg(test)]
mod tests {
    use super::super::{test_issuer, Issuer};
    use super::*;
    use crate::tools::dpop_proof::{load_or_create_key, proof, ProofSpec};
    use crate::tools::jwks::PemKey;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    use http::HeaderValue;
    use serde_json::{json, Value};
    use std::collections::HashMap;

    const TOKEN_URL: &str = "http://127.0.0.1:1/token";

    fn key() -> PemKey {
        let dir = tempfile::tempdir().unwrap();
        load_or_create_key(&dir.path().join("k.pem")).unwrap().0
    }

    fn now() -> u64 {
        Clock::system().now() as u64
    }

    fn make(key: &PemKey, method: &str, url: &str, iat: u64) -> String {
        let spec = ProofSpec {
            method: method.into(),
            url: url.into(),
            ..ProofSpec::default()
        };
        proof(&spec, key, iat).unwrap()
    }

    /// A token request of `client` (HTTP Basic) with these `DPoP` headers.
    async fn request(
        issuer: &Issuer,
        client: (&str, &str),
        proofs: &[&str],
    ) -> Result<Value, &'static str> {
        let mut headers = HeaderMap::new();
        let basic = STANDARD.encode(format!("{}:{}", client.0, client.1));
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}")).unwrap(),
        );
        for p in proofs {
            headers.append(&DPOP, HeaderValue::from_str(p).unwrap());
        }
        let form = HashMap::from([("grant_type".to_string(), "client_credentials".to_string())]);
        issuer.token(&headers, &form).await.map_err(|e| {
            assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
            e.code
        })
    }

    fn payload(jwt: &str) -> Value {
        let part = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    const READER: (&str, &str) = ("demo-reader", "reader-secret");

    #[tokio::test]
    async fn a_proof_binds_the_token_to_its_key() {
        let issuer = test_issuer();
        let key = key();
        let proof = make(&key, "POST", TOKEN_URL, now());
        let answer = request(&issuer, READER, &[&proof]).await.unwrap();
        assert_eq!(answer["token_type"], "DPoP");
        let claims = payload(answer["access_token"].as_str().unwrap());
        assert_eq!(claims["cnf"], json!({"jkt": key.public.thumbprint()}));

        let bearer = request(&issuer, READER, &[]).await.unwrap();
        assert_eq!(bearer["token_type"], "Bearer");
        assert!(payload(bearer["access_token"].as_str().unwrap())
            .get("cnf")
            .is_none());
    }

    #[tokio::test]
    async fn an_opaque_bound_token_introspects_with_its_key() {
        let issuer = test_issuer();
        let key = key();
        let proof = make(&key, "POST", TOKEN_URL, now());
        let answer = request(&issuer, ("demo-opaque", "opaque-secret"), &[&proof])
            .await
            .unwrap();
        assert_eq!(answer["token_type"], "DPoP");
        let token = answer["access_token"].as_str().unwrap();
        let mut gateway = HeaderMap::new();
        gateway.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic dG9rZW5nYXRlOmludHJvc3BlY3Qtc2VjcmV0"),
        );
        let form = HashMap::from([("token".to_string(), token.to_string())]);
        let active = issuer.introspect(&gateway, &form).unwrap();
        assert_eq!(active["token_type"], "DPoP");
        assert_eq!(active["cnf"], json!({"jkt": key.public.thumbprint()}));
    }

    /// Every refusal is RFC 9449 section 5's `invalid_dpop_proof` (400).
    #[tokio::test]
    async fn bad_token_request_proofs_are_invalid_dpop_proof() {
        let issuer = test_issuer();
        let key = key();
        let valid = make(&key, "POST", TOKEN_URL, now());
        let cases = [
            vec![make(&key, "GET", TOKEN_URL, now())],
            vec![make(&key, "POST", "http://127.0.0.1:1/introspect", now())],
            vec![make(&key, "POST", TOKEN_URL, now() - 600)],
            vec![valid.clone(), valid.clone()],
            vec!["not-a-proof".to_string()],
        ];
        for proofs in cases {
            let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
            let got = request(&issuer, READER, &proofs).await.err();
            assert_eq!(got, Some("invalid_dpop_proof"), "{proofs:?}");
        }
        assert!(request(&issuer, READER, &[&valid]).await.is_ok());
        let replay = request(&issuer, READER, &[&valid]).await.err();
        assert_eq!(replay, Some("invalid_dpop_proof"), "a replayed proof");
    }

    #[test]
    fn discovery_names_the_proof_algorithms() {
        let discovery = test_issuer().discovery();
        assert_eq!(
            discovery["dpop_signing_alg_values_supported"],
            json!(["ES256", "EdDSA"])
        );
    }
}
