//! Proofs made here pass the gateway's own DPoP checks, and the key file
//! is created once and then reused.

use super::*;
use crate::auth::dpop::{Dpop, DPOP};
use crate::clock::Clock;
use crate::config::{Algorithm, DpopConfig};
use http::{HeaderMap, HeaderValue, Method};
use std::time::Duration;

const URL: &str = "http://127.0.0.1:8080/api/dpop/7";

fn gateway() -> Dpop {
    let config = DpopConfig {
        algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
        max_age: Duration::from_secs(300),
        leeway: Duration::from_secs(5),
        require_nonce: false,
        nonce_ttl: Duration::from_secs(300),
        replay_cache_size: 100,
    };
    Dpop::new(&config, None, &Clock::system(), None)
}

fn dpop_header(proof: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(&DPOP, HeaderValue::from_str(proof).unwrap());
    headers
}

fn now() -> u64 {
    Clock::system().now() as u64
}

fn spec(method: &str, url: &str, token: Option<&str>) -> ProofSpec {
    ProofSpec {
        method: method.into(),
        url: url.into(),
        token: token.map(Into::into),
        nonce: None,
    }
}

fn segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn a_new_key_file_is_created_once_and_its_proofs_pass_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dpop.pem");
    let (key, created) = load_or_create_key(&path).unwrap();
    assert!(created);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (again, created) = load_or_create_key(&path).unwrap();
    assert!(!created);
    assert_eq!(again.public, key.public);

    let dpop = gateway();
    let query = format!("{URL}?page=2#top");
    let resource = proof(&spec("GET", &query, Some("tok")), &key, now()).unwrap();
    let checked = dpop
        .verify(&dpop_header(&resource), &Method::GET, URL, "tok")
        .expect("a resource proof passes");
    assert_eq!(checked.thumbprint, key.public.thumbprint());
    let header = segment(&resource, 0);
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], "ES256");
    let members: Vec<&String> = header["jwk"].as_object().unwrap().keys().collect();
    assert_eq!(members, ["crv", "kty", "x", "y"]);
    assert_eq!(segment(&resource, 1)["htu"], URL);

    let token_url = "http://127.0.0.1:8081/token";
    let token_request = proof(&spec("POST", token_url, None), &key, now()).unwrap();
    assert!(segment(&token_request, 1).get("ath").is_none());
    let checked = dpop
        .verify_token_request(&dpop_header(&token_request), &Method::POST, token_url)
        .expect("a token-request proof passes");
    assert_eq!(checked.thumbprint, key.public.thumbprint());
}

#[test]
fn each_proof_has_its_own_jti_and_carries_the_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = load_or_create_key(&dir.path().join("k.pem")).unwrap();
    let with_nonce = ProofSpec {
        nonce: Some("n-1".into()),
        ..spec("GET", URL, Some("tok"))
    };
    let a = segment(&proof(&with_nonce, &key, now()).unwrap(), 1);
    let b = segment(&proof(&with_nonce, &key, now()).unwrap(), 1);
    assert_ne!(a["jti"], b["jti"]);
    assert_eq!(a["nonce"], "n-1");
}

#[test]
fn an_ed25519_key_signs_eddsa_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ed.pem");
    let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    std::fs::write(
        &path,
        pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec())),
    )
    .unwrap();
    let (key, created) = load_or_create_key(&path).unwrap();
    assert!(!created);
    let p = proof(&spec("GET", URL, Some("tok")), &key, now()).unwrap();
    assert_eq!(segment(&p, 0)["alg"], "EdDSA");
    let checked = gateway().verify(&dpop_header(&p), &Method::GET, URL, "tok");
    assert_eq!(checked.unwrap().thumbprint, key.public.thumbprint());
}

#[test]
fn claims_refuse_what_no_proof_could_match() {
    let cases = [
        ("GET", "/api/dpop/7", Some(ProofError::Url)),
        ("GET", "ftp://127.0.0.1/x", Some(ProofError::Url)),
        ("GET", "http://user@127.0.0.1/x", Some(ProofError::Url)),
        ("", URL, Some(ProofError::Method)),
        ("G T", URL, Some(ProofError::Method)),
        ("GET", URL, None),
        ("PATCH", "https://API.example.com:443/a?b", None),
    ];
    for (method, url, want) in cases {
        let got = claims(&spec(method, url, None), 1_000, "j").err();
        assert_eq!(
            got.map(|e| e.to_string()),
            want.map(|e| e.to_string()),
            "{method} {url}"
        );
    }
    let c = claims(&spec("GET", "https://a.test/p?q#f", Some("t")), 1_000, "j").unwrap();
    assert_eq!(c["htu"], "https://a.test/p");
    assert_eq!(c["iat"], 1_000);
    assert_eq!(c["ath"], URL_SAFE_NO_PAD.encode(digest(&SHA256, b"t")));
    assert!(c.get("nonce").is_none());
}

#[test]
fn a_public_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pub.pem");
    let public = rcgen::KeyPair::generate().unwrap().public_key_pem();
    std::fs::write(&path, public).unwrap();
    let err = load_or_create_key(&path).err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("no private key")));
}
