//! The server under test: URL parsing, address resolution, opening HTTP/1.1 keep-alive
//! connections, and the one-off metadata request.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::LoadgenError;

/// Largest response body read for an error message or for model metadata.
const MAX_SMALL_BODY: usize = 4 * 1024 * 1024;

/// One HTTP/1.1 connection's request handle.
pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// Where the server is.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The URL as the user gave it, for messages.
    pub url: String,
    /// `host[:port]`, the `Host` header.
    pub host: HeaderValue,
    /// Path prefix without a trailing slash ("" for none).
    pub base_path: String,
    /// Resolved addresses, tried in order.
    addrs: Vec<SocketAddr>,
}

impl Endpoint {
    /// Parses `http://host[:port][/prefix]` and resolves the host.
    pub async fn resolve(url: &str) -> Result<Endpoint, LoadgenError> {
        let invalid = |reason: &str| LoadgenError::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
        let uri: hyper::Uri = url.trim().parse().map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(invalid("https is not supported; use plain http")),
            Some(other) => return Err(invalid(&format!("unsupported scheme {other:?}"))),
            None => return Err(invalid("missing scheme; write http://host:port")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?.clone();
        if authority.as_str().contains('@') {
            return Err(invalid("user info in the URL is not supported"));
        }
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        if uri.query().is_some() {
            return Err(invalid("a query string is not allowed"));
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let host_header =
            HeaderValue::from_str(authority.as_str()).map_err(|_| invalid("host is not a valid Host header"))?;
        // `[::1]` → `::1` for resolution.
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare_host, port))
            .await
            .map_err(|e| LoadgenError::Connect { url: url.to_owned(), reason: format!("cannot resolve {host}: {e}") })?
            .collect();
        if addrs.is_empty() {
            return Err(LoadgenError::Connect {
                url: url.to_owned(),
                reason: format!("{host} resolves to no address"),
            });
        }
        Ok(Endpoint { url: url.to_owned(), host: host_header, base_path, addrs })
    }

    /// Opens a new keep-alive connection; its driver runs on a spawned task and ends when the
    /// returned sender is dropped.
    pub async fn open(&self) -> Result<Sender, LoadgenError> {
        let mut last_err = None;
        for addr in &self.addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    // Small requests must not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    let (sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| {
                            LoadgenError::Connect {
                                url: self.url.clone(),
                                reason: format!("HTTP handshake with {addr} failed: {e}"),
                            }
                        })?;
                    tokio::spawn(async move {
                        // Errors surface on the sender side; nothing to do with them here.
                        let _ = conn.await;
                    });
                    return Ok(sender);
                }
                Err(e) => last_err = Some(format!("{addr}: {e}")),
            }
        }
        Err(LoadgenError::Connect {
            url: self.url.clone(),
            reason: last_err.unwrap_or_else(|| "no address to connect to".to_owned()),
        })
    }

    /// Full path for `suffix` (which starts with `/`).
    pub fn path(&self, suffix: &str) -> String {
        format!("{}{}", self.base_path, suffix)
    }

    /// Sends a GET on `sender` and reads the whole (bounded) answer.
    pub async fn get(&self, sender: &mut Sender, path: &str) -> Result<(StatusCode, Bytes), LoadgenError> {
        let http_err = |e: &dyn std::fmt::Display| LoadgenError::Http {
            url: format!("{}{}", self.url.trim_end_matches('/'), path),
            reason: e.to_string(),
        };
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(HOST, self.host.clone())
            .body(Full::new(Bytes::new()))
            .map_err(|e| http_err(&e))?;
        sender.ready().await.map_err(|e| http_err(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| http_err(&e))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_SMALL_BODY).collect().await.map_err(|e| http_err(&e))?.to_bytes();
        Ok((status, body))
    }
}

/// The message of a V2 error body `{"error": "..."}`, else the body text (shortened), else the
/// status's reason phrase.
pub(crate) fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        return parsed.error;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no message").to_owned();
    }
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut cut = MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved characters).
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("mlp_v2.onnx-x~"), "mlp_v2.onnx-x~");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn error_messages_are_extracted() {
        assert_eq!(error_message(StatusCode::BAD_REQUEST, br#"{"error":"bad shape"}"#), "bad shape");
        assert_eq!(error_message(StatusCode::BAD_REQUEST, b"plain text"), "plain text");
        assert_eq!(error_message(StatusCode::NOT_FOUND, b""), "Not Found");
        let long = "é".repeat(400);
        assert!(error_message(StatusCode::BAD_REQUEST, long.as_bytes()).ends_with('…'));
    }

    #[tokio::test]
    async fn urls_are_checked() {
        for bad in ["127.0.0.1:8000", "https://127.0.0.1", "ftp://x", "http://u@h:1/"] {
            assert!(matches!(Endpoint::resolve(bad).await, Err(LoadgenError::InvalidUrl { .. })), "{bad} accepted");
        }
        let ep = Endpoint::resolve("http://127.0.0.1:9/prefix/").await.expect("valid");
        assert_eq!(ep.base_path, "/prefix");
        assert_eq!(ep.host, "127.0.0.1:9");
        assert_eq!(ep.path("/v2"), "/prefix/v2");
    }
}
