//! Protected-resource metadata (RFC 9728): the JSON document of each
//! `[resources.NAME]`, built once per snapshot, and the lookup that serves
//! it on the main listener before routing and without authentication
//! (docs/behavior.md, "Protected-resource metadata").

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::Response;
use http_body_util::Full;
use serde_json::{json, Value};

use crate::config::{ClientCertAuth, Config, ResourceConfig, TokenBinding};

/// One resource: its configuration and its metadata document, serialised.
#[derive(Debug)]
pub struct ResourceMetadata {
    pub config: ResourceConfig,
    body: Bytes,
}

/// What the gateway enforces for a resource: the part of the document
/// that comes from `[dpop]`, `[server]` and the resource's routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enforced {
    /// `dpop.algorithms`, when a route of the resource accepts DPoP.
    pub dpop_algs: Option<Vec<String>>,
    /// Every route of the resource (at least one) is `token_binding = "dpop"`.
    pub dpop_required: bool,
    /// `server.tls_client_auth = "optional"`.
    pub tls_bound: bool,
}

impl Enforced {
    /// What `config` enforces for resource `index`.
    pub fn of(config: &Config, index: usize) -> Enforced {
        let bindings: Vec<TokenBinding> = config
            .routes
            .iter()
            .filter(|r| r.resource == Some(index))
            .map(|r| r.token_binding)
            .collect();
        let accepts_dpop = bindings.iter().any(|b| *b != TokenBinding::Mtls);
        Enforced {
            dpop_algs: config
                .dpop
                .as_ref()
                .filter(|_| accepts_dpop)
                .map(|d| d.algorithms.iter().map(|a| a.name().to_string()).collect()),
            dpop_required: !bindings.is_empty()
                && bindings.iter().all(|b| *b == TokenBinding::Dpop),
            tls_bound: config.server.client_certs.tls == ClientCertAuth::Optional,
        }
    }
}

impl ResourceMetadata {
    pub fn new(config: ResourceConfig, enforced: &Enforced) -> ResourceMetadata {
        let body = Bytes::from(document(&config, enforced).to_string());
        ResourceMetadata { config, body }
    }

    /// `200` with the document (hyper leaves the body out for `HEAD`).
    pub fn response(&self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(self.body.clone()));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}

/// The metadata document of RFC 9728 section 2, with the members and
/// defaults of extensions section 10; the DPoP and certificate-binding
/// members say what this gateway enforces for the resource.
fn document(c: &ResourceConfig, enforced: &Enforced) -> Value {
    let mut doc = json!({
        "resource": c.resource,
        "authorization_servers": c.authorization_servers,
        "scopes_supported": c.scopes_supported,
        "bearer_methods_supported": ["header"],
        "dpop_bound_access_tokens_required": enforced.dpop_required,
        "tls_client_certificate_bound_access_tokens": enforced.tls_bound,
    });
    if let Some(algs) = &enforced.dpop_algs {
        doc["dpop_signing_alg_values_supported"] = json!(algs);
    }
    if let Some(name) = &c.resource_name {
        doc["resource_name"] = json!(name);
    }
    if let Some(url) = &c.resource_documentation {
        doc["resource_documentation"] = json!(url);
    }
    doc
}

/// The resource whose metadata URL has this path and query: the one whose
/// host is the request's when several share the path, else the first.
pub fn find<'a>(
    resources: &'a [std::sync::Arc<ResourceMetadata>],
    host: Option<&str>,
    path: &str,
    query: Option<&str>,
) -> Option<&'a ResourceMetadata> {
    let same_target = |r: &&std::sync::Arc<ResourceMetadata>| {
        let wanted = &r.config.metadata_path;
        match (wanted.split_once('?'), query) {
            (Some((p, q)), Some(query)) => p == path && q == query,
            (None, None) => wanted == path,
            _ => false,
        }
    };
    let mut candidates = resources.iter().filter(same_target);
    let first = candidates.next()?;
    let by_host = std::iter::once(first)
        .chain(candidates)
        .find(|r| Some(r.config.host.as_str()) == host);
    Some(by_host.unwrap_or(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, WELL_KNOWN};
    use std::path::Path;
    use std::sync::Arc;

    fn resources(toml: &str) -> Vec<Arc<ResourceMetadata>> {
        let text = format!(
            "[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n\
             [issuers.i]\nissuer = \"https://idp.example.com/\"\njwks_uri = \"https://idp.example.com/jwks\"\naudiences = [\"api\"]\n{toml}"
        );
        let config = Config::from_toml(&text, Path::new("."), Vec::new()).expect("config");
        config
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| Arc::new(ResourceMetadata::new(r.clone(), &Enforced::of(&config, i))))
            .collect()
    }

    #[test]
    fn document_has_the_members_and_defaults_of_section_10() {
        let list = resources(
            "[resources.api]\nresource = \"https://api.example.com\"\n\
             [[routes]]\npath = \"/a/**\"\nupstream = \"a\"\nresource = \"api\"\nscopes = [\"read\"]\nany_scopes = [\"x\", \"read\"]\n\
             [[routes]]\npath = \"/b/**\"\nupstream = \"a\"\nresource = \"api\"\nscopes = [\"write\"]\n\
             [[routes]]\npath = \"/c/**\"\nupstream = \"a\"\nscopes = [\"other\"]\n",
        );
        let doc: Value = serde_json::from_slice(&list[0].body).unwrap();
        assert_eq!(
            doc,
            json!({
                "resource": "https://api.example.com",
                "authorization_servers": ["https://idp.example.com/"],
                "scopes_supported": ["read", "x", "write"],
                "bearer_methods_supported": ["header"],
                "dpop_bound_access_tokens_required": false,
                "tls_client_certificate_bound_access_tokens": false,
            })
        );
        let named = resources(
            "[resources.mcp]\nresource = \"https://mcp.example.com/mcp\"\n\
             authorization_servers = [\"https://login.example.com\"]\nscopes_supported = [\"tools\"]\n\
             resource_name = \"MCP\"\nresource_documentation = \"https://docs.example.com/mcp\"\n",
        );
        let doc: Value = serde_json::from_slice(&named[0].body).unwrap();
        assert_eq!(
            doc["authorization_servers"],
            json!(["https://login.example.com"])
        );
        assert_eq!(doc["scopes_supported"], json!(["tools"]));
        assert_eq!(doc["resource_name"], "MCP");
        assert_eq!(
            doc["resource_documentation"],
            "https://docs.example.com/mcp"
        );
        assert_eq!(
            named[0].config.metadata_url,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
    }

    #[test]
    fn find_matches_path_query_and_prefers_the_request_host() {
        let list = resources(
            "[resources.a]\nresource = \"https://a.example.com\"\n\
             [resources.b]\nresource = \"https://b.example.com\"\n\
             [resources.m]\nresource = \"https://a.example.com/mcp\"\n\
             [resources.q]\nresource = \"https://a.example.com/q?v=1\"\n",
        );
        fn name(
            list: &[Arc<ResourceMetadata>],
            host: Option<&str>,
            path: &str,
            query: Option<&str>,
        ) -> Option<String> {
            find(list, host, path, query).map(|r| r.config.name.clone())
        }
        let w = WELL_KNOWN;
        assert_eq!(
            name(&list, Some("b.example.com"), w, None).as_deref(),
            Some("b")
        );
        assert_eq!(
            name(&list, Some("a.example.com"), w, None).as_deref(),
            Some("a")
        );
        assert_eq!(name(&list, Some("other"), w, None).as_deref(), Some("a"));
        assert_eq!(
            name(&list, None, &format!("{w}/mcp"), None).as_deref(),
            Some("m")
        );
        assert_eq!(
            name(&list, None, &format!("{w}/q"), Some("v=1")).as_deref(),
            Some("q")
        );
        assert_eq!(name(&list, None, &format!("{w}/q"), None).as_deref(), None);
        assert_eq!(
            name(&list, None, &format!("{w}/mcp"), Some("x")).as_deref(),
            None
        );
        assert_eq!(
            name(&list, None, &format!("{w}/nope"), None).as_deref(),
            None
        );
    }
}
