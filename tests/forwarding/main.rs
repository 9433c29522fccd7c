//! Forwarding fidelity (behavior.md sections 1, 2 and 6) over real sockets:
//! what the upstream receives, what the client gets back, and that every
//! request the gateway refuses never reaches the upstream.

#[path = "../common/mod.rs"]
mod common;
mod failures;
mod headers;
mod request;

use common::upstream::BIG_BODY;
use common::{
    api_config, assert::assert_refused, closed_port, full, generated, get_with, raw, request,
    within, Client, Gateway, GatewayConfig, RawConn, Route, Upstream,
};
use http::{Request, Version};
use std::time::{Duration, Instant};

async fn echo_gateway(extra: &str) -> (Upstream, Gateway) {
    let upstream = Upstream::echo().await;
    let gateway = Gateway::start(&api_config(&upstream.url(), extra)).await;
    (upstream, gateway)
}
