//! [`AuthError`]: why the auth phase did not produce a principal. Variants
//! say what happened and carry what the log needs (the issuer, the cause);
//! [`crate::error`] alone decides status, challenge, body and log level.
//! Client-facing descriptions are `&'static str` from fixed lists, so
//! nothing a client sent can be echoed back.

use super::keys::Unusable;
use crate::fetch::FetchError;

/// A refused or uncheckable credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential on a route that requires one.
    #[error("no bearer token")]
    MissingToken,
    /// The credential breaks the RFC 6750 grammar (400 `invalid_request`).
    #[error("malformed credential: {0}")]
    InvalidRequest(&'static str),
    /// A well-formed token that is not valid here (401 `invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// The DPoP proof is missing, malformed or does not fit this request
    /// (401 `invalid_dpop_proof`, RFC 9449 section 7.1).
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(&'static str),
    /// The DPoP proof lacks a live server nonce (401 `use_dpop_nonce`, with
    /// a fresh `DPoP-Nonce`).
    #[error("DPoP proof without a live server nonce")]
    UseDpopNonce,
    /// The verified token lacks a scope; the route's required scopes,
    /// space-separated.
    #[error("insufficient scope")]
    InsufficientScope(String),
    /// The issuer's key set cannot be used now.
    #[error("issuer {issuer}: {}", why.reason())]
    KeysUnusable { issuer: String, why: Unusable },
    /// The issuer's introspection endpoint could not answer.
    #[error("issuer {issuer}: introspection failed: {cause}")]
    Introspection {
        issuer: String,
        cause: IntrospectionFailure,
    },
}

/// Why an introspection call gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectionFailure {
    /// `introspection_max_in_flight` calls are already waiting.
    #[error("too many calls in flight")]
    Overloaded,
    /// The exchange failed (connect, timeout, size).
    #[error("{0}")]
    Fetch(FetchError),
    /// 401 or 403: the endpoint refused the gateway's own credentials.
    #[error("the endpoint refused the gateway's credentials (HTTP {0})")]
    CredentialsRefused(u16),
    /// Any other status than 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// A 200 whose body is not one strict JSON object.
    #[error("the answer is not a JSON object")]
    NotJson,
    /// The request could not be built from the configured endpoint.
    #[error("the request could not be built")]
    Request,
}

impl IntrospectionFailure {
    /// The `result` label of `tokengate_introspection_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            IntrospectionFailure::Overloaded => "overloaded",
            IntrospectionFailure::Fetch(e) => e.label(),
            IntrospectionFailure::CredentialsRefused(_) => "credentials_refused",
            IntrospectionFailure::Status(_) => "bad_status",
            IntrospectionFailure::NotJson => "not_json",
            IntrospectionFailure::Request => "error",
        }
    }
}
