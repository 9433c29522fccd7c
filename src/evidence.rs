//! What a request shows about its sender, for sender-constrained tokens
//! (extensions section 9): the target URI a DPoP proof's `htu` must match,
//! as the client saw it, and the client certificate a certificate-bound
//! token must match, from the TLS handshake or a trusted proxy's RFC 9440
//! header.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;

static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The request URI without query: the scheme of the connection (or the
/// first `X-Forwarded-Proto` element from a trusted proxy), the authority
/// from `Host` (`:authority` in h2), and the normalised path. Normalised
/// further by the proof check, like `htu`.
pub fn target_uri(
    tls: bool,
    headers: &HeaderMap,
    peer_trusted: bool,
    host: Option<&HeaderValue>,
    path: &str,
) -> String {
    let forwarded = peer_trusted
        .then(|| headers.get(&X_FORWARDED_PROTO)?.to_str().ok())
        .flatten()
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| v == "http" || v == "https");
    let scheme = forwarded.unwrap_or_else(|| if tls { "https" } else { "http" }.into());
    let host = host.and_then(|h| h.to_str().ok()).unwrap_or("");
    format!("{scheme}://{host}{path}")
}

/// The client certificate's thumbprint: from `header` when the peer is a
/// trusted proxy and sent it, else from this connection's handshake. A
/// header value that is not `:base64(DER):` counts as no certificate.
pub fn client_cert<'a>(
    handshake: Option<&'a str>,
    headers: &HeaderMap,
    header: Option<&HeaderName>,
    peer_trusted: bool,
) -> Option<Cow<'a, str>> {
    if let (Some(name), true) = (header, peer_trusted) {
        if let Some(value) = headers.get(name) {
            return rfc9440_der(value).map(|der| Cow::Owned(crate::tls::cert_thumbprint(&der)));
        }
    }
    handshake.map(Cow::Borrowed)
}

/// RFC 9440 section 2.2: a structured-field byte sequence, `:` base64 `:`.
fn rfc9440_der(value: &HeaderValue) -> Option<Vec<u8>> {
    let text = value.to_str().ok()?.trim();
    let inner = text.strip_prefix(':')?.strip_suffix(':')?;
    STANDARD.decode(inner).ok().filter(|der| !der.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_uri_takes_the_scheme_from_a_trusted_proxy_only() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS, http"));
        let host = HeaderValue::from_static("api.example.com:8080");
        let uri = |tls, h: &HeaderMap, trusted| target_uri(tls, h, trusted, Some(&host), "/a");
        assert_eq!(uri(false, &headers, false), "http://api.example.com:8080/a");
        assert_eq!(uri(false, &headers, true), "https://api.example.com:8080/a");
        assert_eq!(uri(true, &headers, false), "https://api.example.com:8080/a");
        headers.insert("x-forwarded-proto", HeaderValue::from_static("gopher"));
        assert_eq!(uri(false, &headers, true), "http://api.example.com:8080/a");
        assert_eq!(
            uri(true, &HeaderMap::new(), true),
            "https://api.example.com:8080/a"
        );
    }

    #[test]
    fn client_cert_header_counts_only_from_a_trusted_proxy() {
        let name = HeaderName::from_static("client-cert");
        let der = b"not really DER, but bytes";
        let mut headers = HeaderMap::new();
        let value = format!(":{}:", STANDARD.encode(der));
        headers.insert(&name, HeaderValue::from_str(&value).unwrap());
        let from_header = crate::tls::cert_thumbprint(der);
        let got = |hs: Option<&str>, h: &HeaderMap, trusted| {
            client_cert(hs, h, Some(&name), trusted).map(|t| t.into_owned())
        };
        assert_eq!(got(Some("HANDSHAKE"), &headers, true), Some(from_header));
        assert_eq!(
            got(Some("HANDSHAKE"), &headers, false).as_deref(),
            Some("HANDSHAKE")
        );
        assert_eq!(got(None, &headers, false), None);
        assert_eq!(
            client_cert(Some("HANDSHAKE"), &headers, None, true).as_deref(),
            Some("HANDSHAKE")
        );
        for bad in ["abc", ":!!:", "::", &STANDARD.encode(der)] {
            headers.insert(&name, HeaderValue::from_str(bad).unwrap());
            assert_eq!(got(Some("HANDSHAKE"), &headers, true), None, "{bad}");
        }
    }
}
