//! Waiting on the gateway: [`eventually`], `/readyz`, and the issuer table
//! of a [`TestIdp`].

use super::*;

/// The longest [`eventually`] waits.
pub const EVENTUALLY: Duration = Duration::from_secs(10);

/// Polls `cond` every 20 ms until it holds; fails the test after [`EVENTUALLY`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + EVENTUALLY;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {EVENTUALLY:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /readyz` on the gateway's admin listener.
pub async fn readyz(gw: &Gateway) -> Reply {
    Client::h1()
        .fetch(gw.admin_addr(), request("GET", "/readyz"))
        .await
}

/// Polls the admin `/readyz` until it answers 200; fails after [`EVENTUALLY`].
pub async fn wait_ready(gw: &Gateway) {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let reply = readyz(gw).await;
        if reply.status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gateway not ready within {EVENTUALLY:?}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the admin `/readyz` until it answers 503; fails after [`EVENTUALLY`].
pub async fn wait_not_ready(gw: &Gateway) -> Reply {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let reply = readyz(gw).await;
        if reply.status == 503 {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "gateway still ready after {EVENTUALLY:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An `[issuers.NAME]` table pointing `jwks_uri` at `idp`, with the issuer
/// the idp names; `extra` lines are appended. The audiences are
/// `audiences = [AUD]` unless `extra` sets `audiences` itself.
pub fn issuer_table(name: &str, idp: &TestIdp, extra: &str) -> String {
    let audiences = if extra.contains("audiences") {
        String::new()
    } else {
        format!("audiences = [\"{}\"]\n", super::super::mint::AUD)
    };
    format!(
        "[issuers.{name}]\nissuer = \"{}\"\njwks_uri = \"{}\"\n{audiences}{extra}\n",
        idp.issuer(),
        idp.jwks_uri(),
    )
}
