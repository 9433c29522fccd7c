//! The servers around the gateway (the upstream and the introspection
//! endpoint) and the client's connection and round trip.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

use crate::mint::now;

use crate::bed::Target;
use crate::{BoxError, OPAQUE_TOKEN, UPSTREAM_BODY};

/// A minimal HTTP/1.1 upstream: 200 and [`UPSTREAM_BODY`] to everything.
pub(crate) async fn upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|_req| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(UPSTREAM_BODY))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// A minimal RFC 7662 endpoint on [`introspect`]; counts calls.
pub(crate) async fn introspection_endpoint(listener: TcpListener, calls: Arc<AtomicUsize>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let calls = calls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                calls.fetch_add(1, Ordering::Relaxed);
                async move { Ok::<_, Infallible>(introspect(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// [`OPAQUE_TOKEN`] is active for an hour with the same `scope`, `sub` and
/// `client_id` as the JWT (so both routes forward the same identity
/// headers); any other token is inactive.
pub(crate) async fn introspect(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let wanted = format!("token={OPAQUE_TOKEN}&");
    let active = match req.into_body().collect().await {
        Ok(body) => body.to_bytes().starts_with(wanted.as_bytes()),
        Err(_) => false,
    };
    let answer = if active {
        serde_json::json!({
            "active": true,
            "scope": "read write",
            "exp": now() + 3_600,
            "sub": "alice",
            "client_id": "app-1",
        })
    } else {
        serde_json::json!({ "active": false })
    };
    let mut resp = Response::new(Full::new(Bytes::from(answer.to_string())));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Opens one keep-alive HTTP/1.1 connection; its driver runs on the caller's
/// runtime.
pub(crate) async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One GET, body read to the end, answer checked.
pub(crate) async fn round_trip(
    sender: &mut SendRequest<Empty<Bytes>>,
    target: &Target,
) -> Result<(), BoxError> {
    sender.ready().await?;
    let resp = sender.send_request(target.request()?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK || body != UPSTREAM_BODY {
        return Err(format!("{}: unexpected answer {status} {body:?}", target.name).into());
    }
    Ok(())
}
