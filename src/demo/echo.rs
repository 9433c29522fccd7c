//! A small echo upstream for the demo: answers every request with a JSON
//! description of what it received (method, path, query, headers, body
//! size, and the claims of a bearer JWT it was sent, unverified), so a
//! user can see exactly what tokengate forwards: on the route whose
//! upstream gets the gateway's own token, which token that is.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::future::Future;
use tokio::net::TcpListener;

/// Serves echo answers on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    super::serve_with(listener, shutdown, echo).await
}

async fn echo(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let size = body
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    let mut body = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": size,
    });
    if let Some(claims) = bearer_claims(&parts.headers) {
        body["token_claims"] = claims;
    }
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The claims of the bearer JWT in `Authorization`, decoded without any
/// check: an upstream's view of which token arrived.
fn bearer_claims(headers: &HeaderMap) -> Option<serde_json::Value> {
    let token = headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    serde_json::from_slice(&payload).ok()
}
