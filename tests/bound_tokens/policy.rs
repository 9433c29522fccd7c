//! Route `token_binding` (extensions section 9, "Route rules") on a gateway
//! that has both DPoP and client certificates: every kind of token, sent
//! every way, on every kind of route. A token is accepted only when each
//! binding it carries is proven and the route admits its kind; a refusal is
//! 401 `invalid_token` in the challenge the request's scheme (or a `dpop`
//! route) calls for.

use super::*;

/// How a request presents its token.
#[derive(Debug, Clone, Copy)]
enum Sent {
    /// `Bearer`, no certificate.
    Bearer,
    /// `Bearer`, with the client certificate in the handshake.
    BearerCert,
    /// `DPoP` with a proof, no certificate.
    Dpop,
    /// `DPoP` with a proof and the certificate.
    DpopCert,
}

/// What the gateway answers.
#[derive(Debug, Clone, Copy)]
enum Want {
    Forwarded,
    /// 401 `invalid_token` in a challenge of this scheme.
    Refused(&'static str),
}

#[tokio::test]
async fn each_route_binding_admits_its_kinds_of_token() {
    let s = Bound::start(Options::dpop().tls()).await;
    let key = DpopKey::es256();
    let cert = ClientCert::self_signed("client");
    let unbound = s.token(json!({}));
    let dpop = s.dpop_token(&key);
    let mtls = s.token(json!({ "cnf": cert.cnf() }));
    let both = s.token(json!({"cnf": {"jkt": key.thumbprint(), "x5t#S256": cert.x5t_s256()}}));

    use Sent::*;
    use Want::*;
    let cases: Vec<(&str, &str, &String, Sent, Want)> = vec![
        // any: bearer or bound, every binding proven.
        ("/any/x", "unbound", &unbound, Bearer, Forwarded),
        ("/any/x", "dpop", &dpop, Dpop, Forwarded),
        ("/any/x", "mtls", &mtls, BearerCert, Forwarded),
        ("/any/x", "both", &both, DpopCert, Forwarded),
        ("/any/x", "both", &both, Dpop, Refused("DPoP")),
        ("/any/x", "both", &both, BearerCert, Refused("Bearer")),
        ("/any/x", "mtls", &mtls, DpopCert, Refused("DPoP")),
        // dpop: DPoP-bound tokens presented with the DPoP scheme only.
        ("/dpop/x", "unbound", &unbound, Bearer, Refused("DPoP")),
        ("/dpop/x", "unbound", &unbound, BearerCert, Refused("DPoP")),
        ("/dpop/x", "mtls", &mtls, BearerCert, Refused("DPoP")),
        ("/dpop/x", "dpop", &dpop, Bearer, Refused("DPoP")),
        ("/dpop/x", "dpop", &dpop, Dpop, Forwarded),
        ("/dpop/x", "both", &both, DpopCert, Forwarded),
        // mtls: tokens bound by x5t#S256 only.
        ("/mtls/x", "unbound", &unbound, Bearer, Refused("Bearer")),
        (
            "/mtls/x",
            "unbound",
            &unbound,
            BearerCert,
            Refused("Bearer"),
        ),
        ("/mtls/x", "dpop", &dpop, Dpop, Refused("DPoP")),
        ("/mtls/x", "dpop", &dpop, DpopCert, Refused("DPoP")),
        ("/mtls/x", "mtls", &mtls, Bearer, Refused("Bearer")),
        ("/mtls/x", "mtls", &mtls, BearerCert, Forwarded),
        ("/mtls/x", "both", &both, DpopCert, Forwarded),
        // bound: any sender-constrained token.
        ("/bound/x", "unbound", &unbound, Bearer, Refused("Bearer")),
        (
            "/bound/x",
            "unbound",
            &unbound,
            BearerCert,
            Refused("Bearer"),
        ),
        ("/bound/x", "dpop", &dpop, Dpop, Forwarded),
        ("/bound/x", "mtls", &mtls, BearerCert, Forwarded),
        ("/bound/x", "both", &both, DpopCert, Forwarded),
    ];
    let mut forwarded = 0;
    for (path, kind, token, sent, want) in cases {
        let what = format!("{kind} token sent as {sent:?} on {path}");
        let with_cert = matches!(sent, BearerCert | DpopCert);
        let proof = key.proof("GET", &s.url(path), token).encode();
        let auth = match sent {
            Bearer | BearerCert => format!("Bearer {token}"),
            Dpop | DpopCert => format!("DPoP {token}"),
        };
        let mut headers = vec![("authorization", auth.as_str())];
        if matches!(sent, Dpop | DpopCert) {
            headers.push(("dpop", &proof));
        }
        let reply = s.get_as(with_cert.then_some(&cert), path, &headers).await;
        match want {
            Forwarded => {
                assert_ok(&reply, &what);
                forwarded += 1;
                let seen = s.upstream.last();
                assert!(!seen.has("dpop"), "{what}: the proof is not forwarded");
            }
            Refused(scheme) => assert_invalid(&reply, scheme, &what),
        }
        assert_eq!(s.upstream.hits(), forwarded, "{what}");
    }
}
