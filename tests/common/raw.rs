//! Byte-exact HTTP/1.1 over TCP, for request targets and header sections a
//! real client would normalise or refuse to send (dot segments, control
//! bytes, absolute-form, duplicate `Host`...).

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::within;

/// One response as read off the wire.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    /// The status line and header lines, as text.
    pub head: String,
    /// The body with any chunked framing removed.
    pub body: Vec<u8>,
}

impl RawReply {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as JSON when the gateway itself produced the answer
    /// (`Content-Type: application/json`); `None` for hyper's bare errors.
    pub fn gateway_json(&self) -> Option<serde_json::Value> {
        if self.header("content-type") != Some("application/json") {
            return None;
        }
        Some(serde_json::from_slice(&self.body).expect("JSON body"))
    }
}

/// `GET {target}` with `Host: {addr}` and `Connection: close`.
pub async fn raw_get(addr: SocketAddr, target: &[u8]) -> RawReply {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    raw(addr, &req).await
}

/// Writes `request` verbatim on a new connection and reads one response.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> RawReply {
    let mut conn = RawConn::connect(addr).await;
    // The server may answer and close before it has read everything.
    let _ = conn.write(request).await;
    conn.response().await
}

/// One TCP connection kept open across requests, for keep-alive, partial
/// heads and watching the server close it.
pub struct RawConn {
    stream: TcpStream,
    /// Received and not yet consumed.
    buf: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads one response (framed by Content-Length, chunked, or EOF; none
    /// for 1xx, 204 and 304).
    pub async fn response(&mut self) -> RawReply {
        within("raw response", self.read_response()).await
    }

    async fn read_response(&mut self) -> RawReply {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if read_some(&mut self.stream, &mut self.buf).await == 0 {
                panic!(
                    "connection closed before a response head: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end - 4]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        let mut reply = RawReply {
            status,
            head,
            body: Vec::new(),
        };
        let content_length = reply
            .header("content-length")
            .map(|v| v.parse::<usize>().expect("content-length"));
        let chunked = reply
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
        let end = if bodiless {
            head_end
        } else if let Some(len) = content_length {
            while self.buf.len() < head_end + len
                && read_some(&mut self.stream, &mut self.buf).await > 0
            {}
            let end = (head_end + len).min(self.buf.len());
            reply.body = self.buf[head_end..end].to_vec();
            end
        } else if chunked {
            while find(&self.buf[head_end..], b"0\r\n\r\n").is_none()
                && read_some(&mut self.stream, &mut self.buf).await > 0
            {}
            let end = find(&self.buf[head_end..], b"0\r\n\r\n")
                .map_or(self.buf.len(), |i| head_end + i + 5);
            reply.body = dechunk(&self.buf[head_end..end]);
            end
        } else {
            while read_some(&mut self.stream, &mut self.buf).await > 0 {}
            reply.body = self.buf[head_end..].to_vec();
            self.buf.len()
        };
        self.buf.drain(..end);
        reply
    }

    /// Reads (and keeps) whatever arrives until the server closes the
    /// connection; the time that took, or `None` if it stayed open `limit`.
    pub async fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let until_eof = async { while read_some(&mut self.stream, &mut self.buf).await > 0 {} };
        tokio::time::timeout(limit, until_eof)
            .await
            .ok()
            .map(|()| started.elapsed())
    }

    /// Bytes received and not consumed by [`RawConn::response`].
    pub fn received(&self) -> &[u8] {
        &self.buf
    }
}

/// Reads what is available; 0 on EOF or a reset.
async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            n
        }
        Err(_) => 0,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).expect("chunk size");
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}
