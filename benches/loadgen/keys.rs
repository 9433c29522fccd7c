//! `keys`: the keys, key sets, tokens and TLS certificate a benchmark
//! run reads, reused while the tokens have long enough to live.

use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

use crate::{mint, BoxError, ISS, ISS_PATTERN, KEYS_MIN_LEFT_S, MANY_ISSUERS, TOKEN_LIFETIME_S};

/// The DPoP client key (P-256, PKCS#8 PEM) and the token bound to it.
const DPOP_KEY: &str = "dpop-key.pem";
const DPOP_TOKEN: &str = "token-dpop.txt";

pub(crate) fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> Result<(), BoxError> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// Whether `dir` already holds a key set whose tokens live long enough and
/// a pool at least `pool` long (RSA signing is slow: reuse it).
pub(crate) fn keys_fresh(dir: &Path, pool: usize) -> bool {
    let Ok(stamp) = std::fs::read_to_string(dir.join("stamp.json")) else {
        return false;
    };
    let Ok(stamp) = serde_json::from_str::<Value>(&stamp) else {
        return false;
    };
    stamp["exp"].as_i64().unwrap_or(0) > mint::now() + KEYS_MIN_LEFT_S
        && stamp["pool"].as_u64().unwrap_or(0) >= pool as u64
        && dir.join(DPOP_TOKEN).exists()
}

pub(crate) fn keys_command(dir: &Path, pool: usize) -> Result<bool, BoxError> {
    std::fs::create_dir_all(dir)?;
    if keys_fresh(dir, pool) {
        eprintln!("keys: {} is recent enough, kept", dir.display());
        return Ok(true);
    }
    let started = Instant::now();
    let rs = mint::Key::rs256("bench-rs");
    let es = mint::Key::es256("bench-es");
    let exp = mint::now() + TOKEN_LIFETIME_S;
    let claims = |iss: &str| mint::with(&mint::claims(iss, mint::AUD), json!({ "exp": exp }));

    write(
        dir,
        "jwks.json",
        json!({ "keys": [rs.jwk(), es.jwk()] }).to_string(),
    )?;
    write(dir, "rs256.pem", rs.spki_pem())?;
    write(dir, "token-rs256.txt", rs.token(&claims(ISS)) + "\n")?;
    write(dir, "token-es256.txt", es.token(&claims(ISS)) + "\n")?;
    write_dpop(dir, &rs, &claims(ISS))?;
    let last_issuer = ISS_PATTERN.replace("{}", &(MANY_ISSUERS - 1).to_string());
    write(
        dir,
        "token-many.txt",
        rs.token(&claims(&last_issuer)) + "\n",
    )?;
    // Signed by another key: a gateway that verifies answers 401.
    let stranger = mint::Key::rsa(1, mint::Alg::RS256, "bench-rs");
    write(
        dir,
        "token-bad.txt",
        rs.jwt(&claims(ISS)).signed_by(&stranger).encode() + "\n",
    )?;
    let opaque: String = (0..43)
        .map(|i| {
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            alphabet[(i * 37 + 11) % alphabet.len()] as char
        })
        .collect();
    write(dir, "token-opaque.txt", format!("opq_{opaque}\n"))?;

    // The pool: distinct tokens (each has its own jti), signed on every core.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (rs, claims) = (&rs, &claims);
                s.spawn(move || {
                    let mine = pool / threads + usize::from(t < pool % threads);
                    let mut out = String::with_capacity(mine * 700);
                    for _ in 0..mine {
                        out.push_str(&rs.token(&claims(ISS)));
                        out.push('\n');
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    write(dir, "tokens-rs256-pool.txt", chunks.concat())?;
    write_pki(dir)?;
    write(
        dir,
        "keys.env",
        format!(
            "ISS='{ISS}'\nAUD='{}'\nISS_PATTERN='{ISS_PATTERN}'\nMANY_ISSUERS={MANY_ISSUERS}\n",
            mint::AUD
        ),
    )?;
    write(
        dir,
        "stamp.json",
        json!({ "exp": exp, "pool": pool }).to_string(),
    )?;
    eprintln!(
        "keys: wrote {} ({pool} pooled tokens) in {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(true)
}

/// The DPoP client key, created by `tokengate dpop-proof`'s library
/// function (kept when it exists), and an RS256 token bound to it
/// (`cnf.jkt`, RFC 9449 section 6.1).
fn write_dpop(dir: &Path, rs: &mint::Key, claims: &Value) -> Result<(), BoxError> {
    let (key, _) = tokengate::tools::dpop_proof::load_or_create_key(&dir.join(DPOP_KEY))?;
    let cnf = json!({ "cnf": { "jkt": key.public.thumbprint() } });
    write(dir, DPOP_TOKEN, rs.token(&mint::with(claims, cnf)) + "\n")
}

/// A throwaway CA and a P-256 certificate for `localhost` and 127.0.0.1:
/// `ca.pem`, `server.pem`, `server.key`, and `server-haproxy.pem` (chain
/// and key in one file, as HAProxy's `crt` wants).
pub(crate) fn write_pki(dir: &Path) -> Result<(), BoxError> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tokengate bench CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    write(dir, "ca.pem", ca.pem())?;
    write(dir, "server.pem", cert.pem())?;
    write(dir, "server.key", key.serialize_pem())?;
    write(dir, "server-haproxy.pem", cert.pem() + &key.serialize_pem())?;
    Ok(())
}
