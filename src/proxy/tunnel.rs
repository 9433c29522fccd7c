//! WebSocket tunnels (RFC 6455, docs/behavior.md section 8). The gateway
//! checks that the upstream's `101` answers the handshake the client asked
//! for (`Upgrade: websocket` and the `Sec-WebSocket-Accept` derived from the
//! request's `Sec-WebSocket-Key`, section 4.2.2) before it joins the two
//! upgraded connections; after that, bytes flow unchecked. A tunnel opened
//! with a token is closed when that token expires, so a WebSocket cannot
//! outlive its authorization.

use base64::Engine;
use http::header::{HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderMap, Request};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// The GUID every `Sec-WebSocket-Accept` is derived with (RFC 6455 1.3).
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The longest a tunnel waits for its token's expiry in one timer (a token
/// with an absurd `exp` must not overflow the clock).
const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The client's side of an upgrade request.
pub struct Handshake {
    key: Option<HeaderValue>,
    client: OnUpgrade,
}

impl Handshake {
    /// Takes the client's upgrade future and its `Sec-WebSocket-Key`.
    pub fn new(req: &mut Request<Incoming>) -> Handshake {
        Handshake {
            key: req.headers().get(SEC_WEBSOCKET_KEY).cloned(),
            client: hyper::upgrade::on(req),
        }
    }

    /// Whether the upstream's `101` headers complete this handshake; the
    /// error says what is wrong (for the log, never for the client).
    pub fn accepts(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let websocket = headers
            .get_all(UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("websocket"));
        if !websocket {
            return Err("the 101 does not upgrade to websocket");
        }
        let key = self
            .key
            .as_ref()
            .ok_or("the request has no Sec-WebSocket-Key")?;
        match headers.get(SEC_WEBSOCKET_ACCEPT) {
            Some(v) if v.as_bytes() == accept_value(key.as_bytes()).as_bytes() => Ok(()),
            Some(_) => Err("Sec-WebSocket-Accept does not match the key"),
            None => Err("the 101 has no Sec-WebSocket-Accept"),
        }
    }

    /// Joins the client's and the upstream's upgraded connections in a task
    /// of their own, until either side closes or the token that opened the
    /// tunnel expires (`token_left` from now).
    pub fn spawn(self, upstream: OnUpgrade, token_left: Option<Duration>) {
        let lifetime = token_left.map(|left| left.min(MAX_LIFETIME));
        tokio::spawn(run(self.client, upstream, lifetime));
    }
}

async fn run(client: OnUpgrade, upstream: OnUpgrade, lifetime: Option<Duration>) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    let expiry = async {
        match lifetime {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        copied = copy => {
            if let Err(e) = copied {
                tracing::debug!(error = %e, "tunnel closed with an error");
            }
        }
        _ = expiry => {
            crate::telemetry::tunnel_closed("token_expired");
            tracing::info!("WebSocket tunnel closed: the token that opened it expired");
        }
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64 of the SHA-1 of
/// the key and the WebSocket GUID (RFC 6455 section 4.2.2).
pub fn accept_value(key: &[u8]) -> String {
    let mut sha1 = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_value_matches_rfc_6455_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_value(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn handshake_headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[tokio::test]
    async fn accepts_table() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let good = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        let cases: [(&[(&str, &str)], bool); 6] = [
            (
                &[("upgrade", "websocket"), ("sec-websocket-accept", good)],
                true,
            ),
            (
                &[("upgrade", "WebSocket"), ("sec-websocket-accept", good)],
                true,
            ),
            (&[("upgrade", "h2c"), ("sec-websocket-accept", good)], false),
            (&[("sec-websocket-accept", good)], false),
            (&[("upgrade", "websocket")], false),
            (
                &[("upgrade", "websocket"), ("sec-websocket-accept", "AAAA")],
                false,
            ),
        ];
        for (headers, want) in cases {
            let mut req = Request::new(());
            req.headers_mut()
                .insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static(key));
            let handshake = Handshake {
                key: req.headers().get(SEC_WEBSOCKET_KEY).cloned(),
                client: hyper::upgrade::on(&mut req),
            };
            assert_eq!(
                handshake.accepts(&handshake_headers(headers)).is_ok(),
                want,
                "{headers:?}"
            );
        }
    }
}
