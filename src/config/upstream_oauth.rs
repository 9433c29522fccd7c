//! The `[upstreams.NAME.oauth]` table (extensions section 14): how the
//! gateway gets the token it sends an upstream instead of the caller's.
//! Checked once here; the token client in [`crate::upstream_auth`] takes
//! the typed [`UpstreamOAuth`] as it is.

use http::Uri;
use serde::Deserialize;
use std::time::Duration;

use super::builder::Builder;
use super::raw::{Keyword, RawUpstreamOAuth};
use super::{ClientAuthMethod, Secret};

/// `upstreams.NAME.oauth.grant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// The gateway's own token (RFC 6749 section 4.4), one for every caller.
    ClientCredentials,
    /// A token exchanged for each caller's token (RFC 8693).
    TokenExchange,
}

/// `[upstreams.NAME.oauth]` with every default resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamOAuth {
    pub grant: Grant,
    pub token_endpoint: Uri,
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_method: ClientAuthMethod,
    /// The `scope` parameter; `None`: not sent.
    pub scope: Option<String>,
    /// The RFC 8707 `resource` parameter; `None`: not sent.
    pub resource: Option<String>,
    /// Renewal starts this long before the token's `expires_in` runs out.
    pub refresh_skew: Duration,
    pub timeout: Duration,
}

/// `[upstreams.NAME.oauth]` → [`UpstreamOAuth`]; `None` when the table is
/// absent.
pub(super) fn oauth(
    b: &mut Builder,
    upstream: &str,
    raw: Option<&RawUpstreamOAuth>,
) -> Option<UpstreamOAuth> {
    let r = raw?;
    let k = |field: &str| format!("upstreams.{upstream}.oauth.{field}");
    let grant = match &r.grant {
        Some(Keyword::Known(grant)) => *grant,
        Some(Keyword::Unknown(other)) => {
            b.err(
                k("grant"),
                format!("{other:?} is not \"client_credentials\" or \"token_exchange\""),
            );
            Grant::ClientCredentials
        }
        None => {
            b.err(
                k("grant"),
                "is required: \"client_credentials\" or \"token_exchange\"",
            );
            Grant::ClientCredentials
        }
    };
    let token_endpoint = b.required_fetch_url(&k("token_endpoint"), &r.token_endpoint);
    let auth_method = super::issuers::auth_method(b, &k("auth_method"), &r.auth_method);
    if !r.scope.is_empty() && !r.scope.split(' ').all(scope_token) {
        b.err(
            k("scope"),
            "must be RFC 6749 scope tokens separated by single spaces",
        );
    }
    if !r.resource.is_empty() && !absolute_uri(&r.resource) {
        b.err(k("resource"), "must be an absolute URI without a fragment");
    }
    if r.refresh_skew_s > 86_400 {
        b.err(k("refresh_skew_s"), "must be at most 86400");
    }
    if r.timeout_ms > 60_000 {
        b.err(k("timeout_ms"), "must be at most 60000");
    }
    let text = |value: &str| (!value.is_empty()).then(|| value.to_string());
    Some(UpstreamOAuth {
        grant,
        token_endpoint,
        client_id: b.required(&k("client_id"), &r.client_id).to_string(),
        client_secret: Secret::new(
            b.required(&k("client_secret"), &r.client_secret)
                .to_string(),
        ),
        auth_method,
        scope: text(&r.scope),
        resource: text(&r.resource),
        refresh_skew: b.secs(&k("refresh_skew_s"), r.refresh_skew_s, 0),
        timeout: b.ms(&k("timeout_ms"), r.timeout_ms),
    })
}

/// RFC 6749 section 3.3: `1*( %x21 / %x23-5B / %x5D-7E )`.
fn scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c == b'!' || (0x23..=0x5b).contains(&c) || (0x5d..=0x7e).contains(&c))
}

/// RFC 8707 section 2: an absolute URI, no fragment.
fn absolute_uri(value: &str) -> bool {
    !value.contains('#')
        && value
            .parse::<Uri>()
            .is_ok_and(|uri| uri.scheme().is_some() && uri.host().is_some())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn load(oauth: &str) -> Result<Config, String> {
        let text = format!(
            "[upstreams.billing]\nurl = \"http://127.0.0.1:1\"\n[upstreams.billing.oauth]\n{oauth}\n"
        );
        Config::from_toml(&text, Path::new("."), Vec::new()).map_err(|e| e.to_string())
    }

    const MINIMAL: &str = "grant = \"client_credentials\"\ntoken_endpoint = \"https://idp.example.com/token\"\nclient_id = \"gw\"\nclient_secret = \"s3cret\"";

    #[test]
    fn oauth_minimal_table_gets_its_defaults() {
        let c = load(MINIMAL).unwrap();
        let o = c.upstreams[0].oauth.as_ref().unwrap();
        assert_eq!(o.grant, super::Grant::ClientCredentials);
        assert_eq!(o.refresh_skew.as_secs(), 30);
        assert_eq!(o.timeout.as_millis(), 2000);
        assert_eq!((o.scope.as_deref(), o.resource.as_deref()), (None, None));
        assert!(!format!("{c:?}").contains("s3cret"), "the secret in Debug");
    }

    /// Each broken key is reported under its own path.
    #[test]
    fn oauth_error_table() {
        let cases = [
            ("grant = \"password\"", "upstreams.billing.oauth.grant"),
            (
                "token_endpoint = \"http://idp.example.com/token\"",
                "upstreams.billing.oauth.token_endpoint",
            ),
            (
                "client_secret = \"\"",
                "upstreams.billing.oauth.client_secret",
            ),
            (
                "auth_method = \"private_key_jwt\"",
                "upstreams.billing.oauth.auth_method",
            ),
            ("scope = \"a  b\"", "upstreams.billing.oauth.scope"),
            ("scope = \"a\\\"b\"", "upstreams.billing.oauth.scope"),
            ("resource = \"api\"", "upstreams.billing.oauth.resource"),
            (
                "resource = \"https://api.test/#x\"",
                "upstreams.billing.oauth.resource",
            ),
            (
                "refresh_skew_s = 86401",
                "upstreams.billing.oauth.refresh_skew_s",
            ),
            ("timeout_ms = 0", "upstreams.billing.oauth.timeout_ms"),
            ("timeout_ms = 60001", "upstreams.billing.oauth.timeout_ms"),
        ];
        for (line, key) in cases {
            let key_name = line.split(' ').next().unwrap();
            let kept: Vec<&str> = MINIMAL
                .lines()
                .filter(|l| !l.starts_with(key_name))
                .collect();
            let text = format!("{}\n{line}", kept.join("\n"));
            let err = load(&text).expect_err(line);
            assert!(err.starts_with(&format!("{key}: ")), "{line}: {err}");
        }
        let missing = load("").expect_err("empty table");
        for key in ["grant", "token_endpoint", "client_id", "client_secret"] {
            assert!(missing.contains(&format!("oauth.{key}: ")), "{missing}");
        }
    }

    #[test]
    fn oauth_secret_comes_from_the_environment_override() {
        let text = format!(
            "[upstreams.billing]\nurl = \"http://127.0.0.1:1\"\n[upstreams.billing.oauth]\n{}",
            MINIMAL.replace("client_secret = \"s3cret\"", "")
        );
        let env = vec![(
            "TOKENGATE_UPSTREAMS__BILLING__OAUTH__CLIENT_SECRET".to_string(),
            "0123".to_string(),
        )];
        let c = Config::from_toml(&text, Path::new("."), env).unwrap();
        let o = c.upstreams[0].oauth.as_ref().unwrap();
        assert_eq!(o.client_secret.expose(), "0123");
    }
}
