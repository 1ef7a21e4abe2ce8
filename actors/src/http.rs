//! The little HTTP/1.1 the operator endpoints need: one request per connection, read
//! with bounds, one response, then close. Not a general server.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest request head read.
pub(crate) const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Longest request body read (and thrown away: no endpoint takes one).
const MAX_BODY: usize = 64 * 1024;

/// A request's line and the headers the endpoints look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query, percent-decoded.
    pub path: String,
    /// The query's `name=value` pairs, percent-decoded.
    pub query: Vec<(String, String)>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request. `Ok(None)`: not HTTP/1.x, or the head is too long or cut short.
pub(crate) async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<Option<Request>> {
    let mut head = vec![0u8; MAX_REQUEST_HEAD];
    let mut len = 0;
    let end = loop {
        if let Some(i) = head[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if len == head.len() {
            return Ok(None);
        }
        let n = stream.read(&mut head[len..]).await?;
        if n == 0 {
            return Ok(None);
        }
        len += n;
    };
    let Ok(text) = std::str::from_utf8(&head[..end]) else {
        return Ok(None);
    };
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Ok(None);
    }
    let mut authorization = None;
    let mut content_length = 0usize;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Ok(None);
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = value.parse() else {
                return Ok(None);
            };
            content_length = n;
        }
    }
    // Read the body (bounded) so that closing does not reset the connection before the
    // client reads the answer.
    let mut body_left = content_length.min(MAX_BODY).saturating_sub(len - end - 4);
    let mut sink = [0u8; 1024];
    while body_left > 0 {
        let n = stream.read(&mut sink[..body_left.min(1024)]).await?;
        if n == 0 {
            break;
        }
        body_left -= n;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let Some(path) = percent_decode(path) else {
        return Ok(None);
    };
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(n), Some(v)) = (percent_decode(n), percent_decode(v)) else {
            return Ok(None);
        };
        pairs.push((n, v));
    }
    Ok(Some(Request {
        method: method.to_owned(),
        path,
        query: pairs,
        authorization,
    }))
}

/// `%XX` escapes decoded (`+` stays `+`); `None` for a bad escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A response: status line, content type, extra headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    /// e.g. `200 OK`.
    pub status: &'static str,
    /// The Content-Type.
    pub content_type: &'static str,
    /// Further header lines, without CRLF.
    pub headers: Vec<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Plain text.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
/// JSON.
pub(crate) const JSON: &str = "application/json";

impl Response {
    /// A response with `body`.
    pub fn new(status: &'static str, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A plain-text response.
    pub fn text(status: &'static str, body: &str) -> Self {
        Response::new(status, TEXT, body)
    }

    /// Writes the response (headers only for `HEAD`) and closes the write side.
    pub async fn write_to<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        head_only: bool,
    ) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        for h in &self.headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        if !head_only {
            stream.write_all(&self.body).await?;
        }
        stream.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(raw: &str) -> Option<Request> {
        let mut input = raw.as_bytes();
        read_request(&mut input).await.unwrap()
    }

    #[actix_rt::test]
    async fn requests_parse_with_query_and_authorization() {
        let r = parse(
            "DELETE /sessions?user=alice%40example.org&x HTTP/1.1\r\nHost: h\r\nauthorization: Bearer t0k\r\n\r\n",
        )
        .await
        .unwrap();
        assert_eq!(r.method, "DELETE");
        assert_eq!(r.path, "/sessions");
        assert_eq!(r.param("user"), Some("alice@example.org"));
        assert_eq!(r.param("x"), Some(""));
        assert_eq!(r.param("y"), None);
        assert_eq!(r.authorization.as_deref(), Some("Bearer t0k"));

        let r = parse("POST /drain HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc")
            .await
            .unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/drain"));
    }

    #[actix_rt::test]
    async fn garbage_is_none() {
        for raw in [
            "garbage\r\n\r\n",
            "GET /x\r\n\r\n",
            "GET x HTTP/1.1\r\n\r\n",
            "GET /x SPDY/3\r\n\r\n",
            "GET /x HTTP/1.1\r\nno colon\r\n\r\n",
            "GET /%zz HTTP/1.1\r\n\r\n",
            "GET /x HTTP/1.1\r\n", // cut short
        ] {
            assert_eq!(parse(raw).await, None, "{raw:?}");
        }
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_HEAD));
        assert_eq!(parse(&long).await, None);
    }

    #[actix_rt::test]
    async fn responses_carry_length_and_headers() {
        let mut r = Response::text("401 Unauthorized", "no\n");
        r.headers.push("WWW-Authenticate: Bearer".into());
        let mut out = Vec::new();
        r.write_to(&mut out, false).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Length: 3\r\n"), "{text}");
        assert!(text.contains("\r\nWWW-Authenticate: Bearer\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nno\n"), "{text}");
        let mut out = Vec::new();
        r.write_to(&mut out, true).await.unwrap();
        assert!(String::from_utf8(out).unwrap().ends_with("\r\n\r\n"));
    }
}
