//! Sender-constrained tokens in the configuration (extensions section 9):
//! the `[dpop]` table, the client-certificate keys of `[server]`, and a
//! route's `token_binding`, with the rules that tie them together (a DPoP
//! route needs `[dpop]`; a CA needs the handshake to ask for certificates,
//! which needs TLS).

use http::HeaderName;

use super::builder::Builder;
use super::raw::{Keyword, RawDpop, RawServer};
use super::{AuthMode, ClientCertAuth, ClientCerts, DpopConfig, TokenBinding};

/// `[dpop]` → [`DpopConfig`]; `None` when the table is absent.
pub(super) fn dpop(b: &mut Builder, raw: Option<&RawDpop>) -> Option<DpopConfig> {
    let d = raw?;
    if d.algorithms.is_empty() {
        b.err("dpop.algorithms", "must not be empty");
    }
    let mut algorithms = Vec::new();
    for (n, a) in d.algorithms.iter().enumerate() {
        if let Some(alg) = super::issuers::algorithm(b, &format!("dpop.algorithms[{n}]"), a) {
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
    }
    if d.leeway_s > 300 {
        b.err("dpop.leeway_s", "must be at most 300");
    }
    let day = 86_400;
    if d.max_age_s > day {
        b.err("dpop.max_age_s", "must be at most 86400");
    }
    if d.nonce_ttl_s > day {
        b.err("dpop.nonce_ttl_s", "must be at most 86400");
    }
    let unit = std::time::Duration::from_secs(1);
    Some(DpopConfig {
        algorithms,
        max_age: b.duration("dpop.max_age_s", d.max_age_s, unit, 1),
        leeway: std::time::Duration::from_secs(d.leeway_s),
        require_nonce: d.require_nonce,
        nonce_ttl: b.duration("dpop.nonce_ttl_s", d.nonce_ttl_s, unit, 1),
        replay_cache_size: b.count(
            "dpop.replay_cache_size",
            d.replay_cache_size,
            1,
            100_000_000,
        ) as u64,
    })
}

/// The client-certificate keys of `[server]`; `tls` says whether the
/// listener terminates TLS. `reserved` holds the header names the gateway
/// manages, which the certificate header may not be.
pub(super) fn client_certs(
    b: &mut Builder,
    s: &RawServer,
    tls: bool,
    reserved: impl Fn(&HeaderName) -> bool,
) -> ClientCerts {
    let mode = match &s.tls_client_auth {
        Keyword::Known(mode) => *mode,
        Keyword::Unknown(other) => {
            b.err(
                "server.tls_client_auth",
                format!("{other:?} is not \"none\" or \"optional\""),
            );
            ClientCertAuth::None
        }
    };
    if mode == ClientCertAuth::Optional && !tls {
        b.err(
            "server.tls_client_auth",
            "\"optional\" asks for a certificate in the TLS handshake, so it needs server.tls_cert and server.tls_key",
        );
    }
    let ca =
        (!s.tls_client_ca.is_empty()).then(|| b.file("server.tls_client_ca", &s.tls_client_ca));
    if ca.is_some() && mode != ClientCertAuth::Optional {
        b.err(
            "server.tls_client_ca",
            "is only used with server.tls_client_auth = \"optional\"",
        );
    }
    let header = match s.client_cert_header.as_str() {
        "" => None,
        text => match HeaderName::from_bytes(text.as_bytes()) {
            Ok(name) if reserved(&name) || name == "dpop" => {
                b.err(
                    "server.client_cert_header",
                    format!("{text:?} is a header the gateway manages"),
                );
                None
            }
            Ok(name) => Some(name),
            Err(_) => {
                b.err(
                    "server.client_cert_header",
                    format!("{text:?} is not a valid header name"),
                );
                None
            }
        },
    };
    ClientCerts {
        tls: mode,
        ca,
        header,
    }
}

/// A route's `token_binding`, checked against `[dpop]` and its `auth`.
pub(super) fn token_binding(
    b: &mut Builder,
    key: &str,
    raw: &Keyword<TokenBinding>,
    dpop_on: bool,
    auth: AuthMode,
) -> TokenBinding {
    let binding = match raw {
        Keyword::Known(binding) => *binding,
        Keyword::Unknown(other) => {
            b.err(
                key,
                format!("{other:?} is not \"any\", \"dpop\", \"mtls\" or \"bound\""),
            );
            return TokenBinding::Any;
        }
    };
    if binding == TokenBinding::Dpop && !dpop_on {
        b.err(key, "\"dpop\" needs a [dpop] table");
    }
    if binding != TokenBinding::Any && auth == AuthMode::None {
        b.err(key, "a route with auth = \"none\" checks no token to bind");
    }
    binding
}
