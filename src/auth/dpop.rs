//! DPoP proofs (RFC 9449, extensions section 9): one proof, one request.
//!
//! [`Dpop::verify`] checks the request's one `DPoP` header: a compact JWS
//! with `typ` `dpop+jwt`, an `alg` from `dpop.algorithms`, a public `jwk`
//! that fits it (parsed once, for that one algorithm: no key set, no
//! network), a valid signature, and the claims `jti`, `htm`, `htu`, `iat`,
//! `ath` and, when required, a live server `nonce`. The caller compares the
//! proof key's thumbprint with the token's `cnf.jkt` ([`super::binding`])
//! and then calls [`Dpop::remember`], which refuses a `jti` already seen.
//!
//! Replays: accepted proofs' `jti` values (per key) are kept in a bounded
//! cache ([`replay`]) until the proof would be stale anyway (`iat` plus
//! `max_age_s` plus `leeway_s`), so a replay inside the window is refused.
//!
//! With `[redis]` the replay check is also the fleet's: an accepted proof's
//! key is set in Redis with `SET NX` and the same lifetime, so a proof
//! replayed at another instance is refused; while Redis cannot answer, the
//! instance's own cache decides alone.
//!
//! Nonces are stateless: base64url of the issue time and an HMAC-SHA256 of
//! it under a random key this process keeps across reloads; a nonce is live
//! for `nonce_ttl_s`. Replicas do not share the key (fleet state is another
//! issue's), so a nonce is honoured by the replica that issued it.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, HeaderValue, Method, Uri};
use serde_json::{Map, Value};
use std::sync::Arc;

use super::jwk::{proof_key, ProofKey};
use super::{jws, AuthError};
use crate::clock::Clock;
use crate::config::{Algorithm, DpopConfig};
use crate::fleet::client::Redis;
use crate::target::normalize_path;

/// The request header that carries the proof.
pub static DPOP: http::HeaderName = http::HeaderName::from_static("dpop");
/// The response header that carries a fresh server nonce.
pub static DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// The longest `jti` accepted.
const MAX_JTI_BYTES: usize = 256;

/// The DPoP state of one runtime snapshot.
pub struct Dpop {
    pub config: DpopConfig,
    /// `algs` of every DPoP challenge.
    pub algs: String,
    replay: Arc<ReplayCache>,
    nonce_key: Arc<hmac::Key>,
    clock: Clock,
    shared: Option<Arc<Redis>>,
}

/// A proof whose every check passed; its `jti` is not yet remembered.
#[derive(Debug)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof key.
    pub thumbprint: String,
    replay_key: [u8; 32],
    /// When the proof would be stale: the end of its replay window.
    stale_at: f64,
}

impl Dpop {
    /// New state for `config`; a reload keeps the previous nonce key, and
    /// the replay cache while its size is unchanged.
    pub fn new(
        config: &DpopConfig,
        previous: Option<&Dpop>,
        clock: &Clock,
        shared: Option<Arc<Redis>>,
    ) -> Dpop {
        let window = (config.max_age + config.leeway).as_secs_f64();
        let replay = previous
            .filter(|p| p.config.replay_cache_size == config.replay_cache_size)
            .filter(|p| p.config.max_age + p.config.leeway == config.max_age + config.leeway)
            .map(|p| p.replay.clone())
            .unwrap_or_else(|| Arc::new(ReplayCache::new(config.replay_cache_size, window)));
        let nonce_key = previous.map(|p| p.nonce_key.clone()).unwrap_or_else(|| {
            let secret: [u8; 32] = rand::random();
            Arc::new(hmac::Key::new(hmac::HMAC_SHA256, &secret))
        });
        Dpop {
            config: config.clone(),
            algs: config.algs(),
            replay,
            nonce_key,
            clock: clock.clone(),
            shared,
        }
    }

    /// Checks the request's proof for `token`, sent as `method` to
    /// `target` (the request URI as the client saw it, without query).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        method: &Method,
        target: &str,
        token: &str,
    ) -> Result<Proof, AuthError> {
        self.check(headers, method, target, Some(token))
    }

    /// Checks a proof sent to a token endpoint (RFC 9449 section 5), as the
    /// demo issuer does: every check of [`Dpop::verify`] but `ath`, since
    /// no access token exists yet.
    pub fn verify_token_request(
        &self,
        headers: &HeaderMap,
        method: &Method,
        target: &str,
    ) -> Result<Proof, AuthError> {
        self.check(headers, method, target, None)
    }

    /// The checks of both; `ath` only with a `token`.
    fn check(
        &self,
        headers: &HeaderMap,
        method: &Method,
        target: &str,
        token: Option<&str>,
    ) -> Result<Proof, AuthError> {
        let bad = AuthError::InvalidDpopProof;
        let mut values = headers.get_all(&DPOP).iter();
        let text = values.next().ok_or(bad("a DPoP proof is required"))?;
        if values.next().is_some() {
            return Err(bad("more than one DPoP proof"));
        }
        let text = text.to_str().map_err(|_| bad("DPoP proof is malformed"))?;
        let proof = jws::decode(text).map_err(|_| bad("DPoP proof is malformed"))?;
        let key = self.header(&proof.header)?;
        let claims = &proof.claims;
        let jti = self.claims(claims, method, target, token)?;
        let signature = URL_SAFE_NO_PAD.decode(proof.signature).unwrap_or_default();
        if key
            .key
            .verify_sig(proof.signing_input.as_bytes(), &signature)
            .is_err()
        {
            return Err(bad("DPoP proof signature is invalid"));
        }
        if self.config.require_nonce {
            let nonce = claims.get("nonce").and_then(Value::as_str);
            if !nonce.is_some_and(|n| self.nonce_live(n)) {
                return Err(AuthError::UseDpopNonce);
            }
        }
        let iat = claims.get("iat").and_then(Value::as_f64).unwrap_or(0.0);
        Ok(Proof {
            replay_key: replay_key(&key.thumbprint, jti),
            thumbprint: key.thumbprint,
            stale_at: iat + self.window(),
        })
    }

    /// Records the proof's `jti`; a `jti` already recorded for the same key
    /// inside the window, here or (with `[redis]`) at another instance, is
    /// a replay.
    pub async fn remember(&self, proof: &Proof) -> Result<(), AuthError> {
        let replayed = Err(AuthError::InvalidDpopProof("DPoP proof was already used"));
        if !self
            .replay
            .insert(proof.replay_key, proof.stale_at, self.clock.now())
        {
            return replayed;
        }
        if let Some(redis) = &self.shared {
            let ms = (self.clock.until(proof.stale_at).as_millis() as u64).max(1);
            let hex: String = proof
                .replay_key
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let cmd = redis::cmd("SET")
                .arg(redis.key(&format!("dpop:{hex}")))
                .arg("1")
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .clone();
            if let Some(None) = redis.query::<Option<String>>("dpop_replay", &cmd).await {
                return replayed;
            }
        }
        Ok(())
    }

    /// A fresh server nonce, for `DPoP-Nonce`.
    pub fn nonce(&self) -> HeaderValue {
        let issued = (self.clock.now().max(0.0) as u64).to_be_bytes();
        let tag = hmac::sign(&self.nonce_key, &issued);
        let mut raw = issued.to_vec();
        raw.extend_from_slice(tag.as_ref());
        HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(raw)).expect("base64url is a header value")
    }

    fn nonce_live(&self, nonce: &str) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Some((issued, tag)) = raw.split_first_chunk::<8>() else {
            return false;
        };
        if hmac::verify(&self.nonce_key, issued, tag).is_err() {
            return false;
        }
        let age = self.clock.now() - u64::from_be_bytes(*issued) as f64;
        (-1.0..self.config.nonce_ttl.as_secs_f64()).contains(&age)
    }

    /// `max_age_s + leeway_s`: how far `iat` may be from now.
    fn window(&self) -> f64 {
        (self.config.max_age + self.config.leeway).as_secs_f64()
    }

    /// The JOSE header: `typ`, `alg`, no `crit`, and the key.
    fn header(&self, header: &Map<String, Value>) -> Result<ProofKey, AuthError> {
        let bad = AuthError::InvalidDpopProof;
        let typ = header.get("typ").and_then(Value::as_str);
        if !typ.is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")) {
            return Err(bad("DPoP proof type is not dpop+jwt"));
        }
        if header.contains_key("crit") {
            return Err(bad("DPoP proof has critical extensions"));
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Algorithm::from_name)
            .filter(|a| self.config.algorithms.contains(a))
            .ok_or(bad("DPoP proof algorithm is not accepted"))?;
        let jwk = header.get("jwk").ok_or(bad("DPoP proof has no key"))?;
        proof_key(jwk, alg).map_err(bad)
    }

    /// The claims; returns the `jti`.
    fn claims<'c>(
        &self,
        claims: &'c Map<String, Value>,
        method: &Method,
        target: &str,
        token: Option<&str>,
    ) -> Result<&'c str, AuthError> {
        let bad = AuthError::InvalidDpopProof;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let jti = text("jti")
            .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_BYTES)
            .ok_or(bad("DPoP proof jti is missing or too long"))?;
        if text("htm") != Some(method.as_str()) {
            return Err(bad("DPoP proof htm does not match the request method"));
        }
        // The usual case, the client's htu written as the gateway sees the
        // request, needs no normalisation.
        let htu = text("htu");
        if htu != Some(target) {
            let htu = htu.and_then(normalize_uri);
            if htu.is_none() || htu != normalize_uri(target) {
                return Err(bad("DPoP proof htu does not match the request URI"));
            }
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_f64)
            .ok_or(bad("DPoP proof has no iat"))?;
        if (self.clock.now() - iat).abs() > self.window() {
            return Err(bad("DPoP proof iat is outside the accepted window"));
        }
        if let Some(token) = token {
            let ath = URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()));
            if text("ath") != Some(ath.as_str()) {
                return Err(bad("DPoP proof ath does not match the access token"));
            }
        }
        Ok(jti)
    }
}

/// SHA-256 of the key thumbprint and the `jti`: a `jti` is unique per key.
fn replay_key(thumbprint: &str, jti: &str) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&SHA256);
    ctx.update(thumbprint.as_bytes());
    ctx.update(&[0]);
    ctx.update(jti.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// An http(s) URI without query and fragment, after RFC 3986 syntax- and
/// scheme-based normalisation: lower-case scheme and host, the default port
/// removed, an empty path as `/`, percent-encoding and dot segments
/// normalised as for request paths. `None` for anything else.
pub fn normalize_uri(text: &str) -> Option<String> {
    let end = text.find(['?', '#']).unwrap_or(text.len());
    let uri: Uri = text[..end].parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    let port = match authority.port_u16() {
        Some(p) if p != default_port => format!(":{p}"),
        _ => String::new(),
    };
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    let path = remove_dot_segments(path);
    let path = normalize_path(&path).ok()?;
    Some(format!("{scheme}://{host}{port}{path}"))
}

/// RFC 3986 section 5.2.4 for an absolute path: `.` segments dropped, `..`
/// removing the segment before it.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

mod replay;
#[cfg(test)]
mod tests;

use replay::ReplayCache;
