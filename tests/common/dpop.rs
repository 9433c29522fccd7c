//! DPoP proofs (RFC 9449 section 4) for black-box tests: a client's proof
//! key ([`DpopKey`], ES256, EdDSA or RS256 from [`super::mint`]) with its
//! public JWK and its RFC 7638 thumbprint, and a proof builder ([`Proof`])
//! for well-formed proofs and every broken form a test needs.
//!
//! The thumbprint and `ath` are computed here with `sha2`, from the JWK
//! members RFC 7638 section 3.2 names, independently of the gateway's code.
//!
//! ```ignore
//! let client = DpopKey::es256();
//! let token = issuer_key.token(&with(&claims(&iss, AUD), json!({"cnf": {"jkt": client.thumbprint()}})));
//! let proof = client.proof("GET", &gw.url("/api/x"), &token).encode();
//! ```

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};

use super::mint::{b64, now, Alg, Key};

/// `ath`: base64url(SHA-256(access token)) (RFC 9449 section 4.2).
pub fn ath(token: &str) -> String {
    b64(Sha256::digest(token.as_bytes()))
}

/// A `jti` never used before in this test binary.
pub fn fresh_jti() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("proof-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The `cnf` claim binding a token to `key`: `{"jkt": thumbprint}`.
pub fn cnf_jkt(key: &DpopKey) -> Value {
    json!({ "jkt": key.thumbprint() })
}

/// A client's DPoP key pair.
#[derive(Clone)]
pub struct DpopKey {
    key: Key,
}

impl DpopKey {
    /// A fresh P-256 key.
    pub fn es256() -> DpopKey {
        DpopKey {
            key: Key::es256("dpop").without_kid(),
        }
    }

    /// A fresh Ed25519 key.
    pub fn eddsa() -> DpopKey {
        DpopKey {
            key: Key::eddsa("dpop").without_kid(),
        }
    }

    /// An RSA key from the last slot of the pool (the issuers' keys use
    /// the first ones).
    pub fn rs256() -> DpopKey {
        DpopKey {
            key: Key::rsa(5, Alg::RS256, "dpop").without_kid(),
        }
    }

    pub fn alg(&self) -> &'static str {
        self.key.alg().name()
    }

    /// The public JWK: the key type's required members only (no `use`,
    /// `kid` or `alg`).
    pub fn jwk(&self) -> Value {
        let full = self.key.jwk();
        let public: Map<String, Value> = thumbprint_members(&full)
            .iter()
            .map(|m| (m.to_string(), full[*m].clone()))
            .collect();
        Value::Object(public)
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url: the hash of the JSON
    /// object of the required members, in lexicographic order, without
    /// whitespace.
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let members: Vec<String> = thumbprint_members(&jwk)
            .iter()
            .map(|m| {
                let value = jwk[*m].as_str().expect("string member");
                format!("\"{m}\":\"{value}\"")
            })
            .collect();
        b64(Sha256::digest(format!("{{{}}}", members.join(","))))
    }

    /// A well-formed proof of `method` to `htu` for `token`: `typ`
    /// `dpop+jwt`, this key's `alg` and `jwk`, a fresh `jti`, `iat` now and
    /// `ath` of the token.
    pub fn proof(&self, method: &str, htu: &str, token: &str) -> Proof {
        Proof {
            key: self.key.clone(),
            header: json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()}),
            claims: json!({
                "jti": fresh_jti(),
                "htm": method,
                "htu": htu,
                "iat": now(),
                "ath": ath(token),
            }),
            signer: None,
        }
    }
}

/// The members RFC 7638 section 3.2 hashes, in lexicographic order.
fn thumbprint_members(jwk: &Value) -> &'static [&'static str] {
    match jwk["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        Some("RSA") => &["e", "kty", "n"],
        other => panic!("no thumbprint members for kty {other:?}"),
    }
}

/// A proof under construction; [`Proof::encode`] produces the compact JWS.
#[derive(Clone)]
pub struct Proof {
    key: Key,
    header: Value,
    claims: Value,
    /// Signs with another key than the one in the header.
    signer: Option<Key>,
}

impl Proof {
    /// Sets a claim; `Value::Null` removes it.
    pub fn claim(mut self, name: &str, value: Value) -> Proof {
        set(&mut self.claims, name, value);
        self
    }

    /// Sets a header member; `Value::Null` removes it.
    pub fn header(mut self, name: &str, value: Value) -> Proof {
        set(&mut self.header, name, value);
        self
    }

    /// Signs with `other`'s private key, the header naming this key.
    pub fn signed_by(mut self, other: &DpopKey) -> Proof {
        self.signer = Some(other.key.clone());
        self
    }

    /// The `jti` claim.
    pub fn jti(&self) -> String {
        self.claims["jti"].as_str().unwrap_or_default().to_string()
    }

    /// The compact serialization.
    pub fn encode(&self) -> String {
        let header = self.header.as_object().expect("header object").clone();
        let jwt = self.key.jwt(&self.claims).header_object(header);
        match &self.signer {
            Some(other) => jwt.signed_by(other).encode(),
            None => jwt.encode(),
        }
    }
}

fn set(object: &mut Value, name: &str, value: Value) {
    let map = object.as_object_mut().expect("JSON object");
    if value.is_null() {
        map.remove(name);
    } else {
        map.insert(name.to_string(), value);
    }
}
