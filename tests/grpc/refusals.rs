//! Refusals as a gRPC client sees them (extensions section 13): HTTP 200,
//! `content-type: application/grpc`, no body, `grpc-status` and the
//! percent-encoded fixed description in `grpc-message`, with the
//! `WWW-Authenticate` of a 401 or 403 kept. tonic must report the status
//! of the table and, decoded, the same description the gateway gives an
//! HTTP client in its JSON body; the upstream sees none of these calls.

use http::Request;
use tonic::Code;

use crate::common::mint::{claims, Key, AUD};
use crate::common::{empty, Client, Reply};
use crate::echo::{EchoRequest, SERVICE_NAME};
use crate::fixture::{text, with_authorization};
use crate::Grpc;

/// One refused call: its path, its `authorization` metadata, and the
/// gRPC status and HTTP status the gateway's refusal maps to.
struct Refusal {
    what: &'static str,
    service: &'static str,
    authorization: Option<String>,
    code: Code,
    http: u16,
}

fn refusals(g: &Grpc) -> Vec<Refusal> {
    let forged = Key::es256("grpc-1").token(&claims(&g.idp.issuer(), AUD));
    let row = |what, service, authorization: Option<String>, code, http| Refusal {
        what,
        service,
        authorization,
        code,
        http,
    };
    vec![
        row("no token", SERVICE_NAME, None, Code::Unauthenticated, 401),
        row(
            "a token signed by another key",
            SERVICE_NAME,
            Some(format!("Bearer {forged}")),
            Code::Unauthenticated,
            401,
        ),
        row(
            "a token without the route's scope",
            SERVICE_NAME,
            Some(format!("Bearer {}", g.token_with_scope("read write"))),
            Code::PermissionDenied,
            403,
        ),
        row(
            "a malformed Authorization",
            SERVICE_NAME,
            Some("Bearer abc,def".to_string()),
            Code::InvalidArgument,
            400,
        ),
        row(
            "a path no route matches",
            "test.Nowhere",
            Some(format!("Bearer {}", g.token())),
            Code::Unimplemented,
            404,
        ),
        row(
            "an upstream nothing listens on",
            "test.Down",
            Some(format!("Bearer {}", g.token())),
            Code::Unavailable,
            502,
        ),
    ]
}

#[tokio::test]
async fn refusals_are_the_grpc_statuses_of_the_table() {
    let g = Grpc::start().await;
    let mut client = g.client().await;
    for refusal in refusals(&g) {
        let what = refusal.what;
        let message = EchoRequest::text("refused");
        let request = match &refusal.authorization {
            Some(value) => with_authorization(message, value),
            None => tonic::Request::new(message),
        };
        let status = client
            .unary_at(refusal.service, "Unary", request)
            .await
            .expect_err(what);
        assert_eq!(status.code(), refusal.code, "{what}: {status:?}");

        // The same request as plain HTTP/1.1 gets the JSON refusal.
        let json = http_refusal(&g, &refusal).await;
        json.gateway_error(refusal.http);
        assert_eq!(
            status.message(),
            json.json()["error_description"]
                .as_str()
                .expect("description"),
            "{what}: grpc-message is the fixed description"
        );
        if matches!(refusal.http, 401 | 403) {
            let challenge = text(status.metadata(), "www-authenticate");
            assert!(
                challenge.is_some_and(|c| c.starts_with("Bearer realm=")),
                "{what}"
            );
            assert_eq!(challenge, json.header("www-authenticate"), "{what}");
        }
    }
    assert_eq!(g.echo.hits(), 0, "no refused call reached the upstream");
}

/// The refusal on the wire, read by a plain h2 client: a trailers-only
/// answer whose `grpc-message` decodes to the description.
#[tokio::test]
async fn refusal_is_a_trailers_only_answer() {
    let g = Grpc::start().await;
    let req = Request::post("/test.Echo/Unary")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(empty())
        .expect("request");
    let reply = g.gw.send(&Client::h2(), req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/grpc"));
    assert_eq!(reply.header("grpc-status"), Some("16"));
    let message = reply.header("grpc-message").expect("grpc-message");
    assert_eq!(percent_decode(message), "a bearer token is required");
    assert!(reply.header("www-authenticate").is_some());
    assert!(reply.body.is_empty(), "no body: {:?}", reply.body);
    assert_eq!(g.echo.hits(), 0);
}

/// `refusal`'s request as an HTTP/1.1 `POST` without gRPC's content type.
async fn http_refusal(g: &Grpc, refusal: &Refusal) -> Reply {
    let mut req = Request::post(format!("/{}/Unary", refusal.service));
    if let Some(value) = &refusal.authorization {
        req = req.header("authorization", value);
    }
    g.gw.send(&Client::h1(), req.body(empty()).expect("request"))
        .await
}

/// `%XX` sequences decoded (the gRPC spec's percent-encoding).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8 grpc-message")
}
