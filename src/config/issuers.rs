//! The `[issuers.NAME]` and `[issuers.NAME.introspection]` tables: key
//! sources, the algorithm allow-list (never `none` or HS*), audiences,
//! profiles, durations and introspection client settings. An issuer gets
//! [`JwtRules`] only with a key source and [`IntrospectionRules`] only with
//! an `[introspection]` table, and needs one of the two.

use std::time::Duration;

use super::builder::Builder;
use super::raw::{Keyword, RawIntrospection, RawIssuer};
use super::*;

pub(super) fn algorithm(b: &mut Builder, key: &str, alg: &Keyword<Algorithm>) -> Option<Algorithm> {
    let name = match alg {
        Keyword::Known(alg) => return Some(*alg),
        Keyword::Unknown(name) => name,
    };
    let reason = if name.eq_ignore_ascii_case("none") {
        "\"none\" is never accepted".to_string()
    } else if name.to_ascii_uppercase().starts_with("HS") {
        format!("{name:?}: symmetric (HS*) algorithms are never accepted")
    } else {
        let all: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        format!("{name:?} is not supported (supported: {})", all.join(", "))
    };
    b.err(key, reason);
    None
}

pub(super) fn issuer(b: &mut Builder, name: &str, i: &RawIssuer) -> IssuerConfig {
    let k = |field: &str| format!("issuers.{name}.{field}");
    let issuer = b.required(&k("issuer"), &i.issuer).to_string();
    let key_source = match (&i.jwks_uri, &i.jwks_file, i.discovery) {
        (Some(uri), None, false) => Some(KeySource::Url(b.fetch_url(&k("jwks_uri"), uri))),
        (None, Some(file), false) => Some(KeySource::File(b.file(&k("jwks_file"), file))),
        (None, None, true) => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            Some(KeySource::Discovery(b.fetch_url(&k("issuer"), &url)))
        }
        (None, None, false) if i.introspection.is_some() => None,
        (None, None, false) => {
            b.err(
                k("jwks_uri"),
                "one key source is required: jwks_uri, jwks_file or discovery = true",
            );
            None
        }
        _ => {
            b.err(
                k("jwks_uri"),
                "exactly one of jwks_uri, jwks_file and discovery = true may be set",
            );
            None
        }
    };
    if i.audiences.is_empty() || i.audiences.iter().any(String::is_empty) {
        b.err(
            k("audiences"),
            "must be a non-empty list of non-empty strings",
        );
    }
    if i.algorithms.is_empty() {
        b.err(k("algorithms"), "must not be empty");
    }
    let algorithms = i
        .algorithms
        .iter()
        .enumerate()
        .filter_map(|(n, a)| algorithm(b, &format!("{}[{n}]", k("algorithms")), a))
        .collect();
    if i.leeway_s > 300 {
        b.err(k("leeway_s"), "must be at most 300");
    }
    let profile = match &i.profile {
        Keyword::Known(profile) => *profile,
        Keyword::Unknown(other) => {
            b.err(
                k("profile"),
                format!("{other:?} is not \"generic\" or \"rfc9068\""),
            );
            Profile::Generic
        }
    };
    if i.scope_claims.is_empty() || i.scope_claims.iter().any(String::is_empty) {
        b.err(k("scope_claims"), "must be a non-empty list of claim names");
    }
    if i.required_claims.iter().any(String::is_empty) {
        b.err(k("required_claims"), "claim names must not be empty");
    }
    // The JWT settings are checked whether or not a key source is set, so
    // a mistake in them is reported even on an introspection-only issuer.
    let jwks_refresh = b.secs(&k("jwks_refresh_s"), i.jwks_refresh_s, 1);
    let jwks_miss_cooldown = b.secs(&k("jwks_miss_cooldown_s"), i.jwks_miss_cooldown_s, 1);
    let jwks_max_stale = b.secs(&k("jwks_max_stale_s"), i.jwks_max_stale_s, 0);
    let jwks_timeout = b.ms(&k("jwks_timeout_ms"), i.jwks_timeout_ms);
    let jwt = key_source.map(|key_source| JwtRules {
        key_source,
        algorithms,
        profile,
        required_claims: i.required_claims.clone(),
        jwks_refresh,
        jwks_miss_cooldown,
        jwks_max_stale,
        jwks_timeout,
    });
    IssuerConfig {
        name: name.to_string(),
        issuer,
        audiences: i.audiences.clone(),
        leeway: Duration::from_secs(i.leeway_s),
        scope_claims: i.scope_claims.clone(),
        jwt,
        introspection: i.introspection.as_ref().map(|r| introspection(b, name, r)),
    }
}

fn introspection(b: &mut Builder, name: &str, r: &RawIntrospection) -> IntrospectionRules {
    let k = |field: &str| format!("issuers.{name}.introspection.{field}");
    let endpoint = b.required_fetch_url(&k("endpoint"), &r.endpoint);
    let auth_method = auth_method(b, &k("auth_method"), &r.auth_method);
    IntrospectionRules {
        endpoint,
        client_id: b.required(&k("client_id"), &r.client_id).to_string(),
        client_secret: Secret::new(
            b.required(&k("client_secret"), &r.client_secret)
                .to_string(),
        ),
        auth_method,
        cache_ttl: b.secs(&k("cache_ttl_s"), r.cache_ttl_s, 0),
        negative_cache_ttl: b.secs(&k("negative_cache_ttl_s"), r.negative_cache_ttl_s, 0),
        timeout: b.ms(&k("timeout_ms"), r.timeout_ms),
        max_concurrent: b.count(&k("max_concurrent"), r.max_concurrent, 1, 1 << 20),
    }
}

/// A client authentication method at an identity provider's endpoint.
pub(super) fn auth_method(
    b: &mut Builder,
    key: &str,
    method: &Keyword<ClientAuthMethod>,
) -> ClientAuthMethod {
    match method {
        Keyword::Known(method) => *method,
        Keyword::Unknown(other) => {
            b.err(
                key,
                format!("{other:?} is not client_secret_basic or client_secret_post"),
            );
            ClientAuthMethod::ClientSecretBasic
        }
    }
}
