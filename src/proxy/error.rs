//! [`UpstreamError`]: why forwarding did not produce the upstream's answer.
//! Variants carry what the log needs (the upstream's name, the cause);
//! [`crate::error`] alone decides status, body and log level. A client
//! body that broke or stalled is the client's failure, found while
//! forwarding, so it is here too.

/// A failed upstream exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {upstream}: connection failed: {cause}")]
    Connect { upstream: String, cause: String },
    /// `upstreams.X.max_connections` are busy and none freed in time.
    #[error("upstream {upstream}: connection limit reached")]
    Saturated { upstream: String },
    #[error("upstream {upstream}: no answer within its timeout")]
    Timeout { upstream: String },
    /// The connection broke, or the answer was not HTTP.
    #[error("upstream {upstream}: request failed: {cause}")]
    Protocol { upstream: String, cause: String },
    /// A `101` without an upgrade being asked for.
    #[error("upstream {upstream}: switched protocols unasked")]
    UnaskedUpgrade { upstream: String },
    /// A `101` that does not answer the WebSocket handshake that was asked
    /// for; the client's connection is closed after the 502.
    #[error("upstream {upstream}: bad upgrade answer: {reason}")]
    BadUpgrade {
        upstream: String,
        reason: &'static str,
    },
    /// The request needs what the upstream's `protocol` cannot carry: gRPC
    /// over `http1`, or a WebSocket upgrade over `h2`. A configuration
    /// mistake, so the gateway's failure.
    #[error("upstream {upstream}: {reason}")]
    WrongProtocol {
        upstream: String,
        reason: &'static str,
    },
    /// The upstream request target could not be built: our failure.
    #[error("upstream {upstream}: the request target cannot be built")]
    BadTarget { upstream: String },
    /// The client's body broke its framing (a malformed chunk) or its stream.
    #[error("malformed request body")]
    MalformedBody,
    /// The client's body did not arrive within `body_read_timeout_ms`.
    #[error("request body timed out")]
    BodyTimeout,
    /// The upstream's own token (`[upstreams.NAME.oauth]`) could not be had.
    #[error("upstream {upstream}: {cause}")]
    Credentials {
        upstream: String,
        cause: crate::upstream_auth::TokenFailure,
    },
}
