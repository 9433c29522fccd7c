//! Request-target normalisation (docs/behavior.md section 7).
//!
//! The gateway checks exactly the path it forwards: percent-encoded
//! unreserved characters (RFC 3986 section 2.3) are decoded, other escapes are
//! kept with upper-case hex, and anything that a backend could read as a
//! different path than the one matched is refused: dot segments (raw or
//! encoded), empty segments, encoded `/`, `\` or NUL, raw `\` or `;`, control
//! and non-ASCII bytes, broken escapes. Encoded control bytes are refused as
//! well. A trailing `/` is kept (it is a distinct path, not an empty segment
//! in the middle). Pure functions; no I/O.

use std::borrow::Cow;

/// Why a request target was refused (answered 400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("request target is not in origin form")]
    NotOriginForm,
    #[error("request target authority does not match Host")]
    AuthorityMismatch,
    #[error("invalid Host header")]
    BadHost,
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    #[error("path contains a dot segment")]
    DotSegment,
    #[error("path contains an empty segment")]
    EmptySegment,
    #[error("path contains an encoded separator or NUL")]
    EncodedSeparator,
    #[error("path contains a forbidden character")]
    ForbiddenChar,
    #[error("path contains a control or non-ASCII byte")]
    ControlOrNonAscii,
    #[error("path contains an invalid percent-escape")]
    InvalidEscape,
}

impl TargetError {
    /// The fixed description sent to the client.
    pub fn description(self) -> &'static str {
        match self {
            TargetError::NotOriginForm => "request target is not in origin form",
            TargetError::AuthorityMismatch => "request target authority does not match Host",
            TargetError::BadHost => "invalid Host header",
            TargetError::MissingHost => "an HTTP/1.1 request must carry a Host header",
            TargetError::DotSegment => "path contains a dot segment",
            TargetError::EmptySegment => "path contains an empty segment",
            TargetError::EncodedSeparator => "path contains an encoded separator or NUL",
            TargetError::ForbiddenChar => "path contains a forbidden character",
            TargetError::ControlOrNonAscii => "path contains a control or non-ASCII byte",
            TargetError::InvalidEscape => "path contains an invalid percent-escape",
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalises an origin-form path, or says why it is refused.
/// Borrows when the path needs no change (the common case).
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, TargetError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(TargetError::NotOriginForm);
    }
    let mut out: Option<String> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (h, l) = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&h), Some(&l)) => (h, l),
                    _ => return Err(TargetError::InvalidEscape),
                };
                let v = match (hex(h), hex(l)) {
                    (Some(h), Some(l)) => h * 16 + l,
                    _ => return Err(TargetError::InvalidEscape),
                };
                if matches!(v, b'/' | b'\\' | 0) {
                    return Err(TargetError::EncodedSeparator);
                }
                if v < 0x20 || v == 0x7f {
                    return Err(TargetError::ControlOrNonAscii);
                }
                let buf = out.get_or_insert_with(|| raw[..i].to_string());
                if is_unreserved(v) {
                    buf.push(v as char);
                } else {
                    buf.push('%');
                    buf.push(h.to_ascii_uppercase() as char);
                    buf.push(l.to_ascii_uppercase() as char);
                }
                i += 3;
                continue;
            }
            b'\\' | b';' | b'#' => return Err(TargetError::ForbiddenChar),
            0..=0x1f | 0x7f..=0xff => return Err(TargetError::ControlOrNonAscii),
            _ => {
                if let Some(buf) = out.as_mut() {
                    buf.push(b as char);
                }
            }
        }
        i += 1;
    }
    let path = match out {
        Some(s) => Cow::Owned(s),
        None => Cow::Borrowed(raw),
    };
    check_segments(&path)?;
    Ok(path)
}

fn check_segments(path: &str) -> Result<(), TargetError> {
    let rest = &path[1..];
    if rest.is_empty() {
        return Ok(());
    }
    let mut segs = rest.split('/').peekable();
    while let Some(seg) = segs.next() {
        match seg {
            "." | ".." => return Err(TargetError::DotSegment),
            "" if segs.peek().is_some() => return Err(TargetError::EmptySegment),
            _ => {}
        }
    }
    if rest.starts_with('/') {
        return Err(TargetError::EmptySegment);
    }
    Ok(())
}

/// Lower-cases a host, removes its port and the one trailing dot of a fully
/// qualified name (`api.example.com.` is `api.example.com`, RFC 1034 section
/// 3.1), so that routes match however the client spelled it; refuses what
/// cannot be a host (RFC 3986 section 3.2.2: `:` only inside an IP literal,
/// a port of digits only; no empty name, no second trailing dot), so that no
/// `Host` slips past a host route as an unmatched name.
pub fn normalize_host(raw: &str) -> Result<Cow<'_, str>, TargetError> {
    let host_end = if raw.starts_with('[') {
        raw.find(']').ok_or(TargetError::BadHost)? + 1
    } else {
        raw.find(':').unwrap_or(raw.len())
    };
    let (host, port) = raw.split_at(host_end);
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    let host = match host.strip_prefix('[') {
        Some(_) => host,
        None => host.strip_suffix('.').unwrap_or(host),
    };
    let inner = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ok = port_ok
        && !inner.is_empty()
        && !inner.ends_with('.')
        && inner.bytes().all(|b| {
            // A `:` can only be inside brackets: the host ends at the first one.
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':')
        });
    if !ok {
        Err(TargetError::BadHost)
    } else if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Ok(Cow::Borrowed(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_path_accepts_and_normalises() {
        let cases = [
            ("/", "/"),
            ("/orders/42", "/orders/42"),
            ("/orders/", "/orders/"),
            ("/%6Frders", "/orders"),
            ("/a%2Db%7e", "/a-b~"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/a%3fb", "/a%3Fb"),
            ("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="),
            ("/...", "/..."),
            ("/a.b", "/a.b"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn normalize_path_refuses_the_section_5_table() {
        use TargetError::*;
        let cases = [
            ("*", NotOriginForm),
            ("orders", NotOriginForm),
            ("", NotOriginForm),
            ("/a/./b", DotSegment),
            ("/a/../b", DotSegment),
            ("/..", DotSegment),
            ("/.", DotSegment),
            ("/a/%2e%2e/b", DotSegment),
            ("/a/%2E/b", DotSegment),
            ("/a/.%2e/b", DotSegment),
            ("/a/%2e./b", DotSegment),
            ("//a", EmptySegment),
            ("/a//b", EmptySegment),
            ("/a/b//", EmptySegment),
            ("/a%2Fb", EncodedSeparator),
            ("/a%2fb", EncodedSeparator),
            ("/a%5Cb", EncodedSeparator),
            ("/a%5cb", EncodedSeparator),
            ("/a%00b", EncodedSeparator),
            ("/a\\b", ForbiddenChar),
            ("/a;b", ForbiddenChar),
            ("/a;jsessionid=1", ForbiddenChar),
            ("/a#frag", ForbiddenChar),
            ("/a\x01b", ControlOrNonAscii),
            ("/a\x7fb", ControlOrNonAscii),
            ("/caf\u{e9}", ControlOrNonAscii),
            ("/a%0ab", ControlOrNonAscii),
            ("/a%7Fb", ControlOrNonAscii),
            ("/a%", InvalidEscape),
            ("/a%2", InvalidEscape),
            ("/a%zz", InvalidEscape),
            ("/a%g1", InvalidEscape),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn normalize_path_unchanged_path_is_borrowed() {
        assert!(matches!(normalize_path("/a/b"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn normalize_host_strips_port_and_case() {
        assert_eq!(
            normalize_host("API.Example.com:8443").unwrap(),
            "api.example.com"
        );
        assert_eq!(normalize_host("[::1]:80").unwrap(), "[::1]");
        assert_eq!(normalize_host("127.0.0.1").unwrap(), "127.0.0.1");
        assert!(normalize_host("a b").is_err());
        assert!(normalize_host("").is_err());
    }

    #[test]
    fn normalize_host_borrows_a_host_already_in_lower_case() {
        assert!(matches!(
            normalize_host("api.example.com:8443"),
            Ok(Cow::Borrowed("api.example.com"))
        ));
        assert!(matches!(
            normalize_host("[::1]:80"),
            Ok(Cow::Borrowed("[::1]"))
        ));
        assert!(
            matches!(normalize_host("API.example.com"), Ok(Cow::Owned(h)) if h == "api.example.com")
        );
    }

    #[test]
    fn normalize_host_drops_one_trailing_dot() {
        for (raw, want) in [
            ("secure.local.", Ok("secure.local")),
            ("Secure.Local.:8443", Ok("secure.local")),
            ("secure.local", Ok("secure.local")),
            ("secure.local..", Err(TargetError::BadHost)),
            (".", Err(TargetError::BadHost)),
            (".:80", Err(TargetError::BadHost)),
        ] {
            assert_eq!(
                normalize_host(raw).as_deref().map_err(|e| *e),
                want,
                "{raw}"
            );
        }
    }

    #[test]
    fn normalize_host_refuses_what_cannot_be_a_host() {
        let refused = [
            "a:b:c",
            "secure.local:1:443",
            "secure.local:x",
            "::1",
            "[::1]x",
            "[::1]:8o",
            "[]",
            "a[b]",
            "[::1]]",
            ":80",
        ];
        for raw in refused {
            assert_eq!(normalize_host(raw), Err(TargetError::BadHost), "{raw:?}");
        }
        assert_eq!(
            normalize_host("Secure.Local:").as_deref(),
            Ok("secure.local")
        );
        assert_eq!(normalize_host("[FE80::1]:443").as_deref(), Ok("[fe80::1]"));
    }
}
