//! `application/x-www-form-urlencoded` bodies of the token and
//! introspection endpoints: decoding, and refusing a repeated parameter
//! (RFC 6749 section 3.1).

use std::collections::HashMap;

/// Decodes one `application/x-www-form-urlencoded` component.
pub(super) fn form_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = value
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Parses a form body; a parameter given twice is an error (RFC 6749 3.1).
pub(super) fn parse_form(body: &[u8]) -> Option<HashMap<String, String>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut form = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if form.insert(form_decode(k)?, form_decode(v)?).is_some() {
            return None;
        }
    }
    Some(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_form_decodes_and_refuses_repeats() {
        let f = parse_form(b"a=1+2&b=%41%2B&c=").unwrap();
        assert_eq!(f["a"], "1 2");
        assert_eq!(f["b"], "A+");
        assert_eq!(f["c"], "");
        assert!(parse_form(b"a=1&a=2").is_none());
        assert!(parse_form(b"a=%zz").is_none());
        assert!(parse_form(b"a=%+1").is_none());
    }
}
