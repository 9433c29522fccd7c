//! The logs of a whole scenario, in JSON and in text over TLS: no secret,
//! and one access event per request.

use super::*;

/// Runs the binary in `format`, sends every case over HTTP/1.1 and h2
/// (TLS when `tls`), stops it, and checks the output.
async fn no_secret_in_logs(format: Format, tls: bool) {
    let key = Key::es256("logs-key");
    let idp = TestIdp::start().await;
    let upstream = Upstream::echo().await;
    let closed = closed_port().await;
    let pki = tls.then(Pki::generate);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("jwks.json"),
        json!({ "keys": [key.jwk()] }).to_string(),
    )
    .expect("write key set");
    let path = dir.path().join("tokengate.toml");
    std::fs::write(&path, config(&idp, &upstream, closed, pki.as_ref())).expect("write config");

    let (mut process, addr) = Process::start(&path, format);
    let mut sent: Vec<(String, String, Case)> = Vec::new();
    let mut all_secrets = Vec::new();
    for h2 in [false, true] {
        let proto = if h2 { "h2" } else { "h1" };
        let mut client = if h2 { Client::h2() } else { Client::h1() };
        if let Some(pki) = &pki {
            client = client.tls(pki);
        }
        let Scenario { cases, secrets } =
            scenario(&key, &idp, &format!("{}-{proto}", format.arg()));
        all_secrets.extend(secrets);
        for (n, mut case) in cases.into_iter().enumerate() {
            let id = format!("logs-{}-{proto}-{n}", format.arg());
            case.request
                .headers_mut()
                .insert("x-request-id", id.parse().expect("request id"));
            let request = std::mem::replace(&mut case.request, empty_request());
            let reply = client.fetch(addr, request).await;
            assert_eq!(
                reply.status.as_u16(),
                case.status,
                "{proto} {}: {:?}",
                case.what,
                String::from_utf8_lossy(&reply.body)
            );
            sent.push((id, proto.to_string(), case));
        }
    }
    let lines = process.stop();
    let forwarded = sent
        .iter()
        .filter(|(_, _, c)| c.outcome == "forwarded")
        .count();
    assert_eq!(upstream.hits(), forwarded);
    assert!(
        idp.introspect_hits() >= 4,
        "the introspection client ran: {}",
        idp.introspect_hits()
    );
    assert!(
        lines.len() > 100,
        "trace-level output expected, got {} lines",
        lines.len()
    );

    // 1. No secret anywhere, at any level, from any crate.
    let mut leaks = Vec::new();
    for (what, secret) in &all_secrets {
        assert!(secret.len() >= 8, "{what}: a recognisable secret");
        for line in &lines {
            if line.contains(secret.as_str()) {
                leaks.push(format!("{what} in: {line}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks ({format:?}, tls={tls}); first ones:\n{}",
        leaks.len(),
        leaks[..leaks.len().min(5)].join("\n")
    );

    // The upstream-credentials refusal is logged at error, with the
    // upstream and the RFC 6749 section 5.2 code (and still no secret).
    assert!(
        lines.iter().any(|l| l.contains("ERROR")
            && l.contains("upstream billing_refused")
            && l.contains("invalid_client")),
        "no error line names the upstream and the code ({format:?})"
    );

    // 2. Exactly one access-log event per request, with every field.
    let events = access_events(&lines, format);
    assert_eq!(
        events.len(),
        sent.len(),
        "one access-log event per request ({format:?})"
    );
    for (id, proto, case) in &sent {
        let mine: Vec<_> = events
            .iter()
            .filter(|e| e.get("request_id") == Some(id))
            .collect();
        assert_eq!(mine.len(), 1, "{proto} {}: events for {id}", case.what);
        let event = mine[0];
        for field in [
            "route",
            "status",
            "outcome",
            "latency_us",
            "request_id",
            "subject",
        ] {
            assert!(
                event.contains_key(field),
                "{proto} {}: no {field} in {event:?}",
                case.what
            );
        }
        let context = format!("{proto} {} ({format:?}): {event:?}", case.what);
        assert_eq!(event["status"], case.status.to_string(), "{context}");
        assert_eq!(event["outcome"], case.outcome, "{context}");
        assert_eq!(event["route"], case.route, "{context}");
        assert_eq!(event["subject"], case.subject, "{context}");
        assert!(
            event["latency_us"].parse::<u64>().is_ok(),
            "{context}: latency_us is a number"
        );
    }
}

fn empty_request() -> Request<Body> {
    Request::new(empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_json_logs_hold_no_secret_and_one_access_event_per_request() {
    no_secret_in_logs(Format::Json, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_text_logs_over_tls_hold_no_secret_and_one_access_event_per_request() {
    no_secret_in_logs(Format::Text, true).await;
}
