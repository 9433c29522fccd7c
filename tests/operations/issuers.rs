//! Issuer state across reloads: the key set carried while its source is
//! unchanged, a new key source that fails, and an issuer changed under load.

use super::*;

/// Issuer `carry` reading `jwks_uri` (`extra` lines appended), an echo
/// upstream, the protected route `/carry/**` and, when `more`, a second
/// one `/carry-more/**`.
fn carry_config(
    idp: &TestIdp,
    jwks_uri: &str,
    upstream: &Upstream,
    extra: &str,
    more: bool,
) -> String {
    let more_route = if more {
        "[[routes]]\npath = \"/carry-more/**\"\nupstream = \"carry_echo\"\n"
    } else {
        ""
    };
    GatewayConfig::new()
        .admin()
        .issuer(
            Issuer::new("carry", &idp.issuer())
                .jwks_uri(jwks_uri)
                .with(extra),
        )
        .upstream("carry_echo", &upstream.url())
        .route(Route::new("/carry/**", "carry_echo").with(more_route))
        .render()
}

#[tokio::test]
async fn reload_carries_the_key_set_while_its_source_is_unchanged_and_applies_new_settings() {
    let key = Key::es256("carry-1");
    let idp = TestIdp::with_keys(&[&key]).await;
    let mirror = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let config =
        |uri: &str, extra: &str, more: bool| carry_config(&idp, uri, &upstream, extra, more);
    let gw = FileGateway::start(&config(&idp.jwks_uri(), "", false)).await;
    eventually("issuer ready", || gw.not_ready().is_empty()).await;
    let call = |token: String, path: &'static str| {
        let gw = &gw;
        async move {
            gw.send(&Client::h1(), authorized("GET", path, &token))
                .await
                .status
        }
    };
    let token = key.token(&claims(&idp.issuer(), AUD));
    assert_eq!(call(token.clone(), "/carry/x").await, 200);
    assert_eq!(idp.jwks_hits(), 1);
    let first = gw.shared().load().auth.keys[0].clone().expect("a key set");
    let shares_first = || {
        gw.shared().load().auth.keys[0]
            .as_ref()
            .is_some_and(|k| k.shares_key_set(&first))
    };

    // Only the routes change: the key set is carried over.
    gw.write_and_reload(&config(&idp.jwks_uri(), "", true))
        .await
        .expect("route-only reload");
    assert!(gw.not_ready().is_empty(), "{:?}", gw.not_ready());
    assert!(shares_first());
    assert_eq!(
        call(token.clone(), "/carry-more/x").await,
        200,
        "new route, same keys"
    );

    // The issuer's settings change, its key source does not: still the same
    // key set, usable at once, and the new settings apply. A token that
    // expired 30 s ago passes with leeway_s = 60 (the default) and fails
    // with leeway_s = 10.
    let late = key.token(&with(
        &claims(&idp.issuer(), AUD),
        json!({"iat": now() - 100, "exp": now() - 30}),
    ));
    assert_eq!(
        call(late.clone(), "/carry/x").await,
        200,
        "within the default leeway"
    );
    gw.write_and_reload(&config(
        &idp.jwks_uri(),
        "leeway_s = 10\njwks_refresh_s = 60\njwks_timeout_ms = 1000\nrequired_claims = [\"sub\"]",
        true,
    ))
    .await
    .expect("settings-only reload");
    assert!(gw.not_ready().is_empty(), "{:?}", gw.not_ready());
    assert!(shares_first(), "the key set survives a settings change");
    assert_eq!(call(token.clone(), "/carry/x").await, 200);
    assert_eq!(call(late, "/carry/x").await, 401, "the new leeway applies");
    assert_eq!(
        idp.jwks_hits(),
        1,
        "no refetch while the source is unchanged"
    );

    // The key source changes: the new set is fetched before the swap, so
    // the issuer is ready the moment the reload returns.
    gw.write_and_reload(&config(&mirror.jwks_uri(), "", true))
        .await
        .expect("source reload");
    assert_eq!(mirror.jwks_hits(), 1, "fetched once, before the swap");
    assert!(gw.not_ready().is_empty(), "{:?}", gw.not_ready());
    assert!(!shares_first());
    assert_eq!(call(token, "/carry/x").await, 200);
    assert_eq!(idp.jwks_hits(), 1);
    assert_eq!(mirror.jwks_hits(), 1);
    assert_eq!(upstream.hits(), 5);
}

#[tokio::test]
async fn reload_to_a_key_source_that_fails_swaps_anyway_and_readiness_says_so() {
    let key = Key::es256("carry-2");
    let idp = TestIdp::with_keys(&[&key]).await;
    let down = TestIdp::with_keys(&[&key]).await;
    down.set_failure(Failure::Down);
    let upstream = Upstream::echo().await;
    let gw = FileGateway::start(&carry_config(&idp, &idp.jwks_uri(), &upstream, "", false)).await;
    eventually("issuer ready", || gw.not_ready().is_empty()).await;

    let started = Instant::now();
    gw.write_and_reload(&carry_config(
        &idp,
        &down.jwks_uri(),
        &upstream,
        "jwks_timeout_ms = 300",
        true,
    ))
    .await
    .expect("a reload whose key set cannot be fetched still applies");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the pre-swap fetch is bounded: {:?}",
        started.elapsed()
    );
    let reply = Client::h1()
        .fetch(gw.admin_addr(), request("GET", "/readyz"))
        .await;
    assert_eq!(reply.status, 503);
    assert!(
        reply.json()["issuers"]["carry"].is_string(),
        "{:?}",
        reply.json()
    );
    let token = key.token(&claims(&idp.issuer(), AUD));
    let reply = gw
        .send(&Client::h1(), authorized("GET", "/carry-more/x", &token))
        .await;
    assert_eq!(
        reply.status, 503,
        "the new rules serve, with no key set yet"
    );

    down.set_failure(Failure::None);
    eventually("issuer ready once the source answers", || {
        gw.not_ready().is_empty()
    })
    .await;
    let reply = gw
        .send(&Client::h1(), authorized("GET", "/carry-more/x", &token))
        .await;
    assert_eq!(reply.status, 200);
}

/// A load task for [`reload_changing_an_issuer_under_load_never_answers_other_than_200`]:
/// `GET /carry/ID` with `token` until `stop`, at most 3,000 requests or 15 s.
async fn token_load(
    mode: Mode,
    task: usize,
    addr: SocketAddr,
    token: Arc<String>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> (usize, Vec<String>) {
    const MAX_REQUESTS: usize = 3_000;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut conn = Conn::open(mode, addr).await;
    let (mut ok, mut bad) = (0, Vec::new());
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) && n < MAX_REQUESTS && Instant::now() < deadline {
        let id = format!("t{task}-{n}");
        n += 1;
        match conn
            .get_as(addr, &format!("/carry/{id}"), Some(&token))
            .await
        {
            Ok(reply) if reply.status == 200 => ok += 1,
            Ok(reply) => bad.push(format!(
                "{mode:?} {id}: status {} {:?}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )),
            Err(e) => bad.push(format!("{mode:?} {id}: transport error {e}")),
        }
        done.fetch_add(1, Ordering::SeqCst);
    }
    (ok, bad)
}

/// Clients loop on a protected route while the configuration flips, ten
/// times, only `leeway_s` (the key set is carried over), then, ten times,
/// the `jwks_uri` between two identity providers publishing the same key
/// (the new set is fetched before the swap). Each key-set answer takes
/// 150 ms, so any window without keys would show as 503s. The identity
/// cache is off: every request is verified against the current key set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_changing_an_issuer_under_load_never_answers_other_than_200() {
    let key = Key::es256("flip-1");
    let a = TestIdp::with_keys(&[&key]).await;
    let b = TestIdp::with_keys(&[&key]).await;
    for idp in [&a, &b] {
        idp.set_jwks_delay(Duration::from_millis(150));
    }
    let upstream = Upstream::echo().await;
    let config = |uri: &str, leeway: u64| {
        format!(
            "[server]\nidentity_cache_size = 0\n{}",
            carry_config(&a, uri, &upstream, &format!("leeway_s = {leeway}"), false)
        )
    };
    let gw = FileGateway::start(&config(&a.jwks_uri(), 60)).await;
    eventually("issuer ready", || gw.not_ready().is_empty()).await;
    let token = Arc::new(key.token(&claims(&a.issuer(), AUD)));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = Mode::ALL
        .iter()
        .enumerate()
        .map(|(i, &mode)| {
            tokio::spawn(token_load(
                mode,
                i,
                gw.addr(),
                token.clone(),
                stop.clone(),
                done.clone(),
            ))
        })
        .collect();
    let progress = |from: usize| load_progress(done.clone(), from + 8);

    progress(0).await;
    for flip in 0..10 {
        let leeway = if flip % 2 == 0 { 30 } else { 60 };
        gw.write_and_reload(&config(&a.jwks_uri(), leeway))
            .await
            .unwrap_or_else(|e| panic!("leeway flip {flip}: {e}"));
        progress(done.load(Ordering::SeqCst)).await;
    }
    assert_eq!(a.jwks_hits(), 1, "a leeway change fetches nothing");
    for flip in 0..10 {
        let uri = if flip % 2 == 0 {
            b.jwks_uri()
        } else {
            a.jwks_uri()
        };
        gw.write_and_reload(&config(&uri, 60))
            .await
            .unwrap_or_else(|e| panic!("jwks_uri flip {flip}: {e}"));
        progress(done.load(Ordering::SeqCst)).await;
    }
    stop.store(true, Ordering::SeqCst);

    let (mut ok, mut bad) = (0, Vec::new());
    for task in tasks {
        let (n, b) = within("load task", task).await.expect("load task panicked");
        ok += n;
        bad.extend(b);
    }
    assert!(
        bad.is_empty(),
        "{} non-200 answers of {}, first: {:?}",
        bad.len(),
        ok + bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert_eq!(upstream.hits(), ok);
    assert_eq!(a.jwks_hits(), 1 + 5, "one fetch per switch to A");
    assert_eq!(b.jwks_hits(), 5, "one fetch per switch to B");
}
