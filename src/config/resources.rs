//! `[resources.NAME]` → [`ResourceConfig`] (RFC 9728): the rules of the
//! resource identifier, its metadata URL derived as section 3.1 says, and
//! the defaults that come from the issuers and the routes.

use http::Uri;
use std::collections::BTreeMap;

use super::builder::Builder;
use super::raw::RawResource;
use super::{IssuerConfig, ResourceConfig, RouteConfig};

/// The well-known suffix of RFC 9728 section 3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

pub(super) fn resources(
    b: &mut Builder,
    raw: &BTreeMap<String, RawResource>,
    issuers: &[IssuerConfig],
    routes: &[RouteConfig],
) -> Vec<ResourceConfig> {
    let built: Vec<ResourceConfig> = raw
        .iter()
        .enumerate()
        .map(|(index, (name, r))| resource(b, index, name, r, issuers, routes))
        .collect();
    for (i, r) in built.iter().enumerate() {
        let clash = built[..i]
            .iter()
            .any(|e| e.metadata_url.eq_ignore_ascii_case(&r.metadata_url) && !r.host.is_empty());
        if clash {
            b.err(
                format!("resources.{}.resource", r.name),
                "another resource has the same identifier, so the same metadata URL",
            );
        }
    }
    built
}

fn resource(
    b: &mut Builder,
    index: usize,
    name: &str,
    r: &RawResource,
    issuers: &[IssuerConfig],
    routes: &[RouteConfig],
) -> ResourceConfig {
    let k = |field: &str| format!("resources.{name}.{field}");
    let (host, metadata_path, metadata_url) = match identifier(&r.resource) {
        Ok(parts) => parts,
        Err(reason) => {
            b.err(k("resource"), format!("{:?} {reason}", r.resource));
            Default::default()
        }
    };
    for (i, server) in r.authorization_servers.iter().enumerate() {
        if server.is_empty() {
            b.err(
                format!("{}[{i}]", k("authorization_servers")),
                "must not be empty",
            );
        }
    }
    let authorization_servers = match r.authorization_servers.is_empty() {
        true => issuers.iter().map(|i| i.issuer.clone()).collect(),
        false => r.authorization_servers.clone(),
    };
    let scopes_supported = match r.scopes_supported.is_empty() {
        true => route_scopes(index, routes),
        false => r.scopes_supported.clone(),
    };
    let documentation =
        (!r.resource_documentation.is_empty()).then(|| r.resource_documentation.clone());
    if let Some(url) = &documentation {
        let ok = url.parse::<Uri>().is_ok_and(|u| {
            matches!(u.scheme_str(), Some("https" | "http")) && u.authority().is_some()
        });
        if !ok {
            b.err(
                k("resource_documentation"),
                format!("{url:?} is not an http or https URL"),
            );
        }
    }
    ResourceConfig {
        name: name.to_string(),
        resource: r.resource.clone(),
        metadata_path,
        metadata_url,
        host,
        authorization_servers,
        scopes_supported,
        resource_name: (!r.resource_name.is_empty()).then(|| r.resource_name.clone()),
        resource_documentation: documentation,
    }
}

/// `(host, metadata path, metadata URL)` of a resource identifier: an https
/// URL with a host, no user info and no fragment. RFC 9728 section 3.1: the
/// well-known suffix goes between the authority and the path (a terminating
/// `/` removed), the query stays at the end.
fn identifier(resource: &str) -> Result<(String, String, String), &'static str> {
    if resource.contains('#') {
        return Err("has a fragment; a resource identifier has none");
    }
    let uri: Uri = resource.parse().map_err(|_| "is not a URL")?;
    if uri.scheme_str() != Some("https") {
        return Err("is not an https URL");
    }
    let authority = uri.authority().ok_or("is not an https URL")?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err("must name a host, without user info");
    }
    let path = uri.path().trim_end_matches('/');
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let metadata_path = format!("{WELL_KNOWN}{path}{query}");
    let metadata_url = format!("https://{}{metadata_path}", authority.as_str());
    Ok((
        authority.host().to_ascii_lowercase(),
        metadata_path,
        metadata_url,
    ))
}

/// The scopes and any-scopes of the routes protecting resource `index`,
/// each once, in file order.
fn route_scopes(index: usize, routes: &[RouteConfig]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let named = routes.iter().filter(|r| r.resource == Some(index));
    for scope in named.flat_map(|r| r.scopes.iter().chain(&r.any_scopes)) {
        if !out.contains(scope) {
            out.push(scope.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_table_follows_rfc_9728_section_3_1() {
        let w = WELL_KNOWN;
        type Want = Result<(&'static str, String), &'static str>;
        let cases: Vec<(&str, Want)> = vec![
            (
                "https://api.example.com",
                Ok(("api.example.com", w.to_string())),
            ),
            (
                "https://api.example.com/",
                Ok(("api.example.com", w.to_string())),
            ),
            (
                "https://mcp.example.com/mcp",
                Ok(("mcp.example.com", format!("{w}/mcp"))),
            ),
            (
                "https://mcp.example.com/a/b/",
                Ok(("mcp.example.com", format!("{w}/a/b"))),
            ),
            (
                "https://API.Example.com:8443/x?t=1",
                Ok(("api.example.com", format!("{w}/x?t=1"))),
            ),
            ("http://api.example.com", Err("is not an https URL")),
            ("api.example.com", Err("is not an https URL")),
            (
                "https://api.example.com/#top",
                Err("has a fragment; a resource identifier has none"),
            ),
            (
                "https://u@api.example.com",
                Err("must name a host, without user info"),
            ),
            ("", Err("is not a URL")),
        ];
        for (resource, want) in cases {
            let got = identifier(resource).map(|(host, path, _)| (host, path));
            let want = want.map(|(h, p)| (h.to_string(), p));
            assert_eq!(got, want, "{resource}");
        }
        let (_, _, url) = identifier("https://API.Example.com:8443/x").unwrap();
        assert_eq!(url, format!("https://API.Example.com:8443{w}/x"));
    }
}
