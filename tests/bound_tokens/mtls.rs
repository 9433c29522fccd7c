//! Certificate-bound tokens (RFC 8705; extensions section 9) over real
//! TLS: the leaf of this connection's handshake must hash to the token's
//! `cnf["x5t#S256"]`; the handshake asks for a certificate and never
//! requires one; `tls_client_ca` makes a certificate that does not chain
//! fail the handshake; a certificate alone authenticates nothing; and a
//! trusted proxy's `Client-Cert` header (RFC 9440) stands in for the
//! handshake, never forwarded upstream.

use super::*;
use common::client::send_on;
use common::mtls::x5t_s256;
use common::pki::self_signed_ca;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A TLS gateway asking for client certificates, without `[dpop]`.
async fn tls_gateway() -> Bound {
    Bound::start(Options::default().tls()).await
}

#[tokio::test]
async fn certificate_bound_token_needs_the_certificate_it_names() {
    let s = tls_gateway().await;
    let mine = ClientCert::self_signed("client one");
    let other = ClientCert::self_signed("client two");
    let token = s.token(json!({ "cnf": mine.cnf() }));
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];

    for h2 in [false, true] {
        let client = s.client_as(Some(&mine), h2);
        let reply = s.gw.send(&client, get_with("/any/x", &headers)).await;
        assert_ok(
            &reply,
            if h2 {
                "h2 with the certificate"
            } else {
                "h1 with it"
            },
        );
    }
    let reply = s.get_as(Some(&other), "/any/x", &headers).await;
    assert_invalid(&reply, "Bearer", "another certificate");
    let reply = s.get_as(None, "/any/x", &headers).await;
    assert_invalid(&reply, "Bearer", "no certificate");
    // The claim is compared exactly: base64url without padding.
    let padded = s.token(json!({"cnf": {"x5t#S256": format!("{}=", mine.x5t_s256())}}));
    let auth = format!("Bearer {padded}");
    let reply = s
        .get_as(Some(&mine), "/any/x", &[("authorization", &auth)])
        .await;
    assert_invalid(&reply, "Bearer", "a padded thumbprint");
    assert_eq!(s.upstream.hits(), 2);
}

#[tokio::test]
async fn without_tls_client_ca_any_certificate_binds() {
    // RFC 8705 section 2.2: the certificate is only a key holder's proof.
    let s = tls_gateway().await;
    let cert = ClientCert::self_signed_expired("long expired");
    let token = s.token(json!({ "cnf": cert.cnf() }));
    let auth = format!("Bearer {token}");
    let reply = s
        .get_as(Some(&cert), "/mtls/x", &[("authorization", &auth)])
        .await;
    assert_ok(&reply, "an expired certificate without extended key usage");
}

#[tokio::test]
async fn client_without_certificate_completes_the_handshake() {
    let s = tls_gateway().await;
    let unbound = s.token(json!({}));
    let auth = format!("Bearer {unbound}");
    let reply = s.get_as(None, "/any/x", &[("authorization", &auth)]).await;
    assert_ok(&reply, "no certificate, bearer token");
    let cert = ClientCert::self_signed("client");
    let reply = s
        .get_as(Some(&cert), "/any/x", &[("authorization", &auth)])
        .await;
    assert_ok(&reply, "a certificate does not hurt a bearer token");
    let reply = s.get_as(None, "/open/x", &[]).await;
    assert_ok(&reply, "no token needed");
}

#[tokio::test]
async fn certificate_alone_authenticates_nothing() {
    let s = tls_gateway().await;
    let cert = ClientCert::self_signed("client");
    for path in ["/any/x", "/mtls/x", "/bound/x"] {
        let reply = s.get_as(Some(&cert), path, &[]).await;
        assert_challenge(&reply, 401, "Bearer", None, path);
    }
    // Nor does it bind a token that names no certificate.
    let unbound = s.token(json!({}));
    let auth = format!("Bearer {unbound}");
    for path in ["/mtls/x", "/bound/x"] {
        let reply = s
            .get_as(Some(&cert), path, &[("authorization", &auth)])
            .await;
        assert_invalid(&reply, "Bearer", path);
    }
    assert_eq!(s.upstream.hits(), 0);
}

/// One request over TLS presenting `cert`: the answer, or `None` when the
/// handshake or the exchange after it failed.
async fn try_get_as(s: &Bound, cert: &ClientCert, path: &str, token: &str) -> Option<Reply> {
    let pki = s.pki.as_ref().expect("TLS gateway");
    let tcp = TcpStream::connect(s.gw.addr()).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let connector = TlsConnector::from(cert.client_config(pki, &[b"http/1.1"]));
    let tls = common::within("TLS handshake", connector.connect(name, tcp))
        .await
        .ok()?;
    let authority = format!("localhost:{}", s.gw.addr().port());
    let auth = format!("Bearer {token}");
    let req = get_with(path, &[("authorization", &auth)]);
    let resp = send_on(tls, false, "https", &authority, req).await.ok()?;
    Some(Reply::read(resp).await)
}

#[tokio::test]
async fn with_tls_client_ca_only_certificates_that_chain_to_it_connect() {
    let client_ca = self_signed_ca("client CA");
    let s = Bound::start(
        Options::default()
            .tls()
            .file("client-ca.pem", &client_ca.pem())
            .server("tls_client_ca = \"client-ca.pem\""),
    )
    .await;
    let issued = ClientCert::issued_by(&client_ca, "issued client");
    let bound = s.token(json!({ "cnf": issued.cnf() }));
    let reply = try_get_as(&s, &issued, "/mtls/x", &bound).await;
    assert_ok(&reply.expect("a certificate of the CA connects"), "chains");
    // The binding is to the leaf, not to the CA certificate sent after it.
    let to_ca = s.token(json!({"cnf": {"x5t#S256": x5t_s256(client_ca.der())}}));
    let reply = try_get_as(&s, &issued, "/mtls/x", &to_ca).await;
    assert_invalid(
        &reply.expect("connects"),
        "Bearer",
        "a token bound to the CA",
    );

    let stranger_ca = self_signed_ca("another CA");
    for (what, cert) in [
        ("self-signed", ClientCert::self_signed("self-signed client")),
        (
            "another CA",
            ClientCert::issued_by(&stranger_ca, "stranger"),
        ),
    ] {
        let token = s.token(json!({ "cnf": cert.cnf() }));
        let reply = try_get_as(&s, &cert, "/mtls/x", &token).await;
        assert!(
            reply.is_none(),
            "{what}: the handshake should fail, got {:?}",
            reply.map(|r| r.status)
        );
    }
    // A client without a certificate still connects.
    let unbound = s.token(json!({}));
    let auth = format!("Bearer {unbound}");
    let reply = s.get_as(None, "/any/x", &[("authorization", &auth)]).await;
    assert_ok(&reply, "no certificate");
    let reply = s
        .get_as(
            None,
            "/mtls/x",
            &[("authorization", &format!("Bearer {bound}"))],
        )
        .await;
    assert_invalid(&reply, "Bearer", "no certificate, bound token");
    assert_eq!(s.upstream.hits(), 2);
}

#[tokio::test]
async fn client_cert_header_counts_only_from_a_trusted_proxy_and_is_never_forwarded() {
    let header = "client_cert_header = \"Client-Cert\"";
    let trusted = Bound::start(
        Options::default()
            .server(header)
            .server("trusted_proxies = [\"127.0.0.1/32\"]"),
    )
    .await;
    let cert = ClientCert::self_signed("behind the proxy");
    let other = ClientCert::self_signed("someone else");
    let token = trusted.token(json!({ "cnf": cert.cnf() }));
    let auth = format!("Bearer {token}");
    let value = cert.header_value();

    let reply = trusted
        .get(
            "/any/x",
            &[("authorization", &auth), ("client-cert", &value)],
        )
        .await;
    assert_ok(&reply, "the proxy's header names the certificate");
    assert!(!trusted.upstream.last().has("client-cert"), "not forwarded");
    let refused = [
        ("another certificate", other.header_value()),
        // The right certificate in the wrong form counts as none.
        (
            "base64 without the colons",
            value.trim_matches(':').to_string(),
        ),
        ("not base64", ":!!:".to_string()),
        ("empty", "::".to_string()),
    ];
    for (what, value) in &refused {
        let reply = trusted
            .get(
                "/any/x",
                &[("authorization", &auth), ("client-cert", value)],
            )
            .await;
        assert_invalid(&reply, "Bearer", what);
    }
    let reply = trusted.get("/any/x", &[("authorization", &auth)]).await;
    assert_invalid(&reply, "Bearer", "no header, no handshake");
    assert_eq!(trusted.upstream.hits(), 1);

    for untrusted in ["trusted_proxies = [\"10.0.0.0/8\"]", "trusted_proxies = []"] {
        let s = Bound::start(Options::default().server(header).server(untrusted)).await;
        let token = s.token(json!({ "cnf": cert.cnf() }));
        let auth = format!("Bearer {token}");
        let reply = s
            .get(
                "/any/x",
                &[("authorization", &auth), ("client-cert", &value)],
            )
            .await;
        assert_invalid(&reply, "Bearer", untrusted);
        let plain = s.token(json!({}));
        let auth = format!("Bearer {plain}");
        let reply = s
            .get(
                "/any/x",
                &[("authorization", &auth), ("client-cert", &value)],
            )
            .await;
        assert_ok(&reply, "a bearer token; the header is ignored");
        assert!(
            !s.upstream.last().has("client-cert"),
            "{untrusted}: not forwarded"
        );
        let reply = s.get("/open/x", &[("client-cert", &value)]).await;
        assert_ok(&reply, "auth = none");
        assert!(
            !s.upstream.last().has("client-cert"),
            "{untrusted}: not forwarded"
        );
    }
}

#[tokio::test]
async fn trusted_proxy_header_is_preferred_over_its_own_handshake_certificate() {
    let s = Bound::start(
        Options::default()
            .tls()
            .server("client_cert_header = \"Client-Cert\"")
            .server("trusted_proxies = [\"127.0.0.1/32\"]"),
    )
    .await;
    let proxy = ClientCert::self_signed("the proxy");
    let client = ClientCert::self_signed("the client");
    let value = client.header_value();
    let for_client = format!("Bearer {}", s.token(json!({ "cnf": client.cnf() })));
    let for_proxy = format!("Bearer {}", s.token(json!({ "cnf": proxy.cnf() })));

    let reply = s
        .get_as(
            Some(&proxy),
            "/any/x",
            &[("authorization", &for_client), ("client-cert", &value)],
        )
        .await;
    assert_ok(&reply, "the header's certificate");
    assert!(!s.upstream.last().has("client-cert"));
    let reply = s
        .get_as(
            Some(&proxy),
            "/any/x",
            &[("authorization", &for_proxy), ("client-cert", &value)],
        )
        .await;
    assert_invalid(
        &reply,
        "Bearer",
        "the proxy's own certificate, with a header",
    );
    let reply = s
        .get_as(Some(&proxy), "/any/x", &[("authorization", &for_proxy)])
        .await;
    assert_ok(&reply, "the handshake's certificate, without a header");
    assert_eq!(s.upstream.hits(), 2);
}

#[tokio::test]
async fn untrusted_peer_is_judged_by_its_handshake_certificate_not_its_header() {
    let s = Bound::start(
        Options::default()
            .tls()
            .server("client_cert_header = \"Client-Cert\"")
            .server("trusted_proxies = [\"10.0.0.0/8\"]"),
    )
    .await;
    let mine = ClientCert::self_signed("the client");
    let claimed = ClientCert::self_signed("someone the client claims to be");
    let value = claimed.header_value();
    let for_mine = format!("Bearer {}", s.token(json!({ "cnf": mine.cnf() })));
    let for_claimed = format!("Bearer {}", s.token(json!({ "cnf": claimed.cnf() })));
    let reply = s
        .get_as(
            Some(&mine),
            "/any/x",
            &[("authorization", &for_claimed), ("client-cert", &value)],
        )
        .await;
    assert_invalid(&reply, "Bearer", "a header from an untrusted peer");
    let reply = s
        .get_as(
            Some(&mine),
            "/any/x",
            &[("authorization", &for_mine), ("client-cert", &value)],
        )
        .await;
    assert_ok(&reply, "the handshake's certificate");
    assert!(!s.upstream.last().has("client-cert"), "not forwarded");
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn x5t_binding_is_checked_without_dpop_over_a_plain_listener_too() {
    // No TLS, no header: a certificate-bound token can never be proven.
    let s = Bound::start(Options::default()).await;
    let cert = ClientCert::self_signed("client");
    let token = s.token(json!({ "cnf": cert.cnf() }));
    assert_invalid(&s.bearer("/any/x", &token).await, "Bearer", "plain HTTP");
    assert_eq!(s.upstream.hits(), 0);
}
