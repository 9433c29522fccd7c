//! What verifying a bearer token costs, per algorithm, and what the
//! identity cache saves.
//!
//! * `verify/uncached/{RS256,ES256,EdDSA}`: [`Authenticator::authenticate`]
//!   with `server.identity_cache_size = 0`, so every iteration does the whole
//!   job: the JWS structure and header rules, strict JSON, the claims, key
//!   selection and the signature.
//! * `verify/cached/RS256`: the default identity cache and one token used
//!   again and again, as a client does between refreshes: a SHA-256 of the
//!   token, a cache lookup and the checks every use repeats (expiry, the
//!   route's issuers, the signing key still published). It is the baseline
//!   the uncached figures are read against.
//! * `rs256/*`: one RS256 token, four ways, so the figures read as ratios.
//!   `jsonwebtoken_decode` is `jsonwebtoken::decode` with a `DecodingKey`
//!   built once from the key's `n` and `e` and a `Validation` pinned to RS256,
//!   the issuer and the audience; `tokengate_authenticate` is the uncached
//!   [`Authenticator::authenticate`] on the same token (the same work and
//!   more: strict JSON, the JWT rules). `jsonwebtoken_signature` and
//!   `tokengate_signature` are the signature check alone, from the base64url
//!   segment: `jsonwebtoken::crypto::verify` against the key parsed once at
//!   load by `tokengate::auth::jwk`. `src/auth/jwk.rs` cites the result.
//! * `config_growth/{10_routes_1_issuer,1000_routes_20_issuers}`: the part of
//!   a request's work that grows with the configuration, for a request
//!   matching the last route: route lookup, the cached RS256 identity
//!   checked against the route's issuers (all of them; the token names the
//!   last), and the scope check. The difference between the two is what a
//!   large configuration adds per request; `benches/peers/run.sh` reports it.
//! * `dpop/{verify_es256,es256_signature}`: one ES256 DPoP proof (RFC 9449)
//!   made by `tokengate dpop-proof`'s library function. `verify_es256` is
//!   [`Dpop::verify`] on it: the JWS structure, the header, the `jwk` parsed
//!   for ES256 and its thumbprint, the signature, the claims (`htm`, `htu`
//!   normalised twice, `iat`, `ath` over the token); not the replay-cache
//!   insert, which a repeated proof would turn into a refusal.
//!   `es256_signature` is the signature check alone, under the key parsed
//!   once: "one ES256 verify" of the DPoP CPU target that
//!   `benches/peers/run.sh` reports. The rest of `verify_es256` is broken
//!   down by `es256_key_parse` (aws-lc-rs parsing the proof's P-256 point,
//!   as every proof's key is) and `verify_and_remember_es256`: a new proof
//!   each iteration (signed outside the measurement), verified and its
//!   `jti` recorded in the replay cache, as the gateway does per request.
//! * `otel/cached_jwt/{auth_only,export_off,export_on}`: what tracing adds
//!   to a request with a cached JWT, export off and on (`auth/otel.rs`).
//!
//! The fixtures come from the tests' token minter: one RSA-2048, one P-256
//! and one Ed25519 key, published as a JWK Set in a file the issuer's
//! `jwks_file` names, and a token signed by each. The authenticators are the
//! real ones, built by [`Runtime::build`] from a config; nothing touches the
//! network. Verification runs on a current-thread tokio runtime, one
//! `block_on` per criterion sample. Bearer parsing and route matching are
//! measured in `benches/forwarding/`; `benches/README.md` says how to run
//! this and read it.
//!
//! [`Authenticator::authenticate`]: tokengate::auth::Authenticator::authenticate
//! [`Dpop::verify`]: tokengate::auth::dpop::Dpop::verify

#[path = "../tests/common/mint.rs"]
#[allow(dead_code)]
mod mint;
#[path = "auth/otel.rs"]
mod otel;

use criterion::{BenchmarkId, Criterion, Throughput};
use http::Method;
use serde_json::json;
use std::hint::black_box;
use std::time::Duration;
use tokio::runtime::Builder as RuntimeBuilder;

use mint::{claims, now, with, Key, AUD};
use tokengate::config::Config;
use tokengate::route::Match;
use tokengate::runtime::Runtime;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The issuer every token names; `.invalid`, so nothing could resolve it.
const ISS: &str = "https://idp.bench.invalid/";
/// The key set file, relative to the config's directory.
const JWKS_FILE: &str = "jwks.json";

fn main() -> Result<(), BoxError> {
    tokengate::tls::install_default_provider();
    let mut c = Criterion::default().configure_from_args();
    let bed = Bed::new()?;
    verify(&mut c, &bed)?;
    rs256(&mut c, &bed)?;
    config_growth(&mut c, &bed)?;
    dpop(&mut c)?;
    otel::otel(&mut c, &bed.rt, &bed.otel, bed.rs256_token()?)?;
    c.final_summary();
    Ok(())
}

/// One issuer's keys on disk, a token per key, and two gateways' worth of
/// verification state: without and with the identity cache.
struct Bed {
    rt: tokio::runtime::Runtime,
    uncached: Runtime,
    cached: Runtime,
    /// `(algorithm, token)`, one per key in the key set.
    tokens: Vec<(&'static str, String)>,
    /// The RS256 key's JWK, as published.
    rs_jwk: serde_json::Value,
    /// The cached gateway without and with span export (`otel/*`).
    otel: otel::OtelBed,
}

impl Bed {
    fn new() -> Result<Bed, BoxError> {
        let rt = RuntimeBuilder::new_current_thread().enable_all().build()?;
        let keys = [Key::rs256("rs"), Key::es256("es"), Key::eddsa("ed")];
        let dir = tempfile::tempdir()?;
        let set = json!({ "keys": keys.iter().map(Key::jwk).collect::<Vec<_>>() });
        std::fs::write(dir.path().join(JWKS_FILE), set.to_string())?;

        // Valid for an hour: far longer than the bench runs.
        let claims = with(&claims(ISS, AUD), json!({ "exp": now() + 3_600 }));
        let tokens = keys
            .iter()
            .map(|k| (k.alg().name(), k.token(&claims)))
            .collect();

        // The upstream's pooled client is built on the runtime it would use;
        // the key file is read now, and the directory can go afterwards.
        let build = |cache_size: Option<u64>| -> Result<Runtime, BoxError> {
            let config = Config::from_toml(&config_text(cache_size), dir.path(), Vec::new())?;
            Ok(Runtime::build(config)?)
        };
        let (uncached, cached) = {
            let _enter = rt.enter();
            (build(Some(0))?, build(None)?)
        };
        let otel = otel::OtelBed::new(dir.path(), &rt)?;
        Ok(Bed {
            otel,
            rt,
            uncached,
            cached,
            tokens,
            rs_jwk: keys[0].jwk(),
        })
    }
}

impl Bed {
    /// The token signed with the RSA key.
    fn rs256_token(&self) -> Result<&str, BoxError> {
        self.tokens
            .iter()
            .find(|(alg, _)| *alg == "RS256")
            .map(|(_, token)| token.as_str())
            .ok_or_else(|| "auth fixture: no RS256 token".into())
    }
}

/// An issuer whose keys come from [`JWKS_FILE`] and a route trusting it;
/// `cache_size` sets `server.identity_cache_size`, `None` keeps the default.
fn config_text(cache_size: Option<u64>) -> String {
    let cache = cache_size
        .map(|n| format!("identity_cache_size = {n}\n"))
        .unwrap_or_default();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{cache}
[issuers.bench]
issuer = "{ISS}"
jwks_file = "{JWKS_FILE}"
audiences = ["{AUD}"]

[upstreams.bench]
url = "http://127.0.0.1:9"

[[routes]]
path = "/bench/**"
upstream = "bench"
scopes = ["read"]
"#
    )
}

/// The issuers the one route trusts, as `authenticate` takes them.
fn route_issuers(rt: &Runtime) -> Result<Vec<usize>, BoxError> {
    rt.config
        .routes
        .first()
        .map(|r| r.issuers.clone())
        .ok_or_else(|| "auth fixture: the config has no route".into())
}

fn verify(c: &mut Criterion, bed: &Bed) -> Result<(), BoxError> {
    let mut group = c.benchmark_group("verify");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));

    let mut cases: Vec<(&str, &Runtime, &str, &str)> = bed
        .tokens
        .iter()
        .map(|(alg, token)| ("uncached", &bed.uncached, *alg, token.as_str()))
        .collect();
    let (alg, token) = bed
        .tokens
        .iter()
        .find(|(alg, _)| *alg == "RS256")
        .ok_or("auth fixture: no RS256 token")?;
    cases.push(("cached", &bed.cached, alg, token));

    for (mode, runtime, alg, token) in cases {
        let issuers = route_issuers(runtime)?;
        let auth = &runtime.auth;
        // A broken fixture fails here, before anything is measured; for the
        // cached case this first call is also the one that fills the cache.
        if let Err(e) = bed.rt.block_on(auth.authenticate(token, &issuers)) {
            return Err(format!("verify/{mode}/{alg} fixture: {e:?}").into());
        }
        group.bench_function(BenchmarkId::new(mode, alg), |b| {
            b.to_async(&bed.rt).iter(|| async {
                match auth.authenticate(black_box(token), &issuers).await {
                    Ok(principal) => principal,
                    Err(e) => panic!("verify/{mode}/{alg}: {e:?}"),
                }
            })
        });
    }
    group.finish();
    Ok(())
}

fn rs256(c: &mut Criterion, bed: &Bed) -> Result<(), BoxError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::{DecodingKey, Validation};
    use tokengate::auth::jwk::KeySet;
    use tokengate::config::Algorithm;

    let token = bed.rs256_token()?;
    let jwk = bed.rs_jwk.clone();
    let member = |name: &str| jwk[name].as_str().map(str::to_owned);
    let (n, e) = match (member("n"), member("e")) {
        (Some(n), Some(e)) => (n, e),
        _ => return Err("auth fixture: the RS256 JWK has no n or e".into()),
    };
    let decoding = DecodingKey::from_rsa_components(&n, &e)?;
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[ISS]);
    validation.set_audience(&[AUD]);
    let set = KeySet::from_json(&serde_json::json!({ "keys": [jwk] }))?;
    let key = set
        .keys
        .first()
        .ok_or("auth fixture: the RS256 key was skipped")?;
    let (input, signature) = token
        .rsplit_once('.')
        .ok_or("auth fixture: the token has no signature segment")?;
    let issuers = route_issuers(&bed.uncached)?;
    let auth = &bed.uncached.auth;

    // Every way must accept the token before anything is measured.
    jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)?;
    if !jsonwebtoken::crypto::verify(
        signature,
        input.as_bytes(),
        &decoding,
        jsonwebtoken::Algorithm::RS256,
    )? {
        return Err("rs256 fixture: jsonwebtoken refuses the signature".into());
    }
    let ours = |signature: &str| {
        URL_SAFE_NO_PAD
            .decode(signature)
            .is_ok_and(|sig| key.verify(Algorithm::RS256, input.as_bytes(), &sig))
    };
    if !ours(signature) {
        return Err("rs256 fixture: the pre-parsed key refuses the signature".into());
    }

    let mut group = c.benchmark_group("rs256");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(black_box(token), &decoding, &validation)
                .map(|data| data.claims)
                .unwrap_or_else(|e| panic!("rs256/jsonwebtoken_decode: {e}"))
        })
    });
    group.bench_function("tokengate_authenticate", |b| {
        b.to_async(&bed.rt).iter(|| async {
            match auth.authenticate(black_box(token), &issuers).await {
                Ok(principal) => principal,
                Err(e) => panic!("rs256/tokengate_authenticate: {e:?}"),
            }
        })
    });
    group.bench_function("jsonwebtoken_signature", |b| {
        b.iter(|| {
            let ok = jsonwebtoken::crypto::verify(
                black_box(signature),
                input.as_bytes(),
                &decoding,
                jsonwebtoken::Algorithm::RS256,
            );
            assert!(
                matches!(ok, Ok(true)),
                "rs256/jsonwebtoken_signature refused"
            );
        })
    });
    group.bench_function("tokengate_signature", |b| {
        b.iter(|| {
            assert!(
                ours(black_box(signature)),
                "rs256/tokengate_signature refused"
            );
        })
    });
    group.finish();
    Ok(())
}

/// Issuer `i` of the config-growth configurations (same keys, own `iss`).
fn growth_iss(i: usize) -> String {
    format!("https://idp{i}.bench.invalid/")
}

/// `routes` routes `/svc1/**` ... and `issuers` issuers sharing the key set
/// file; routes name no issuers, so each trusts all of them.
fn growth_config(routes: usize, issuers: usize) -> String {
    let mut text = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
    for i in 0..issuers {
        text.push_str(&format!(
            "\n[issuers.idp{i}]\nissuer = \"{}\"\njwks_file = \"{JWKS_FILE}\"\naudiences = [\"{AUD}\"]\n",
            growth_iss(i)
        ));
    }
    text.push_str("\n[upstreams.bench]\nurl = \"http://127.0.0.1:9\"\n");
    for i in 1..=routes {
        text.push_str(&format!(
            "\n[[routes]]\npath = \"/svc{i}/**\"\nupstream = \"bench\"\nscopes = [\"read\"]\n"
        ));
    }
    text
}

fn config_growth(c: &mut Criterion, bed: &Bed) -> Result<(), BoxError> {
    let mut group = c.benchmark_group("config_growth");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    let key = Key::rs256("growth");
    let dir = tempfile::tempdir()?;
    let set = json!({ "keys": [key.jwk()] });
    std::fs::write(dir.path().join(JWKS_FILE), set.to_string())?;
    for (name, routes, issuers) in [
        ("10_routes_1_issuer", 10, 1),
        ("1000_routes_20_issuers", 1000, 20),
    ] {
        let config = Config::from_toml(&growth_config(routes, issuers), dir.path(), Vec::new())?;
        let runtime = {
            let _enter = bed.rt.enter();
            Runtime::build(config)?
        };
        let claims = with(
            &claims(&growth_iss(issuers - 1), AUD),
            json!({ "exp": now() + 3_600 }),
        );
        let token = key.token(&claims);
        let path = format!("/svc{routes}/items");
        let decide = || async {
            let index = match runtime.routes.find(None, black_box(&path), &Method::GET) {
                Match::Found(index) => index,
                _ => return Err("no route".to_string()),
            };
            let route = &runtime.config.routes[index];
            let principal = runtime
                .auth
                .authenticate(black_box(&token), &route.issuers)
                .await
                .map_err(|e| format!("{e:?}"))?;
            match tokengate::policy::allows(route, &principal.scopes) {
                true => Ok(index),
                false => Err("scope refused".to_string()),
            }
        };
        // Checked (and the identity cached) before anything is measured.
        let index = bed
            .rt
            .block_on(decide())
            .map_err(|e| format!("config_growth/{name}: {e}"))?;
        if index != routes - 1 {
            return Err(format!("config_growth/{name}: matched route {index}").into());
        }
        group.bench_function(name, |b| {
            b.to_async(&bed.rt).iter(|| async {
                match decide().await {
                    Ok(index) => index,
                    Err(e) => panic!("config_growth/{name}: {e}"),
                }
            })
        });
    }
    group.finish();
    Ok(())
}

fn dpop(c: &mut Criterion) -> Result<(), BoxError> {
    use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use futures_util::FutureExt;
    use tokengate::auth::dpop::{Dpop, DPOP};
    use tokengate::clock::Clock;
    use tokengate::config::{Algorithm, DpopConfig};
    use tokengate::tools::dpop_proof::{load_or_create_key, proof, ProofSpec};
    use tokengate::tools::jwks::PublicJwk;

    const URL: &str = "http://127.0.0.1:8080/svc9/ping";
    // An access token of the usual size (the proof's `ath` covers it).
    let token = Key::es256("dpop").token(&with(&claims(ISS, AUD), json!({ "exp": now() + 3_600 })));
    let dir = tempfile::tempdir()?;
    let (key, _) = load_or_create_key(&dir.path().join("dpop.pem"))?;
    let spec = ProofSpec {
        method: "GET".into(),
        url: URL.into(),
        token: Some(token.clone()),
        nonce: None,
    };
    // `iat` now: valid for `max_age_s + leeway_s`, far longer than the group runs.
    let made = proof(&spec, &key, now() as u64)?;
    let mut headers = http::HeaderMap::new();
    headers.insert(&DPOP, http::HeaderValue::from_str(&made)?);
    let config = DpopConfig {
        algorithms: vec![
            Algorithm::ES256,
            Algorithm::EdDSA,
            Algorithm::RS256,
            Algorithm::PS256,
        ],
        max_age: Duration::from_secs(300),
        leeway: Duration::from_secs(5),
        require_nonce: false,
        nonce_ttl: Duration::from_secs(300),
        replay_cache_size: 100_000,
    };
    let gateway = Dpop::new(&config, None, &Clock::system(), None);
    let verify = || gateway.verify(black_box(&headers), &Method::GET, URL, &token);
    verify().map_err(|e| format!("dpop fixture: {e:?}"))?;

    let PublicJwk::Ec { x, y, .. } = &key.public else {
        return Err("dpop fixture: not an EC key".into());
    };
    let point = [&[4u8][..], x, y].concat();
    let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)?;
    let (input, signature) = made
        .rsplit_once('.')
        .ok_or("dpop fixture: the proof has no signature segment")?;
    let signature = URL_SAFE_NO_PAD.decode(signature)?;
    let signature_ok = || {
        parsed
            .verify_sig(input.as_bytes(), black_box(&signature))
            .is_ok()
    };
    if !signature_ok() {
        return Err("dpop fixture: the signature does not verify".into());
    }

    let mut group = c.benchmark_group("dpop");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("verify_es256", |b| {
        b.iter(|| match verify() {
            Ok(proof) => proof,
            Err(e) => panic!("dpop/verify_es256: {e:?}"),
        })
    });
    group.bench_function("es256_signature", |b| {
        b.iter(|| assert!(signature_ok(), "dpop/es256_signature refused"))
    });
    group.bench_function("es256_key_parse", |b| {
        b.iter(|| ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, black_box(&point)).is_ok())
    });
    group.bench_function("verify_and_remember_es256", |b| {
        b.iter_batched(
            || {
                let mut headers = http::HeaderMap::new();
                let fresh = proof(&spec, &key, now() as u64).expect("a proof");
                headers.insert(&DPOP, http::HeaderValue::from_str(&fresh).expect("ASCII"));
                headers
            },
            |headers| {
                // Without `[redis]` the replay check completes at once.
                let checked = gateway
                    .verify(&headers, &Method::GET, URL, &token)
                    .map(|p| gateway.remember(&p).now_or_never());
                assert!(
                    matches!(checked, Ok(Some(Ok(())))),
                    "dpop/verify_and_remember_es256 refused"
                );
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
    Ok(())
}
