//! What the exported spans say, and what they never say.

use super::*;

#[tokio::test]
async fn server_span_has_route_method_status_and_outcome() {
    let s = Setup::start("service_name = \"edge-gw\"").await;
    let token = format!("Bearer {}", s.token());
    let (reply, (trace_id, _, flags)) = s.get("/api/items/7", &[("authorization", &token)]).await;
    assert_forwarded(&reply, "forwarded");
    assert_eq!(flags, "01", "sampled at the default ratio 1.0");
    let span = server_span(&s.collector, &trace_id).await;
    assert_eq!(span.service, "edge-gw");
    assert_eq!(span.name, "GET /api/**");
    assert_eq!(span.attr("http.route"), Some("/api/**"));
    assert_eq!(span.attr("http.request.method"), Some("GET"));
    assert_eq!(span.attr("http.response.status_code"), Some("200"));
    assert_eq!(span.attr("tokengate.outcome"), Some("forwarded"));

    // A refusal is traced too (and nothing reaches the upstream).
    let header = traceparent("0af7651916cd43dd8448eb211c80319c", PARENT_ID, "01");
    let reply =
        s.gw.send(
            &common::Client::h1(),
            get_with("/api/x", &[("traceparent", &header)]),
        )
        .await;
    assert_eq!(reply.status, 401);
    let span = server_span(&s.collector, "0af7651916cd43dd8448eb211c80319c").await;
    assert_eq!(span.attr("http.response.status_code"), Some("401"));
    assert_eq!(span.attr("tokengate.outcome"), Some("missing_token"));
    assert_eq!(span.attr("http.route"), Some("/api/**"));
}

#[tokio::test]
async fn no_token_or_claim_value_is_exported() {
    let s = Setup::start("").await;
    let token = s.token_by(
        &s.key,
        json!({ "sub": "subject-sensitive-4711", "email": "claim-sensitive@example.test" }),
    );
    let bearer = format!("Bearer {token}");
    let (reply, (good, _, _)) = s.get("/api/x", &[("authorization", &bearer)]).await;
    assert_forwarded(&reply, "valid token");
    // A refused token's text is not exported either.
    let forged = format!("Bearer {}x", token);
    let header = traceparent("1af7651916cd43dd8448eb211c80319c", PARENT_ID, "01");
    let reply =
        s.gw.send(
            &common::Client::h1(),
            get_with(
                "/api/x",
                &[("authorization", &forged), ("traceparent", &header)],
            ),
        )
        .await;
    assert_eq!(reply.status, 401);
    server_span(&s.collector, &good).await;
    server_span(&s.collector, "1af7651916cd43dd8448eb211c80319c").await;

    let signature = token.rsplit('.').next().unwrap();
    for body in s.collector.bodies() {
        for secret in [
            token.as_str(),
            signature,
            "subject-sensitive-4711",
            "claim-sensitive@example.test",
        ] {
            assert!(
                !body.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret:?} appeared in an export"
            );
        }
    }
}

#[tokio::test]
async fn a_key_set_fetch_for_a_request_is_its_child_span() {
    let s = Setup::start("").await;
    let k2 = Key::es256("k2");
    s.idp.add_key(&k2);
    let bearer = format!("Bearer {}", s.token_by(&k2, json!({ "sub": "bob" })));
    let (reply, (trace_id, _, _)) = s.get("/api/x", &[("authorization", &bearer)]).await;
    assert_forwarded(&reply, "new kid, fetched on the miss");
    let server = server_span(&s.collector, &trace_id).await;
    let fetch = s.collector.span_named(&trace_id, "key set fetch").await;
    assert_eq!(fetch.parent_span_id, server.span_id);
    assert_eq!(fetch.attr("tokengate.issuer"), Some("corp"));
    assert_eq!(fetch.status, 0, "a successful fetch");
}

#[tokio::test]
async fn an_introspection_call_is_a_child_span() {
    let s = Setup::start("").await;
    let opaque = "opaque-token-value-0042";
    s.idp.set_introspection(
        opaque,
        json!({
            "active": true,
            "sub": "carol",
            "iss": "https://opaque.idp.test/",
            "aud": AUD,
            "exp": common::mint::now() + 300,
        }),
    );
    let bearer = format!("Bearer {opaque}");
    let (reply, (trace_id, _, _)) = s.get("/opaque/x", &[("authorization", &bearer)]).await;
    assert_forwarded(&reply, "introspected");
    let server = server_span(&s.collector, &trace_id).await;
    let call = s.collector.span_named(&trace_id, "introspection").await;
    assert_eq!(call.parent_span_id, server.span_id);
    assert_eq!(call.attr("tokengate.issuer"), Some("opaque"));
    for body in s.collector.bodies() {
        assert!(!body.windows(opaque.len()).any(|w| w == opaque.as_bytes()));
    }
}

#[tokio::test]
async fn an_upstream_token_request_is_a_child_span() {
    let s = Setup::start("").await;
    let (reply, (trace_id, _, _)) = s.get("/billing/x", &[]).await;
    assert_forwarded(&reply, "with the gateway's own token");
    let server = server_span(&s.collector, &trace_id).await;
    let request = s
        .collector
        .span_named(&trace_id, "upstream token request")
        .await;
    assert_eq!(request.parent_span_id, server.span_id);
    assert_eq!(request.attr("tokengate.upstream"), Some("billing"));
    let call = s.collector.span_named(&trace_id, "upstream call").await;
    assert_eq!(call.attr("tokengate.upstream"), Some("billing"));
    assert_eq!(call.attr("http.response.status_code"), Some("200"));
}
