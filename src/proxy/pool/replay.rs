//! Which requests may be sent again after a reused connection failed
//! under them, and the copy of their head that makes it possible.

use http::{HeaderMap, Method, Request, Uri, Version};
use http_body::Body;
use http_body_util::{Either, Empty};

use super::WireBody;

/// Whether a request may be sent again after a connection failed under it
/// without an answer: idempotent (RFC 9110 section 9.2.2) and no body to
/// replay.
pub(super) fn replayable(method: &Method, bodiless: bool) -> bool {
    bodiless
        && matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        )
}

/// The head of a request that may be sent again.
pub(super) struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl Replay {
    pub(super) fn of(req: &Request<WireBody>) -> Option<Replay> {
        replayable(req.method(), req.body().is_end_stream()).then(|| Replay {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
        })
    }

    pub(super) fn into_request(self) -> Request<WireBody> {
        let mut req = Request::new(Either::Right(Empty::new()));
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers;
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayable_table() {
        let cases = [
            (Method::GET, true, true),
            (Method::HEAD, true, true),
            (Method::OPTIONS, true, true),
            (Method::PUT, true, true),
            (Method::DELETE, true, true),
            // A body that was sent cannot be sent again.
            (Method::GET, false, false),
            (Method::PUT, false, false),
            (Method::DELETE, false, false),
            // Not idempotent (RFC 9110 section 9.2.2).
            (Method::POST, true, false),
            (Method::PATCH, true, false),
            (Method::POST, false, false),
            (Method::CONNECT, true, false),
        ];
        for (method, bodiless, want) in cases {
            assert_eq!(
                replayable(&method, bodiless),
                want,
                "{method} bodiless={bodiless}"
            );
        }
    }
}
