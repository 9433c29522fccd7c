//! The access log: one event per request (route, status, outcome, latency,
//! subject or client id, request id, peer), under the target
//! `tokengate::access` at level INFO, so `RUST_LOG` turns it on and off like
//! every other event.
//!
//! With JSON logs (`--log-format json`, the default when stderr is not a
//! terminal) this module writes the line itself, the way nginx's buffered
//! `access_log` does:
//! - the line is formatted straight into a per-thread byte buffer (no
//!   `String` per field, no `serde_json` value, no `tracing` field
//!   visitor), with the fields and keys `tracing-subscriber`'s JSON
//!   formatter gives the other events;
//! - it is appended to a shared buffer; a writer thread writes that buffer
//!   out when it holds [`FLUSH_BYTES`] or when [`FLUSH_INTERVAL`] has passed
//!   since its first line, so one `write` carries hundreds of lines under
//!   load and the request path never makes a system call for its log line;
//! - a writer that cannot keep up (stderr on a stalled pipe) costs lines,
//!   not memory: past [`MAX_BUFFERED`] a line is dropped and counted in
//!   `tokengate_access_log_lines_dropped_total`;
//! - [`flush`] writes what is left when the process ends.
//!
//! `tracing-appender`'s non-blocking writer is not used: it moves every
//! line through a channel as its own `Vec` and writes each one with its own
//! `write`, which is the per-line allocation and system call this avoids.
//!
//! Access lines may therefore reach stderr up to [`FLUSH_INTERVAL`] after
//! other events of the same moment. Text logs (meant for a terminal) go
//! through `tracing` as before.

use http::{HeaderValue, Method};
use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A buffer this full is written out at once.
pub const FLUSH_BYTES: usize = 64 * 1024;
/// The longest a line waits in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Lines beyond this many buffered bytes are dropped.
pub const MAX_BUFFERED: usize = 4 * 1024 * 1024;

/// One request's access-log event.
pub struct Entry<'a> {
    pub method: &'a Method,
    /// The matched route's path pattern.
    pub route: Option<&'a str>,
    /// The verified `sub`, else `client_id`.
    pub subject: Option<&'a str>,
    pub status: u16,
    pub outcome: &'a str,
    pub latency_us: u64,
    pub request_id: &'a HeaderValue,
    pub peer: SocketAddr,
}

/// Records one request: through the buffered JSON writer when it is
/// installed, else as a `tracing` event.
pub fn record(entry: &Entry<'_>) {
    if !tracing::enabled!(target: "tokengate::access", tracing::Level::INFO) {
        return;
    }
    match WRITER.get() {
        Some(writer) => writer.append(entry),
        None => tracing::info!(
            target: "tokengate::access",
            method = %entry.method,
            route = entry.route.unwrap_or("-"),
            subject = entry.subject.unwrap_or("-"),
            status = entry.status,
            outcome = entry.outcome,
            latency_us = entry.latency_us,
            request_id = entry.request_id.to_str().unwrap_or("-"),
            peer = %entry.peer,
        ),
    }
}

/// Sends JSON access lines to `out` through the buffered writer, from now
/// on for the life of the process. Later calls change nothing.
pub fn install_json(out: Box<dyn Write + Send>) {
    let writer = Writer {
        pending: Mutex::new(Pending::default()),
        wake: Condvar::new(),
        out: Mutex::new(out),
    };
    if WRITER.set(writer).is_err() {
        return;
    }
    let Some(writer) = WRITER.get() else {
        return;
    };
    let started = std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || writer.run());
    if let Err(e) = started {
        // Without its thread the buffer is still written by `flush` and
        // whenever it is full.
        tracing::warn!(error = %e, "cannot start the access-log writer thread");
    }
}

/// Writes every buffered line now (at exit), after a batch the writer
/// thread is writing, so lines stay in order and none is cut off.
pub fn flush() {
    if let Some(writer) = WRITER.get() {
        let mut out = writer.out();
        let bytes = std::mem::take(&mut writer.lock().bytes);
        write_out(&mut out, &bytes);
    }
}

static WRITER: OnceLock<Writer> = OnceLock::new();

struct Writer {
    pending: Mutex<Pending>,
    /// Signalled when the buffer gets its first line or fills up.
    wake: Condvar,
    /// Held while writing, so lines from `flush` and the thread never
    /// interleave.
    out: Mutex<Box<dyn Write + Send>>,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
}

thread_local! {
    /// The line being formatted, reused by every request on this thread.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl Writer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, entry: &Entry<'_>) {
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            format_json(&mut line, entry, SystemTime::now());
            let mut pending = self.lock();
            let before = pending.bytes.len();
            if before + line.len() > MAX_BUFFERED {
                drop(pending);
                crate::telemetry::access_log_lines_dropped().increment(1);
                return;
            }
            pending.bytes.extend_from_slice(&line);
            let after = pending.bytes.len();
            drop(pending);
            if before == 0 || (before < FLUSH_BYTES && after >= FLUSH_BYTES) {
                self.wake.notify_one();
            }
        })
    }

    /// The writer thread: waits for a first line, gives the buffer up to
    /// [`FLUSH_INTERVAL`] to fill, writes it out, and again.
    fn run(&self) {
        let mut spare = Vec::with_capacity(FLUSH_BYTES);
        loop {
            let mut pending = self.lock();
            while pending.bytes.is_empty() {
                pending = self.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
            }
            if pending.bytes.len() < FLUSH_BYTES {
                pending = self
                    .wake
                    .wait_timeout_while(pending, FLUSH_INTERVAL, |p| p.bytes.len() < FLUSH_BYTES)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            drop(pending);
            // The output first, then the buffer (the order `flush` takes
            // them in): a batch taken is written before the next one.
            let mut out = self.out();
            std::mem::swap(&mut self.lock().bytes, &mut spare);
            write_out(&mut out, &spare);
            drop(out);
            spare.clear();
            // A burst may have grown the spare far past what is usual.
            spare.shrink_to(4 * FLUSH_BYTES);
        }
    }

    fn out(&self) -> std::sync::MutexGuard<'_, Box<dyn Write + Send>> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn write_out(out: &mut Box<dyn Write + Send>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // Nowhere to report a failing log stream; the lines are lost.
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

/// Appends one JSON line (with its newline) in the shape of
/// `tracing-subscriber`'s flattened JSON events.
fn format_json(out: &mut Vec<u8>, e: &Entry<'_>, now: SystemTime) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    rfc3339_micros(out, now);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"method\":");
    json_str(out, e.method.as_str().as_bytes());
    out.extend_from_slice(b",\"route\":");
    json_str(out, e.route.unwrap_or("-").as_bytes());
    out.extend_from_slice(b",\"subject\":");
    json_str(out, e.subject.unwrap_or("-").as_bytes());
    out.extend_from_slice(b",\"status\":");
    out.extend_from_slice(itoa::Buffer::new().format(e.status).as_bytes());
    out.extend_from_slice(b",\"outcome\":");
    json_str(out, e.outcome.as_bytes());
    out.extend_from_slice(b",\"latency_us\":");
    out.extend_from_slice(itoa::Buffer::new().format(e.latency_us).as_bytes());
    out.extend_from_slice(b",\"request_id\":");
    json_str(out, e.request_id.to_str().unwrap_or("-").as_bytes());
    out.extend_from_slice(b",\"peer\":\"");
    // An address has nothing to escape.
    let _ = write!(out, "{}", e.peer);
    out.extend_from_slice(b"\",\"target\":\"tokengate::access\"}\n");
}

/// A JSON string: quotes, backslash and control characters escaped; the
/// input is UTF-8 (it comes from `&str`), which JSON carries as it is.
fn json_str(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => &[],
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        match escaped {
            [] => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
            e => out.extend_from_slice(e),
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// `2026-12-07T17:30:48.617769Z`: UTC with microseconds, as
/// `tracing-subscriber` writes it.
fn rfc3339_micros(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let fields = [
        (year as u64, 4, b'-'),
        (month as u64, 2, b'-'),
        (day as u64, 2, b'T'),
        (rem / 3600, 2, b':'),
        (rem / 60 % 60, 2, b':'),
        (rem % 60, 2, b'.'),
        (u64::from(since.subsec_micros()), 6, b'Z'),
    ];
    for (value, width, sep) in fields {
        digits(out, value, width);
        out.push(sep);
    }
}

/// `value` as exactly `width` decimal digits (zero-padded).
fn digits(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let at = out.len();
    out.resize(at + width, b'0');
    for slot in out[at..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn entry<'a>(request_id: &'a HeaderValue, subject: Option<&'a str>) -> Entry<'a> {
        Entry {
            method: &Method::GET,
            route: Some("/api/**"),
            subject,
            status: 403,
            outcome: "insufficient_scope",
            latency_us: 1234,
            request_id,
            peer: "127.0.0.1:4000".parse().unwrap(),
        }
    }

    fn line(e: &Entry<'_>, now: SystemTime) -> serde_json::Value {
        let mut out = Vec::new();
        format_json(&mut out, e, now);
        assert_eq!(out.last(), Some(&b'\n'), "one line per event");
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn a_line_has_the_fields_of_the_tracing_json_format() {
        let id = HeaderValue::from_static("req-1");
        let at = UNIX_EPOCH + Duration::from_micros(1_796_664_648_617_769);
        let v = line(&entry(&id, Some("alice")), at);
        assert_eq!(
            v,
            serde_json::json!({
                "timestamp": "2026-12-07T17:30:48.617769Z",
                "level": "INFO",
                "method": "GET",
                "route": "/api/**",
                "subject": "alice",
                "status": 403,
                "outcome": "insufficient_scope",
                "latency_us": 1234,
                "request_id": "req-1",
                "peer": "127.0.0.1:4000",
                "target": "tokengate::access",
            })
        );
    }

    #[test]
    fn a_subject_from_a_token_cannot_break_the_line() {
        let id = HeaderValue::from_static("-");
        let nasty = "a\"b\\c\nd\re\tf\u{1}g\u{7f}h\u{e9}\u{1F600}";
        let v = line(&entry(&id, Some(nasty)), SystemTime::now());
        assert_eq!(v["subject"], nasty);
        assert_eq!(v["route"], "/api/**");
    }

    #[test]
    fn missing_route_and_subject_are_a_dash() {
        let id = HeaderValue::from_static("x");
        let mut e = entry(&id, None);
        e.route = None;
        let v = line(&e, SystemTime::now());
        assert_eq!(
            (v["route"].as_str(), v["subject"].as_str()),
            (Some("-"), Some("-"))
        );
    }

    #[test]
    fn timestamps_match_the_calendar() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400_000_001, "2000-02-29T00:00:00.000001Z"),
            (4_107_542_399_999_999, "2100-02-28T23:59:59.999999Z"),
            (1_709_251_199_500_000, "2024-02-29T23:59:59.500000Z"),
        ];
        for (micros, want) in cases {
            let mut out = Vec::new();
            rfc3339_micros(&mut out, UNIX_EPOCH + Duration::from_micros(micros));
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn a_stalled_log_stream_drops_lines_instead_of_buffering_them() {
        // No writer thread: nothing drains the buffer.
        let writer = Writer {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            out: Mutex::new(Box::new(std::io::sink())),
        };
        let id = HeaderValue::from_static("stalled");
        let e = entry(&id, Some("s"));
        let line_len = {
            let mut one = Vec::new();
            format_json(&mut one, &e, SystemTime::now());
            one.len()
        };
        for _ in 0..(2 * MAX_BUFFERED / line_len) {
            writer.append(&e);
        }
        let buffered = writer.lock().bytes.len();
        assert!(buffered <= MAX_BUFFERED, "{buffered} bytes buffered");
        assert!(
            buffered > MAX_BUFFERED - line_len,
            "stopped early: {buffered}"
        );
    }

    /// A sink the test can read while the writer holds it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_writer_thread_writes_lines_in_order_within_the_interval() {
        let sink = Shared::default();
        let writer: &'static Writer = Box::leak(Box::new(Writer {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            out: Mutex::new(Box::new(sink.clone())),
        }));
        std::thread::spawn(move || writer.run());
        let ids: Vec<HeaderValue> = (0..1000)
            .map(|i| HeaderValue::from_str(&format!("id-{i}")).unwrap())
            .collect();
        for id in &ids {
            writer.append(&entry(id, Some("s")));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let written = sink.0.lock().unwrap().clone();
            let lines: Vec<serde_json::Value> = written
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).expect("whole lines only"))
                .collect();
            if lines.len() == ids.len() {
                for (i, l) in lines.iter().enumerate() {
                    assert_eq!(l["request_id"], format!("id-{i}"));
                }
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {} lines written",
                lines.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
