//! Operations (behavior.md section 7) through real sockets: hot reload under
//! continuous load, refused reloads, issuer state carried over a reload, a
//! replaced TLS certificate, `watch_config`, the `/metrics` page and
//! `/readyz`.
//!
//! The metrics recorder is one per test binary, so metric assertions are
//! deltas between two scrapes, and every test uses its own route paths,
//! upstream and issuer names. Only the metrics test sends requests that
//! match no route (route label `-`); keep it that way.

#[path = "../common/mod.rs"]
mod common;
mod files;
mod issuers;
mod metrics;
mod readiness;
mod reload;

use common::client::send_on;
use common::idp::{eventually, readyz, wait_ready, Failure, TestIdp};
use common::mint::{claims, now, with, Key, AUD};
use common::ops::{FileGateway, Scrape, TestCa};
use common::{
    authorized, closed_port, empty, get_with, request, within, Body, Client, Gateway,
    GatewayConfig, Issuer, RawConn, Reply, Route, Upstream,
};
use http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokengate::telemetry::OUTCOMES;
use tokio::net::TcpStream;

/// The request target the echo upstream saw, from its JSON answer.
fn echoed_target(reply: &Reply) -> String {
    reply.json()["target"]
        .as_str()
        .expect("echo body names the target")
        .to_string()
}

fn reloads(scrape: &Scrape, result: &str) -> f64 {
    scrape.value("tokengate_config_reloads_total", &[("result", result)])
}

/// Waits until the load tasks have counted `target` answers in `done`.
async fn load_progress(done: Arc<AtomicUsize>, target: usize) {
    eventually("load progress", || done.load(Ordering::SeqCst) >= target).await;
}

/// How one load task talks to the gateway.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// A new HTTP/1.1 connection per request.
    FreshH1,
    /// A new h2c connection per request.
    FreshH2,
    /// One kept-alive HTTP/1.1 connection for every request.
    KeepAliveH1,
    /// One h2c connection, every request a new stream.
    KeepAliveH2,
}

enum Conn {
    Fresh(Client),
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

impl Mode {
    /// Every mode, one load task each.
    const ALL: [Mode; 4] = [
        Mode::FreshH1,
        Mode::FreshH2,
        Mode::KeepAliveH1,
        Mode::KeepAliveH2,
    ];
}

impl Conn {
    async fn open(mode: Mode, addr: SocketAddr) -> Conn {
        match mode {
            Mode::FreshH1 => Conn::Fresh(Client::h1()),
            Mode::FreshH2 => Conn::Fresh(Client::h2()),
            Mode::KeepAliveH1 => {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .expect("h1 handshake");
                tokio::spawn(conn);
                Conn::H1(sender)
            }
            Mode::KeepAliveH2 => {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                let (sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                        .await
                        .expect("h2 handshake");
                tokio::spawn(conn);
                Conn::H2(sender)
            }
        }
    }

    /// `GET path`; `Err` describes a transport failure.
    async fn get(&mut self, addr: SocketAddr, path: &str) -> Result<Reply, String> {
        self.get_as(addr, path, None).await
    }

    /// `GET path` with `Authorization: Bearer token` when there is one.
    async fn get_as(
        &mut self,
        addr: SocketAddr,
        path: &str,
        token: Option<&str>,
    ) -> Result<Reply, String> {
        let with_token = |mut req: Request<Body>| {
            if let Some(token) = token {
                let value = format!("Bearer {token}").parse().expect("header value");
                req.headers_mut().insert("authorization", value);
            }
            req
        };
        let resp = match self {
            Conn::Fresh(client) => {
                client
                    .try_send(addr, with_token(request("GET", path)))
                    .await
            }
            Conn::H1(sender) => {
                let req = get_with(path, &[("host", &addr.to_string())]);
                let req = with_token(req);
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(req).await
            }
            Conn::H2(sender) => {
                let req = Request::get(format!("http://{addr}{path}"))
                    .body(empty())
                    .expect("request");
                let req = with_token(req);
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(req).await
            }
        };
        Ok(Reply::read(resp.map_err(|e| e.to_string())?).await)
    }
}
