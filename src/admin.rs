//! The admin listener: `GET /healthz` (200 while the process serves),
//! `GET /readyz` (200 once the configuration is loaded and every issuer is
//! usable, 503 naming the issuers that are not; with `[redis]` also
//! `"redis": "ok" | "unavailable"`, which never makes it unready),
//! `GET /metrics`, and the revocation API ([`crate::revocation::api`]).
//! Plain HTTP/1.1, meant for loopback or a private network.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;

use crate::revocation::api::{self, Api};
use crate::runtime::{Runtime, SharedRuntime};
use crate::shutdown::{Phase, Watcher};

/// Serves admin requests until the gateway drains; each connection holds
/// a [`Watcher`] so the drain waits for it.
pub async fn serve(listener: TcpListener, shared: SharedRuntime, mut stop: Watcher) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::error!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.until(Phase::Draining) => break,
        };
        let shared = shared.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let rt = shared.load_full();
                async move { Ok::<_, Infallible>(answer(&rt, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.until(Phase::Draining) => {
                    conn.as_mut().graceful_shutdown();
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.until(Phase::Closed) => {}
                    }
                }
            }
            drop(stop);
        });
    }
}

async fn answer(rt: &Runtime, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if api::owns(req.uri().path()) {
        let api = Api {
            token: rt.config.admin.as_ref().and_then(|a| a.api_token.as_ref()),
            deny: &rt.revocations,
            redis: rt.fleet.redis.as_deref(),
            issuers: rt.config.issuers.iter().map(|i| i.name.as_str()).collect(),
            now: rt.clock.now(),
        };
        return api::handle(api, req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return api::respond(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": "method_not_allowed"}),
        );
    }
    match req.uri().path() {
        "/healthz" => api::respond(StatusCode::OK, serde_json::json!({"status": "ok"})),
        "/readyz" => readyz(rt),
        "/metrics" => metrics(rt),
        _ => api::respond(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not_found"}),
        ),
    }
}

fn readyz(rt: &Runtime) -> Response<Full<Bytes>> {
    let waiting = rt.not_ready();
    let mut body = if waiting.is_empty() {
        serde_json::json!({"status": "ready"})
    } else {
        let issuers: serde_json::Map<String, serde_json::Value> = waiting
            .iter()
            .map(|(name, why)| (name.clone(), (*why).into()))
            .collect();
        serde_json::json!({"status": "not_ready", "issuers": issuers})
    };
    if let Some(redis) = rt.fleet.redis_status() {
        body["redis"] = redis.into();
    }
    let status = match waiting.is_empty() {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    api::respond(status, body)
}

fn metrics(rt: &Runtime) -> Response<Full<Bytes>> {
    rt.auth.record_key_set_ages();
    let mut resp = Response::new(Full::new(Bytes::from(crate::telemetry::render())));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
