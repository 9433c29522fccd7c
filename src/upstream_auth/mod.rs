//! Upstream credentials (extensions section 14): the gateway as an OAuth
//! client of an upstream's authorization server. An upstream with
//! `[upstreams.NAME.oauth]` gets a [`TokenSource`]; for each forwarded
//! request it gives the `Authorization` value that replaces the caller's.
//!
//! | part | owns |
//! |---|---|
//! | [`request`] | the token request (RFC 6749 4.4, RFC 8693 2.1) and the judgement of its answer, [`TokenFailure`] |
//! | [`own`] | the client-credentials token: single-flight renewal, background renewal before expiry |
//! | [`exchange`] | token exchange: one token per caller token, bounded by its `exp` |
//!
//! Requests go out through the gateway's one outbound client
//! ([`crate::fetch::HttpFetcher`]). Nothing here renders an answer: a
//! failure goes back to the request path, which reports it as an
//! `UpstreamError` rendered by `error`.

mod exchange;
mod own;
mod request;

use http::HeaderValue;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::{Grant, UpstreamOAuth};
use crate::fetch::HttpFetcher;
pub use request::TokenFailure;

/// The token an upstream receives, per its `oauth` table.
pub struct TokenSource {
    upstream: String,
    config: UpstreamOAuth,
    client: Arc<request::TokenClient>,
    kind: Kind,
}

enum Kind {
    Own(Arc<own::Slot>),
    Exchange(exchange::Exchanged),
}

/// The caller's verified token, for token exchange.
#[derive(Debug, Clone, Copy)]
pub struct CallerToken<'a> {
    pub token: &'a str,
    /// Its `exp` (epoch seconds).
    pub expires_at: f64,
}

impl TokenSource {
    /// No network I/O: the first token is requested by the first request
    /// that needs it.
    pub fn new(
        upstream: &str,
        oauth: &UpstreamOAuth,
        fetcher: HttpFetcher,
        clock: Clock,
    ) -> TokenSource {
        let kind = match oauth.grant {
            Grant::ClientCredentials => Kind::Own(Arc::default()),
            Grant::TokenExchange => Kind::Exchange(exchange::Exchanged::new(&clock)),
        };
        TokenSource {
            upstream: upstream.to_string(),
            config: oauth.clone(),
            client: Arc::new(request::TokenClient::new(upstream, oauth, fetcher, clock)),
            kind,
        }
    }

    /// Whether this source serves `upstream` exactly as `oauth` says: a
    /// reload keeps such a source, with its tokens.
    pub fn serves(&self, upstream: &str, oauth: &UpstreamOAuth) -> bool {
        self.upstream == upstream && self.config == *oauth
    }

    /// The `Authorization` value (`Bearer ...`, marked sensitive) for one
    /// request of `caller`.
    pub async fn authorization(
        &self,
        caller: Option<CallerToken<'_>>,
    ) -> Result<HeaderValue, TokenFailure> {
        let token = match (&self.kind, caller) {
            (Kind::Own(slot), _) => own::token(&self.client, slot).await?,
            (Kind::Exchange(cache), Some(caller)) => {
                cache
                    .token(&self.client, caller.token, caller.expires_at)
                    .await?
            }
            (Kind::Exchange(_), None) => return Err(TokenFailure::NoSubjectToken),
        };
        Ok(token.authorization.clone())
    }
}
