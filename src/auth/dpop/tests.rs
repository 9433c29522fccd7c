//! Every refusal of a DPoP proof (extensions section 9), table-driven, with
//! proofs signed here by aws-lc-rs keys and time pinned by a manual clock.

use super::*;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::json;
use std::time::Duration;

const NOW: f64 = 1_800_000_000.0;
const TOKEN: &str = "the-access-token";
const URL: &str = "https://api.example.com/orders/7";

enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl Signer {
    fn es256() -> Signer {
        Signer::Es256(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }

    fn eddsa() -> Signer {
        Signer::EdDsa(Ed25519KeyPair::generate().unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            Signer::Es256(_) => "ES256",
            Signer::EdDsa(_) => "EdDSA",
        }
    }

    fn jwk(&self) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match self {
            Signer::Es256(k) => {
                let point = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            Signer::EdDsa(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
            }
        }
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        match self {
            Signer::Es256(k) => k
                .sign(&SystemRandom::new(), input)
                .unwrap()
                .as_ref()
                .to_vec(),
            Signer::EdDsa(k) => k.sign(input).as_ref().to_vec(),
        }
    }

    fn thumbprint(&self) -> String {
        proof_key(&self.jwk(), Algorithm::from_name(self.alg()).unwrap())
            .unwrap()
            .thumbprint
    }

    /// A proof with `header` and `claims` merged over valid defaults
    /// (a `null` removes a member).
    fn proof(&self, header: Value, claims: Value) -> String {
        let mut h = json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()});
        let mut c = json!({
            "jti": "j-1", "htm": "GET", "htu": URL, "iat": NOW,
            "ath": URL_SAFE_NO_PAD.encode(digest(&SHA256, TOKEN.as_bytes())),
        });
        merge(&mut h, header);
        merge(&mut c, claims);
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(c.to_string())
        );
        let sig = URL_SAFE_NO_PAD.encode(self.sign(input.as_bytes()));
        format!("{input}.{sig}")
    }
}

/// Runs a future to completion (the replay check is async for Redis).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn merge(into: &mut Value, changes: Value) {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            into.as_object_mut().unwrap().remove(k);
        } else {
            into[k] = v.clone();
        }
    }
}

fn config(require_nonce: bool) -> DpopConfig {
    DpopConfig {
        algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
        max_age: Duration::from_secs(300),
        leeway: Duration::from_secs(5),
        require_nonce,
        nonce_ttl: Duration::from_secs(60),
        replay_cache_size: 1000,
    }
}

fn headers(proofs: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for p in proofs {
        h.append(&DPOP, HeaderValue::from_str(p).unwrap());
    }
    h
}

fn check(dpop: &Dpop, proofs: &[&str]) -> Result<Proof, AuthError> {
    dpop.verify(&headers(proofs), &Method::GET, URL, TOKEN)
}

#[test]
fn a_valid_proof_yields_its_key_thumbprint() {
    let dpop = Dpop::new(&config(false), None, &Clock::manual(NOW), None);
    for signer in [Signer::es256(), Signer::eddsa()] {
        let proof = check(&dpop, &[&signer.proof(json!({}), json!({}))]).expect("valid");
        assert_eq!(proof.thumbprint, signer.thumbprint());
    }
}

/// Every proof refusal of section 9 (`invalid_dpop_proof`).
#[test]
fn every_bad_proof_is_invalid_dpop_proof() {
    let dpop = Dpop::new(&config(false), None, &Clock::manual(NOW), None);
    let s = Signer::es256();
    let other = Signer::es256();
    let valid = s.proof(json!({}), json!({}));
    let mut private = s.jwk();
    private["d"] = json!("AAAA");
    let tampered = {
        let (input, _) = valid.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.encode(other.sign(input.as_bytes()));
        format!("{input}.{sig}")
    };
    let rsa_alg_ec_key = s.proof(json!({"alg": "RS256"}), json!({}));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "a DPoP proof is required"),
        (
            vec![valid.clone(), valid.clone()],
            "more than one DPoP proof",
        ),
        (vec!["not.a.jws".into()], "DPoP proof is malformed"),
        (vec!["abc".into()], "DPoP proof is malformed"),
        (
            vec![s.proof(json!({"typ": "JWT"}), json!({}))],
            "DPoP proof type is not dpop+jwt",
        ),
        (
            vec![s.proof(json!({"typ": null}), json!({}))],
            "DPoP proof type is not dpop+jwt",
        ),
        (
            vec![s.proof(json!({"alg": "none"}), json!({}))],
            "DPoP proof algorithm is not accepted",
        ),
        (
            vec![s.proof(json!({"alg": "HS256"}), json!({}))],
            "DPoP proof algorithm is not accepted",
        ),
        (
            vec![s.proof(json!({"alg": "ES384"}), json!({}))],
            "DPoP proof algorithm is not accepted",
        ),
        (vec![rsa_alg_ec_key], "DPoP proof algorithm is not accepted"),
        (
            vec![s.proof(json!({"crit": ["x"]}), json!({}))],
            "DPoP proof has critical extensions",
        ),
        (
            vec![s.proof(json!({"jwk": null}), json!({}))],
            "DPoP proof has no key",
        ),
        (
            vec![s.proof(json!({"jwk": private}), json!({}))],
            "proof key has private members",
        ),
        (
            vec![s.proof(json!({"alg": "EdDSA"}), json!({}))],
            "proof key does not fit the proof algorithm",
        ),
        (
            vec![s.proof(
                json!({"jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}),
                json!({}),
            )],
            "proof key is not a usable public JWK",
        ),
        (vec![tampered], "DPoP proof signature is invalid"),
        (
            vec![s.proof(json!({}), json!({"jti": null}))],
            "DPoP proof jti is missing or too long",
        ),
        (
            vec![s.proof(json!({}), json!({"jti": "x".repeat(257)}))],
            "DPoP proof jti is missing or too long",
        ),
        (
            vec![s.proof(json!({}), json!({"htm": "POST"}))],
            "DPoP proof htm does not match the request method",
        ),
        (
            vec![s.proof(json!({}), json!({"htm": "get"}))],
            "DPoP proof htm does not match the request method",
        ),
        (
            vec![s.proof(
                json!({}),
                json!({"htu": "https://api.example.com/orders/8"}),
            )],
            "DPoP proof htu does not match the request URI",
        ),
        (
            vec![s.proof(json!({}), json!({"htu": "http://api.example.com/orders/7"}))],
            "DPoP proof htu does not match the request URI",
        ),
        (
            vec![s.proof(
                json!({}),
                json!({"htu": "https://other.example.com/orders/7"}),
            )],
            "DPoP proof htu does not match the request URI",
        ),
        (
            vec![s.proof(json!({}), json!({"htu": 7}))],
            "DPoP proof htu does not match the request URI",
        ),
        (
            vec![s.proof(json!({}), json!({"iat": null}))],
            "DPoP proof has no iat",
        ),
        (
            vec![s.proof(json!({}), json!({"iat": "now"}))],
            "DPoP proof has no iat",
        ),
        (
            vec![s.proof(json!({}), json!({"iat": NOW - 306.0}))],
            "DPoP proof iat is outside the accepted window",
        ),
        (
            vec![s.proof(json!({}), json!({"iat": NOW + 306.0}))],
            "DPoP proof iat is outside the accepted window",
        ),
        (
            vec![s.proof(json!({}), json!({"ath": null}))],
            "DPoP proof ath does not match the access token",
        ),
        (
            vec![s.proof(json!({}), json!({"ath": "AAAA"}))],
            "DPoP proof ath does not match the access token",
        ),
    ];
    for (i, (proofs, why)) in cases.iter().enumerate() {
        let refs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let got = check(&dpop, &refs).map(|_| ());
        assert_eq!(
            got,
            Err(AuthError::InvalidDpopProof(why)),
            "case {i}: {why}"
        );
    }
}

#[test]
fn htu_is_compared_after_normalisation_without_query_or_fragment() {
    let dpop = Dpop::new(&config(false), None, &Clock::manual(NOW), None);
    let s = Signer::eddsa();
    for htu in [
        URL,
        "HTTPS://API.Example.com/orders/7",
        "https://api.example.com:443/orders/7",
        "https://api.example.com/orders/./7",
        "https://api.example.com/%6Frders/7",
        "https://api.example.com/orders/7?x=1",
        "https://api.example.com/orders/7#frag",
    ] {
        let proof = s.proof(json!({}), json!({"htu": htu, "jti": htu}));
        assert!(check(&dpop, &[&proof]).is_ok(), "{htu}");
    }
    assert_eq!(
        normalize_uri("http://h:80").as_deref(),
        Some("http://h/"),
        "an empty path is /, the default port is dropped"
    );
    assert_eq!(
        normalize_uri("http://h:8080/a").as_deref(),
        Some("http://h:8080/a")
    );
    assert_eq!(
        normalize_uri("http://h/a/../b/./c/.").as_deref(),
        Some("http://h/b/c/")
    );
    assert_eq!(normalize_uri("http://h/..").as_deref(), Some("http://h/"));
    assert_eq!(normalize_uri("ftp://h/a"), None);
    assert_eq!(normalize_uri("/a"), None);
    assert_eq!(normalize_uri("https://u@h/a"), None);
}

#[test]
fn the_iat_window_is_max_age_plus_leeway_both_ways() {
    let clock = Clock::manual(NOW);
    let dpop = Dpop::new(&config(false), None, &clock, None);
    let s = Signer::es256();
    for (i, iat) in [NOW - 305.0, NOW + 305.0, NOW].into_iter().enumerate() {
        let proof = s.proof(json!({}), json!({"iat": iat, "jti": i.to_string()}));
        assert!(check(&dpop, &[&proof]).is_ok(), "iat {iat}");
    }
}

#[test]
fn a_jti_is_accepted_once_per_key_within_the_window() {
    let dpop = Dpop::new(&config(false), None, &Clock::manual(NOW), None);
    let (a, b) = (Signer::es256(), Signer::es256());
    let proof_a = a.proof(json!({}), json!({}));
    let first = check(&dpop, &[&proof_a]).unwrap();
    assert_eq!(block_on(dpop.remember(&first)), Ok(()));
    let again = check(&dpop, &[&proof_a]).unwrap();
    assert_eq!(
        block_on(dpop.remember(&again)),
        Err(AuthError::InvalidDpopProof("DPoP proof was already used"))
    );
    // The same jti under another key is another proof.
    let proof_b = b.proof(json!({}), json!({}));
    assert_eq!(
        block_on(dpop.remember(&check(&dpop, &[&proof_b]).unwrap())),
        Ok(())
    );
    // A reload keeps what was seen.
    let reloaded = Dpop::new(&config(false), Some(&dpop), &Clock::manual(NOW), None);
    let replay = check(&reloaded, &[&proof_a]).unwrap();
    assert!(block_on(reloaded.remember(&replay)).is_err());
}

#[test]
fn the_replay_cache_is_bounded_by_its_size() {
    let mut small = config(false);
    small.replay_cache_size = 10;
    let dpop = Dpop::new(&small, None, &Clock::manual(NOW), None);
    let s = Signer::eddsa();
    for i in 0..200 {
        let proof = s.proof(json!({}), json!({"jti": i.to_string()}));
        block_on(dpop.remember(&check(&dpop, &[&proof]).unwrap())).unwrap();
    }
    assert!(dpop.replay.len() <= 10, "{}", dpop.replay.len());
}

#[test]
fn nonces_are_required_when_configured_and_expire_after_their_ttl() {
    let clock = Clock::manual(NOW);
    let dpop = Dpop::new(&config(true), None, &clock, None);
    let s = Signer::es256();
    let without = s.proof(json!({}), json!({}));
    assert_eq!(
        check(&dpop, &[&without]).map(|_| ()),
        Err(AuthError::UseDpopNonce)
    );
    let forged = s.proof(json!({}), json!({"nonce": "AAAAAAAAAAA"}));
    assert_eq!(
        check(&dpop, &[&forged]).map(|_| ()),
        Err(AuthError::UseDpopNonce)
    );
    let nonce = dpop.nonce();
    let with = s.proof(json!({}), json!({"nonce": nonce.to_str().unwrap()}));
    assert!(check(&dpop, &[&with]).is_ok());
    // Another process (another key) did not issue it.
    let other = Dpop::new(&config(true), None, &clock, None);
    assert_eq!(
        check(&other, &[&with]).map(|_| ()),
        Err(AuthError::UseDpopNonce)
    );
    // A reload keeps the key.
    let reloaded = Dpop::new(&config(true), Some(&dpop), &clock, None);
    assert!(check(&reloaded, &[&with]).is_ok());
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        check(&dpop, &[&with]).map(|_| ()),
        Err(AuthError::UseDpopNonce)
    );
    // A bad proof is refused as such before its nonce is looked at.
    let bad = s.proof(json!({"typ": "JWT"}), json!({}));
    assert!(matches!(
        check(&dpop, &[&bad]),
        Err(AuthError::InvalidDpopProof(_))
    ));
}
