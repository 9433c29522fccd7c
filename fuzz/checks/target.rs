//! Request-target normalisation: the path and host rules, checked against
//! an independent percent-decoder.

use tokengate::target::{normalize_host, normalize_path};

/// Input: the whole input, and each of its lines, as a path and as a host.
pub fn check_target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_path(&text);
    check_host(&text);
    if text.contains('\n') {
        for line in text.split('\n') {
            check_path(line);
            check_host(line);
        }
    }
}

pub(super) fn unhex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decodes; `None` for a broken escape.
pub(super) fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = unhex(*b.get(i + 1)?)?;
            let l = unhex(*b.get(i + 2)?)?;
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

pub(super) fn check_path(raw: &str) {
    let Ok(out) = normalize_path(raw) else {
        return;
    };
    let bytes = out.as_bytes();
    assert_eq!(bytes.first(), Some(&b'/'));
    for &b in bytes {
        assert!(
            (0x20..0x7f).contains(&b) && !matches!(b, b'\\' | b';' | b'#'),
            "byte {b:#04x} in normalised path {out:?}"
        );
    }
    let upper = out.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00"] {
        assert!(!upper.contains(bad), "{bad} in normalised path {out:?}");
    }
    assert!(!out.contains("//"), "empty segment in {out:?}");
    // Escapes left in place are upper-case and never of an unreserved or
    // control byte.
    let mut i = 0;
    while let Some(p) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + p;
        let esc = &bytes[at + 1..at + 3];
        assert!(esc
            .iter()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)));
        let v = unhex(esc[0]).unwrap_or(0) * 16 + unhex(esc[1]).unwrap_or(0);
        assert!(!(v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~')));
        assert!(v >= 0x20 && v != 0x7f);
        i = at + 3;
    }
    // Decoded, the path has the same separators, and no dot segment.
    let decoded = match percent_decode(&out) {
        Some(d) => d,
        None => panic!("broken escape in normalised path {out:?}"),
    };
    assert_eq!(
        decoded.iter().filter(|&&b| b == b'/').count(),
        bytes.iter().filter(|&&b| b == b'/').count()
    );
    for seg in decoded[1..].split(|&b| b == b'/') {
        assert!(seg != b"." && seg != b"..", "dot segment in {out:?}");
    }
    // Same meaning as the input, and idempotent.
    assert_eq!(percent_decode(raw).as_deref(), Some(&decoded[..]));
    assert_eq!(normalize_path(&out).as_deref(), Ok(&*out), "not idempotent");
}

pub(super) fn check_host(raw: &str) {
    let Ok(host) = normalize_host(raw) else {
        return;
    };
    assert!(!host.is_empty());
    assert!(!host.ends_with('.'), "trailing dot kept in {host:?}");
    assert!(
        host.bytes().all(|b| b.is_ascii_lowercase()
            || b.is_ascii_digit()
            || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')),
        "normalised host {host:?}"
    );
    assert_eq!(
        normalize_host(&host).as_deref(),
        Ok(&*host),
        "not idempotent"
    );
    assert!(
        raw.to_ascii_lowercase().starts_with(&*host),
        "host {host:?} is not the start of {raw:?}"
    );
}
