//! `upstream`: the fast upstream the benchmarks forward to, answering
//! `200 pong` and an RFC 7662 introspection answer; and, on a second
//! listener, gRPC unary calls over h2c.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;

use crate::{current_thread, mint, BoxError, INTROSPECT_PATH, ISS, UPSTREAM_BODY};

pub(crate) fn upstream_command(
    listen: SocketAddr,
    grpc_listen: Option<SocketAddr>,
) -> Result<bool, BoxError> {
    current_thread()?.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        eprintln!("upstream listening on {}", listener.local_addr()?);
        if let Some(grpc) = grpc_listen {
            let grpc = TcpListener::bind(grpc).await?;
            eprintln!("gRPC upstream (h2c) listening on {}", grpc.local_addr()?);
            tokio::spawn(serve_grpc(grpc));
        }
        serve_upstream(listener).await;
        Ok::<_, BoxError>(())
    })?;
    Ok(true)
}

/// The answer to every gRPC call: 8 bytes (field 1, "pong!!") behind the
/// 5-byte length prefix.
const GRPC_REPLY: &[u8] = b"\0\0\0\0\x08\x0a\x06pong!!";

/// An h2c (prior knowledge) server answering every request as a successful
/// gRPC unary call: the request message read, one message back, then
/// `grpc-status: 0` in the trailers.
async fn serve_grpc(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(grpc_answer))
                .await;
        });
    }
}

async fn grpc_answer(
    req: Request<Incoming>,
) -> Result<Response<impl hyper::body::Body<Data = Bytes, Error = Infallible>>, Infallible> {
    let _ = req.into_body().collect().await;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Full::new(Bytes::from_static(GRPC_REPLY))
        .with_trailers(async move { Some(Ok::<_, Infallible>(trailers)) });
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    Ok(resp)
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
