//! Defects found by black-box and adversarial testing, each pinned here:
//! requests without `Host`, hosts with a trailing dot, transfer codings
//! other than `chunked`, broken and slow request bodies, client-address
//! headers, `access_token` in forwarded queries, h2 cookies, an HTTP/1.0
//! upstream's version, and WebSocket handshakes the upstream answers
//! wrongly or tunnels that outlive their token.
//!
//! Every test asserts what the client gets and what reached the upstream.

#[path = "../common/mod.rs"]
mod common;
mod headers;
mod host_and_bodies;
mod responses;

use common::mint::{claims, now, with, Key, AUD};
use common::{
    api_config, get_with, raw, within, Client, Gateway, GatewayConfig, Issuer, RawConn, Route,
    Upstream,
};
use futures_util::{SinkExt, StreamExt};
use http::Request;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// An upstream that answers every request head it reads with fixed bytes,
/// and counts the heads; `close` ends the connection after each answer.
struct CannedUpstream {
    addr: SocketAddr,
    heads: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CannedUpstream {
    async fn start(answer: &'static [u8], close: bool) -> CannedUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(AtomicUsize::new(0));
        let counter = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            counter.fetch_add(1, Ordering::SeqCst);
                            if stream.write_all(answer).await.is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        CannedUpstream { addr, heads, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn heads(&self) -> usize {
        self.heads.load(Ordering::SeqCst)
    }
}

impl Drop for CannedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A directory holding `jwks.json` with `key`, for a `jwks_file` issuer.
fn key_set_dir(key: &Key) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("jwks.json"),
        json!({ "keys": [key.jwk()] }).to_string(),
    )
    .expect("write key set");
    dir
}
