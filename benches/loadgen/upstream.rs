//! `upstream`: the fast upstream the benchmarks forward to, answering
//! `200 pong` and an RFC 7662 introspection answer.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;

use crate::{current_thread, mint, BoxError, INTROSPECT_PATH, ISS, UPSTREAM_BODY};

pub(crate) fn upstream_command(listen: SocketAddr) -> Result<bool, BoxError> {
    current_thread()?.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        eprintln!("upstream listening on {}", listener.local_addr()?);
        serve_upstream(listener).await;
        Ok::<_, BoxError>(())
    })?;
    Ok(true)
}

/// A minimal HTTP/1.1 keep-alive server: `200 pong` to everything, and an
/// active introspection answer to `POST /introspect`.
pub(crate) async fn serve_upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(upstream_answer))
                .await;
        });
    }
}

pub(crate) async fn upstream_answer(
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() == Method::POST && req.uri().path() == INTROSPECT_PATH {
        // The form is read and ignored: every token is active.
        let _ = req.into_body().collect().await;
        let answer = json!({
            "active": true,
            "iss": ISS,
            "aud": mint::AUD,
            "sub": "alice",
            "client_id": "app-1",
            "scope": "read write",
            "exp": mint::now() + 3_600,
        });
        let mut resp = Response::new(Full::new(Bytes::from(answer.to_string())));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(resp);
    }
    Ok(Response::new(Full::new(Bytes::from_static(UPSTREAM_BODY))))
}
