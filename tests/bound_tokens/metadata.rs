//! The DPoP and mTLS members of the protected-resource metadata document
//! (extensions section 10): `dpop_signing_alg_values_supported` when a
//! route of the resource accepts DPoP, `dpop_bound_access_tokens_required`
//! when every route of it is `dpop`, and
//! `tls_client_certificate_bound_access_tokens` with `tls_client_auth =
//! "optional"`; and the challenges of such a resource's routes.

use super::*;

const RESOURCES: &str = "\
[resources.mixed]\nresource = \"https://api.example.com/mixed\"\n\
[resources.strict]\nresource = \"https://api.example.com/strict\"\n\
[resources.certs]\nresource = \"https://api.example.com/certs\"\n\
[resources.idle]\nresource = \"https://api.example.com/idle\"\n";

/// A gateway with `[dpop]`, over TLS with client certificates when `tls`,
/// whose resources are protected by routes of each binding:
///
/// | resource | routes' `token_binding` |
/// |---|---|
/// | `mixed` | `any`, `mtls` |
/// | `strict` | `dpop`, `dpop` |
/// | `certs` | `mtls` |
/// | `idle` | no route |
async fn start(tls: bool) -> (Upstream, Gateway, Option<Pki>) {
    let idp = TestIdp::start().await;
    let upstream = Upstream::echo().await;
    let route = |path: &str, resource: &str, binding: &str| {
        Route::new(path, "echo")
            .with(&format!("resource = \"{resource}\""))
            .with(&format!("token_binding = \"{binding}\""))
    };
    let mut config = GatewayConfig::new()
        .issuer(issuer_table("corp", &idp, ""))
        .upstream("echo", &upstream.url())
        .route(route("/mixed/a/**", "mixed", "any"))
        .route(route("/mixed/b/**", "mixed", "mtls"))
        .route(route("/strict/a/**", "strict", "dpop"))
        .route(route("/strict/b/**", "strict", "dpop"))
        .route(route("/certs/**", "certs", "mtls"))
        .raw(&dpop_table(""))
        .raw(RESOURCES);
    let pki = tls.then(Pki::generate);
    if pki.is_some() {
        config = config.server(
            "tls_cert = \"server.pem\"\ntls_key = \"server.key\"\ntls_client_auth = \"optional\"",
        );
    }
    let dir = pki.as_ref().map_or(Path::new("."), |p| p.dir());
    let gw = Gateway::start_in(&config.render(), dir).await;
    (upstream, gw, pki)
}

/// The metadata document of resource `name` (its identifier's path).
async fn document(gw: &Gateway, pki: Option<&Pki>, name: &str) -> Value {
    let client = pki.map_or_else(Client::h1, |p| Client::h1().tls(p));
    let path = format!("/.well-known/oauth-protected-resource/{name}");
    let reply = gw.send(&client, get_with(&path, &[])).await;
    assert_eq!(reply.status, 200, "{name}: {:?}", text(&reply));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    reply.json()
}

#[tokio::test]
async fn document_states_the_dpop_and_certificate_rules_of_the_resource() {
    let (upstream, gw, pki) = start(true).await;
    let algs = json!(["ES256", "EdDSA", "RS256"]);
    // (resource, dpop_signing_alg_values_supported, dpop_bound_access_tokens_required)
    let cases = [
        ("mixed", Some(&algs), false),
        ("strict", Some(&algs), true),
        ("certs", None, false),
        ("idle", None, false),
    ];
    for (name, dpop_algs, required) in cases {
        let doc = document(&gw, pki.as_ref(), name).await;
        assert_eq!(doc["resource"], format!("https://api.example.com/{name}"));
        assert_eq!(
            doc.get("dpop_signing_alg_values_supported"),
            dpop_algs,
            "{name}: {doc}"
        );
        assert_eq!(
            doc["dpop_bound_access_tokens_required"], required,
            "{name}: {doc}"
        );
        assert_eq!(
            doc["tls_client_certificate_bound_access_tokens"], true,
            "{name}: {doc}"
        );
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert!(doc.get("resource_signing_alg_values_supported").is_none());
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn without_tls_client_auth_certificate_bound_tokens_are_not_advertised() {
    let (_upstream, gw, _) = start(false).await;
    let doc = document(&gw, None, "mixed").await;
    assert_eq!(
        doc["tls_client_certificate_bound_access_tokens"], false,
        "{doc}"
    );
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256"])
    );
}

#[tokio::test]
async fn without_dpop_no_dpop_algorithms_are_advertised() {
    let idp = TestIdp::start().await;
    let upstream = Upstream::echo().await;
    let gw = GatewayConfig::new()
        .issuer(issuer_table("corp", &idp, ""))
        .upstream("echo", &upstream.url())
        .route(Route::new("/mixed/**", "echo").with("resource = \"mixed\""))
        .raw("[resources.mixed]\nresource = \"https://api.example.com/mixed\"\n")
        .start()
        .await;
    let doc = document(&gw, None, "mixed").await;
    assert!(
        doc.get("dpop_signing_alg_values_supported").is_none(),
        "{doc}"
    );
    assert_eq!(doc["dpop_bound_access_tokens_required"], false);
    assert_eq!(doc["tls_client_certificate_bound_access_tokens"], false);
}

#[tokio::test]
async fn challenges_of_a_resource_route_name_its_metadata_in_every_scheme() {
    let (upstream, gw, _) = start(false).await;
    let url = "https://api.example.com/.well-known/oauth-protected-resource";
    let metadata = |name: &str| format!("resource_metadata=\"{url}/{name}\"");
    // (path, the challenges offered without a credential)
    let cases = [
        (
            "/mixed/a/x",
            vec![
                format!("Bearer realm=\"tokengate\", {}", metadata("mixed")),
                format!(
                    "DPoP realm=\"tokengate\", algs=\"{ALGS}\", {}",
                    metadata("mixed")
                ),
            ],
        ),
        (
            "/strict/a/x",
            vec![format!(
                "DPoP realm=\"tokengate\", algs=\"{ALGS}\", {}",
                metadata("strict")
            )],
        ),
        (
            "/certs/x",
            vec![format!("Bearer realm=\"tokengate\", {}", metadata("certs"))],
        ),
    ];
    for (path, want) in cases {
        let reply = gw.send(&Client::h1(), get_with(path, &[])).await;
        assert_eq!(reply.status, 401, "{path}");
        assert_eq!(reply.header_all("www-authenticate"), want, "{path}");
    }
    // A refusal of a DPoP request (here: no proof) carries it too.
    let reply = gw
        .send(
            &Client::h1(),
            get_with("/mixed/a/x", &[("authorization", "DPoP some-token")]),
        )
        .await;
    let field = reply.header("www-authenticate").expect("challenge");
    assert!(
        field.starts_with("DPoP realm=\"tokengate\", error=\"invalid_dpop_proof\""),
        "{field}"
    );
    assert!(field.ends_with(&metadata("mixed")), "{field}");
    assert_eq!(upstream.hits(), 0);
}
