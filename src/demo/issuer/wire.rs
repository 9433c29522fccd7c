//! The demo issuer on the wire: routing a request to discovery, the JWKS,
//! the token or the introspection endpoint, the JSON and OAuth error
//! responses, and the accept loop.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

use super::form::parse_form;
use super::{oauth_error, Issuer, OAuthError};

const MAX_FORM_BYTES: usize = 16 * 1024;

impl Issuer {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        match (&parts.method, parts.uri.path()) {
            (&Method::GET, "/.well-known/openid-configuration") => {
                json_response(StatusCode::OK, &self.discovery())
            }
            (&Method::GET, "/jwks") => json_response(StatusCode::OK, &self.jwks()),
            (&Method::POST, path @ ("/token" | "/introspect")) => {
                let body = Limited::new(body, MAX_FORM_BYTES)
                    .collect()
                    .await
                    .map(|b| b.to_bytes());
                let form = body.ok().as_deref().and_then(parse_form);
                let result = match form {
                    None => Err(oauth_error(
                        "invalid_request",
                        "the body must be a form without repeated parameters",
                    )),
                    Some(form) if path == "/token" => self.token(&parts.headers, &form).await,
                    Some(form) => self.introspect(&parts.headers, &form),
                };
                match result {
                    Ok(v) => json_response(StatusCode::OK, &v),
                    Err(e) => error_response(&e),
                }
            }
            _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn error_response(e: &OAuthError) -> Response<Full<Bytes>> {
    let mut resp = json_response(
        e.status,
        &json!({"error": e.code, "error_description": e.description}),
    );
    if e.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tokengate-demo\""),
        );
    }
    resp
}

/// Serves the issuer on `listener` (which must be loopback) until `shutdown`.
pub async fn serve(issuer: Arc<Issuer>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let answer = move |req| {
        let issuer = issuer.clone();
        async move { issuer.answer(req).await }
    };
    crate::demo::serve_with(listener, shutdown, answer).await
}
