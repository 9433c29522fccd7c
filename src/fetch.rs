//! Outbound HTTP to identity providers (key sets, discovery, introspection,
//! token requests): one pooled client, a deadline on the whole exchange, a
//! size limit on the body, no redirects followed (a 3xx is a failed fetch),
//! and the gateway's client authentication on form posts ([`ClientAuth`]).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// Why a fetch failed; used for logs and metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("timed out")]
    Timeout,
    #[error("connection failed")]
    Connect,
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("response body too large")]
    TooLarge,
    #[error("response is not JSON")]
    NotJson,
    /// JSON, but not a JWK Set (an object with a `keys` array).
    #[error("response is not a JWK Set")]
    NotKeySet,
    /// A discovery document whose `issuer` is not the configured one.
    #[error("the discovery document names another issuer")]
    IssuerMismatch,
    /// A discovery document without a usable `jwks_uri` (absent, not a
    /// URI, or neither https nor http to a loopback host).
    #[error("the discovery document has no usable jwks_uri")]
    BadDiscovery,
    #[error("request failed")]
    Failed,
}

impl FetchError {
    pub fn label(self) -> &'static str {
        match self {
            FetchError::Timeout => "timeout",
            FetchError::Connect => "connect_error",
            FetchError::Status(_) => "bad_status",
            FetchError::TooLarge => "too_large",
            FetchError::NotJson => "not_json",
            FetchError::NotKeySet => "not_key_set",
            FetchError::IssuerMismatch => "issuer_mismatch",
            FetchError::BadDiscovery => "bad_discovery",
            FetchError::Failed => "error",
        }
    }
}

/// A response read whole (within the limit).
pub struct Fetched {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Fetched {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, FetchError> {
        serde_json::from_slice(&self.body).map_err(|_| FetchError::NotJson)
    }

    /// `Cache-Control: max-age`, if the response has one.
    pub fn max_age(&self) -> Option<Duration> {
        let value = self.headers.get(CACHE_CONTROL)?.to_str().ok()?;
        value.split(',').find_map(|d| {
            let (name, v) = d.trim().split_once('=')?;
            if name.trim().eq_ignore_ascii_case("max-age") {
                v.trim()
                    .trim_matches('"')
                    .parse()
                    .ok()
                    .map(Duration::from_secs)
            } else {
                None
            }
        })
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The gateway's client authentication at an identity provider's endpoint
/// (RFC 6749 section 2.3.1): `client_secret_basic`, HTTP Basic over the id
/// and secret each form-urlencoded first, or `client_secret_post`, both as
/// form fields. Has no `Debug`: it holds the secret.
pub struct ClientAuth {
    /// The whole `Authorization` value, marked sensitive.
    basic: Option<HeaderValue>,
    /// `&client_id=..&client_secret=..`, appended to the form.
    fields: Option<String>,
}

impl ClientAuth {
    pub fn new(basic: bool, client_id: &str, client_secret: &str) -> ClientAuth {
        let (id, secret) = (form_encode(client_id), form_encode(client_secret));
        if !basic {
            return ClientAuth {
                basic: None,
                fields: Some(format!("&client_id={id}&client_secret={secret}")),
            };
        }
        let mut value = HeaderValue::from_str(&format!(
            "Basic {}",
            STANDARD.encode(format!("{id}:{secret}"))
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
        value.set_sensitive(true);
        ClientAuth {
            basic: Some(value),
            fields: None,
        }
    }

    /// A `POST` of `form` (already encoded) to `endpoint`, authenticated,
    /// asking for JSON.
    pub fn form_post(
        &self,
        endpoint: &Uri,
        mut form: String,
    ) -> Result<Request<Full<Bytes>>, FetchError> {
        if let Some(fields) = &self.fields {
            form.push_str(fields);
        }
        let mut req = Request::post(endpoint.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(Full::new(Bytes::from(form)))
            .map_err(|_| FetchError::Failed)?;
        if let Some(basic) = &self.basic {
            req.headers_mut().insert(AUTHORIZATION, basic.clone());
        }
        Ok(req)
    }
}

/// The connector of outbound HTTP/1.1 (http, or https with the webpki
/// roots), shared by the fetcher and span export.
pub fn https_connector() -> Result<HttpsConnector<HttpConnector>, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let tls = crate::tls::client_config(None)?;
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// The pooled client; cheap to clone.
#[derive(Clone)]
pub struct HttpFetcher {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpFetcher {
    pub fn new() -> Result<HttpFetcher, String> {
        let connector = https_connector()?;
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(HttpFetcher { client })
    }

    /// Sends `req` and reads the whole response, all within `deadline`.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
        deadline: Duration,
        limit: usize,
    ) -> Result<Fetched, FetchError> {
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                if e.is_connect() {
                    FetchError::Connect
                } else {
                    FetchError::Failed
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        FetchError::TooLarge
                    } else {
                        FetchError::Failed
                    }
                })?
                .to_bytes();
            Ok(Fetched {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| FetchError::Timeout)?
    }

    /// GET `uri` expecting `200` and a JSON body.
    pub async fn get_json(
        &self,
        uri: &Uri,
        deadline: Duration,
        limit: usize,
    ) -> Result<(serde_json::Value, Fetched), FetchError> {
        let req = Request::get(uri.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .body(Full::new(Bytes::new()))
            .map_err(|_| FetchError::Failed)?;
        let fetched = self.send(req, deadline, limit).await?;
        if fetched.status != StatusCode::OK {
            return Err(FetchError::Status(fetched.status.as_u16()));
        }
        Ok((fetched.json()?, fetched))
    }
}
