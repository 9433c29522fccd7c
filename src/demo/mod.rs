//! `tokengate demo`: what a new user runs first. A development OAuth 2.0
//! issuer ([`issuer`]) and an echo upstream ([`echo`]) on loopback, in front
//! of which the gateway runs with `config/demo.toml` ([`run`]). Development
//! only, and compiled only with the `demo` cargo feature (on by default).

pub mod echo;
pub mod issuer;
pub mod run;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use tokio::net::TcpListener;

/// Answers every connection on `listener` with `answer` (HTTP/1.1 or h2)
/// until `shutdown` resolves: the demo's servers share this loop.
async fn serve_with<F, Fut>(listener: TcpListener, shutdown: impl Future<Output = ()>, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let accept = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let reply = answer(req);
                    async move { Ok::<_, Infallible>(reply.await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
}
