//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): parsing the
//! client's `traceparent` and formatting the one sent upstream. Pure
//! functions; a header that breaks any rule is ignored (section 3.2.2: the
//! vendor restarts the trace), never an error.

use http::{HeaderMap, HeaderName, HeaderValue};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The length of a version `00` `traceparent`: `00-<32>-<16>-<2>`.
const LEN: usize = 55;

/// The `sampled` bit of `trace-flags` (section 3.2.2.5).
pub const SAMPLED: u8 = 0x01;

/// A valid `traceparent`: the caller's trace and span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// Never zero.
    pub trace_id: u128,
    /// The caller's span; never zero.
    pub parent_id: u64,
    pub flags: u8,
}

impl TraceParent {
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The request's `traceparent`: exactly one valid field, else `None`
    /// (two fields cannot be told apart, so neither is trusted).
    pub fn from_headers(headers: &HeaderMap) -> Option<TraceParent> {
        let mut values = headers.get_all(&TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        TraceParent::parse(value.as_bytes())
    }

    /// Section 3.2: version `00` is exactly 55 characters; a later version
    /// (not `ff`) may append `-` and more, which is ignored. Hex is lower
    /// case; neither id may be all zeros.
    pub fn parse(value: &[u8]) -> Option<TraceParent> {
        let version = hex(value.get(0..2)?)? as u8;
        let exact = match version {
            0x00 => value.len() == LEN,
            0xff => false,
            _ => value.len() == LEN || value.get(LEN) == Some(&b'-'),
        };
        if !exact || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        let trace_id = hex(&value[3..35])?;
        let parent_id = hex(&value[36..52])? as u64;
        let flags = hex(&value[53..55])? as u8;
        if trace_id == 0 || parent_id == 0 {
            return None;
        }
        Some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }
}

/// Lower-case hex digits (at most 32) as a number.
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(v))
    })
}

/// The version `00` `traceparent` naming `span_id` in `trace_id`,
/// formatted on the stack and carved (see [`crate::arena`]).
pub fn traceparent(trace_id: u128, span_id: u64, sampled: bool) -> HeaderValue {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let mut put = |at: usize, width: usize, value: u128| {
        for i in 0..width {
            text[at + i] = DIGITS[((value >> (4 * (width - 1 - i))) & 0xf) as usize];
        }
    };
    put(3, 32, trace_id);
    put(36, 16, u128::from(span_id));
    put(53, 2, u128::from(sampled as u8));
    HeaderValue::from_maybe_shared(crate::arena::concat(&[&text]))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_parse_table() {
        let good = Some(TraceParent {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            parent_id: 0x00f067aa0ba902b7,
            flags: 1,
        });
        let unsampled = good.map(|p| TraceParent { flags: 0, ..p });
        let cases: &[(&str, Option<TraceParent>)] = &[
            (VALID, good),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                unsampled,
            ),
            // A later version may carry more fields after a dash.
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz",
                good,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                good,
            ),
            // Version 00 is exactly 55 characters.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                None,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                None,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            // Upper-case hex, zero ids, wrong separators, non-hex.
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                None,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
                None,
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            ("", None),
            ("00", None),
            ("garbage", None),
        ];
        for (header, want) in cases {
            assert_eq!(TraceParent::parse(header.as_bytes()), *want, "{header:?}");
        }
    }

    #[test]
    fn traceparent_from_headers_refuses_two_fields() {
        let mut headers = HeaderMap::new();
        headers.append(&TRACEPARENT, HeaderValue::from_static(VALID));
        assert!(TraceParent::from_headers(&headers).is_some());
        headers.append(&TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(TraceParent::from_headers(&headers), None);
    }

    #[test]
    fn traceparent_formats_what_parse_reads() {
        let value = traceparent(0x4bf92f3577b34da6a3ce929d0e0e4736, 0xf067aa0ba902b7, true);
        assert_eq!(value, VALID);
        let value = traceparent(1, 2, false);
        assert_eq!(
            value,
            "00-00000000000000000000000000000001-0000000000000002-00"
        );
        let back = TraceParent::parse(value.as_bytes()).unwrap();
        assert_eq!((back.trace_id, back.parent_id, back.flags), (1, 2, 0));
    }
}
