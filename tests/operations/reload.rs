//! Hot reload under continuous load, an in-flight request finishing on the
//! old snapshot, and refused reloads that keep the old configuration.

use super::*;

/// Rule set A sends `/v/ID` to upstream A as `/set-a/v/ID`; rule set B sends
/// it to upstream B as `/set-b/ID` (prefix stripped). Any mix of the two
/// (B's route with A's upstream, or the reverse) produces a target that is
/// neither, or reaches the other server.
fn flip_config(set_b: bool, a: &Upstream, b: &Upstream) -> String {
    let (name, url, strip) = if set_b {
        (
            "load_b",
            format!("{}/set-b", b.url()),
            "strip_prefix = \"/v\"",
        )
    } else {
        ("load_a", format!("{}/set-a", a.url()), "")
    };
    GatewayConfig::new()
        .raw(&format!("[upstreams.{name}]\nurl = \"{url}\"\n"))
        .route(Route::open("/v/**", name).with(strip))
        .render()
}

/// What one load task saw.
#[derive(Default, Debug)]
struct Tally {
    set_a: usize,
    set_b: usize,
    bad: Vec<String>,
}

async fn load_task(
    mode: Mode,
    task: usize,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> Tally {
    const MAX_REQUESTS: usize = 5_000;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut conn = Conn::open(mode, addr).await;
    let mut tally = Tally::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) && n < MAX_REQUESTS && Instant::now() < deadline {
        let id = format!("t{task}-{n}");
        n += 1;
        match conn.get(addr, &format!("/v/{id}")).await {
            Err(e) => tally
                .bad
                .push(format!("{mode:?} {id}: transport error {e}")),
            Ok(reply) if reply.status != 200 => tally.bad.push(format!(
                "{mode:?} {id}: status {} {:?}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )),
            Ok(reply) => {
                let target = echoed_target(&reply);
                if target == format!("/set-a/v/{id}") {
                    tally.set_a += 1;
                } else if target == format!("/set-b/{id}") {
                    tally.set_b += 1;
                } else {
                    tally
                        .bad
                        .push(format!("{mode:?} {id}: mixed rules, target {target}"));
                }
            }
        }
        done.fetch_add(1, Ordering::SeqCst);
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_load_flips_20_times_and_every_answer_follows_one_whole_rule_set() {
    let a = Upstream::echo().await;
    let b = Upstream::echo().await;
    let gw = FileGateway::start(&flip_config(false, &a, &b)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = Mode::ALL
        .iter()
        .enumerate()
        .map(|(i, &mode)| tokio::spawn(load_task(mode, i, gw.addr(), stop.clone(), done.clone())))
        .collect();

    // Each flip waits until a few more answers arrived, so traffic is in
    // flight across every swap.
    let progress = |from: usize| load_progress(done.clone(), from + 4);
    progress(0).await;
    for flip in 0..20 {
        let set_b = flip % 2 == 0;
        gw.write_and_reload(&flip_config(set_b, &a, &b))
            .await
            .unwrap_or_else(|e| panic!("flip {flip}: {e}"));
        progress(done.load(Ordering::SeqCst)).await;
    }
    stop.store(true, Ordering::SeqCst);

    let mut total = Tally::default();
    for task in tasks {
        let tally = within("load task", task).await.expect("load task panicked");
        total.set_a += tally.set_a;
        total.set_b += tally.set_b;
        total.bad.extend(tally.bad);
    }
    assert!(
        total.bad.is_empty(),
        "{} bad answers, first: {:?}",
        total.bad.len(),
        &total.bad[..total.bad.len().min(5)]
    );
    assert!(
        total.set_a > 0 && total.set_b > 0,
        "both rule sets served: {total:?}"
    );
    assert_eq!(
        a.hits(),
        total.set_a,
        "upstream A saw exactly set A's answers"
    );
    assert_eq!(
        b.hits(),
        total.set_b,
        "upstream B saw exactly set B's answers"
    );
    for seen in a.requests() {
        assert!(seen.target().starts_with("/set-a/v/"), "{}", seen.target());
    }
    for seen in b.requests() {
        let target = seen.target();
        assert!(
            target.starts_with("/set-b/") && !target.starts_with("/set-b/v/"),
            "{target}"
        );
    }
}

#[tokio::test]
async fn reload_lets_an_in_flight_request_finish_on_the_old_snapshot() {
    let a = Upstream::echo().await;
    let b = Upstream::echo().await;
    let config = |up: &Upstream, name: &str| {
        format!(
            "[upstreams.{name}]\nurl = \"{}\"\n\n[[routes]]\npath = \"/inflight/**\"\n\
             upstream = \"{name}\"\nauth = \"none\"\n",
            up.url()
        )
    };
    let gw = FileGateway::start(&config(&a, "inflight_a")).await;
    let addr = gw.addr();
    let held = tokio::spawn(async move {
        Client::h1()
            .fetch(addr, request("GET", "/inflight/hold"))
            .await
    });
    a.arrived().await;

    gw.write_and_reload(&config(&b, "inflight_b"))
        .await
        .expect("reload while a request is in flight");
    assert_eq!(gw.get("/inflight/after").await.status, 200);
    assert_eq!(b.hits(), 1, "new requests take the new snapshot");

    a.release();
    let reply = within("the held request", held)
        .await
        .expect("held request task");
    assert_eq!(reply.status, 200, "finished on the old snapshot");
    assert_eq!(echoed_target(&reply), "/inflight/hold");
    assert_eq!(a.hits(), 1);
}

fn inv_config(upstream_url: &str, route_upstream: &str, extra: &str) -> String {
    GatewayConfig::new()
        .raw(extra)
        .upstream("inv_echo", upstream_url)
        .route(Route::open("/inv/**", route_upstream))
        .render()
}

#[tokio::test]
async fn invalid_reload_keeps_serving_the_old_config_and_names_the_key() {
    let old = Upstream::echo().await;
    let new = Upstream::echo().await;
    let good = inv_config(
        &old.url(),
        "inv_echo",
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
    );
    let gw = FileGateway::start(&good).await;
    std::fs::write(gw.dir().join("garbage.pem"), "not a certificate").expect("write");
    assert_eq!(gw.get("/inv/x").await.status, 200);
    let before = gw.scrape().await;

    // (what, file text, key the error must name, words of the reason)
    let bad: [(&str, String, &str, &str); 4] = [
        ("bad TOML", "this is [not toml".to_string(), "config", ""),
        (
            "unknown key",
            good.replace("[admin]", "[server]\nlisen = \"127.0.0.1:1\"\n[admin]"),
            "server.lisen",
            "unknown key",
        ),
        (
            "undefined upstream",
            inv_config(&old.url(), "nope", ""),
            "routes[0].upstream",
            "not defined",
        ),
        (
            "certificate that is not PEM (fails when the runtime is built)",
            good.replace(
                "[admin]",
                "[server]\ntls_cert = \"garbage.pem\"\ntls_key = \"garbage.pem\"\n[admin]",
            ),
            "server.tls_cert",
            "certificate",
        ),
    ];
    for (what, text, key, reason) in &bad {
        let errors = gw
            .write_and_reload(text)
            .await
            .expect_err(&format!("{what}: reload must fail"));
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.key == *key && e.reason.contains(reason) && !e.reason.is_empty()),
            "{what}: expected {key}: ...{reason}..., got:\n{errors}"
        );
        let reply = gw.get("/inv/x").await;
        assert_eq!(reply.status, 200, "{what}: the old config keeps serving");
        assert_eq!(
            reply.version,
            http::Version::HTTP_11,
            "{what}: still plain HTTP"
        );
    }
    assert_eq!(old.hits(), 1 + bad.len());
    let mid = gw.scrape().await;
    assert_eq!(
        reloads(&mid, "error") - reloads(&before, "error"),
        bad.len() as f64,
        "one error count per refused reload"
    );

    gw.write_and_reload(&inv_config(
        &new.url(),
        "inv_echo",
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
    ))
    .await
    .expect("a good reload");
    assert_eq!(gw.get("/inv/y").await.status, 200);
    assert_eq!(new.hits(), 1, "the new config serves");
    assert_eq!(old.hits(), 1 + bad.len());
    let after = gw.scrape().await;
    assert!(
        reloads(&after, "ok") - reloads(&mid, "ok") >= 1.0,
        "a good reload counts as ok"
    );
    assert_eq!(reloads(&after, "error"), reloads(&mid, "error"));
}
