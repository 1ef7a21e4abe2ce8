//! `external-ip aws|gcp|azure`: the instance's public IPv4 address, asked at start of the
//! cloud's instance metadata service at 169.254.169.254:80. Only when the operator names
//! the cloud: `auto` and the default never ask it.
//!
//! - AWS (IMDSv2): `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: 60`,
//!   then `GET /latest/meta-data/public-ipv4` with `X-aws-ec2-metadata-token: TOKEN`.
//! - GCP: `GET /computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip`
//!   with `Metadata-Flavor: Google` and `Host: metadata.google.internal`, sent to the IP
//!   (no DNS needed).
//! - Azure: `GET /metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2021-02-01&format=text`
//!   with `Metadata: true`.
//!
//! The answer's body, trimmed, must be an IPv4 address. A 404 (AWS, GCP) or an empty
//! body (Azure) means the instance has no public IPv4 address: an error at once. A service
//! that cannot be reached, does not answer, or answers 5xx is asked again, as `auto` asks
//! its STUN servers: [`ATTEMPTS`] rounds a second apart.
//!
//! The HTTP/1.1 client is the least these services need: one request per connection
//! (`Connection: close`), connecting bounded by [`CONNECT_TIMEOUT`] and the whole exchange
//! by [`REQUEST_TIMEOUT`]; the response's head is read up to [`MAX_HEAD`] bytes and its
//! body (`Content-Length`, chunked, or up to the close) up to [`MAX_BODY`]. Anything else
//! is an error, never a panic.
//!
//! Test hook, not for operators: the environment variable `FLOE_METADATA_ENDPOINT=IP:PORT`
//! ([`ENDPOINT_VAR`]) sends the requests there instead of 169.254.169.254:80, so that the
//! tests ask a mock service on 127.0.0.1.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{DiscoveryError, ATTEMPTS, PAUSE};
use crate::config::Cloud;

/// The environment variable that points the requests elsewhere (tests only).
pub const ENDPOINT_VAR: &str = "FLOE_METADATA_ENDPOINT";
/// Where every cloud's metadata service listens.
const ENDPOINT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)), 80);
/// Bound on connecting.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on one exchange, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest response head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest response body read.
pub const MAX_BODY: usize = 4 * 1024;
/// Longest response read, chunk framing included.
const MAX_RESPONSE: usize = MAX_HEAD + 2 * MAX_BODY;

const AWS_TOKEN: &str = "/latest/api/token";
const AWS_IPV4: &str = "/latest/meta-data/public-ipv4";
const GCP_IPV4: &str =
    "/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip";
const AZURE_IPV4: &str = "/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2021-02-01&format=text";

/// What to check when `cloud`'s service cannot be reached.
fn hint(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Aws => {
            "is this an EC2 instance with IMDSv2 reachable? in a container, the instance's \
             metadata hop limit must be 2 or more"
        }
        Cloud::Gcp => "is this a Compute Engine VM with its metadata server reachable?",
        Cloud::Azure => {
            "is this an Azure VM with IMDS reachable? it must be asked directly, not through \
             a proxy"
        }
    }
}

/// The public IPv4 address of this instance, from `cloud`'s metadata service, asked up to
/// [`ATTEMPTS`] times.
pub(crate) async fn discover(cloud: Cloud) -> Result<Ipv4Addr, DiscoveryError> {
    let fail = |why: String| DiscoveryError::cloud(cloud, why);
    let endpoint = match std::env::var(ENDPOINT_VAR) {
        Ok(v) => {
            let e = v.parse().map_err(|_| {
                fail(format!(
                    "{ENDPOINT_VAR}={v:?} is not IP:PORT (it is a test hook)"
                ))
            })?;
            tracing::warn!(%e, "{ENDPOINT_VAR}: asking a metadata service there (a test hook)");
            e
        }
        Err(_) => ENDPOINT,
    };
    let mut last = String::new();
    for round in 1..=ATTEMPTS {
        match public_ipv4(cloud, endpoint).await {
            Ok(ip) => {
                tracing::info!(%cloud, public = %ip, "external-ip {cloud}: discovered");
                return Ok(ip);
            }
            Err(Failure::Final(why)) => return Err(fail(why)),
            Err(Failure::Retry(why)) => {
                tracing::warn!(%cloud, round, "external-ip {cloud}: {why}");
                last = why;
            }
        }
        if round < ATTEMPTS {
            tokio::time::sleep(PAUSE).await;
        }
    }
    Err(fail(format!(
        "{last}, after {ATTEMPTS} attempts ({})",
        hint(cloud)
    )))
}

/// Why one attempt found no address.
#[derive(Debug)]
enum Failure {
    /// Worth asking again (no connection, no answer, 5xx).
    Retry(String),
    /// The service's answer, which another attempt would not change.
    Final(String),
}

/// One attempt: the exchanges `cloud` needs.
async fn public_ipv4(cloud: Cloud, endpoint: SocketAddr) -> Result<Ipv4Addr, Failure> {
    let imds = "169.254.169.254";
    let (host, target, header) = match cloud {
        Cloud::Aws => {
            let put = Request {
                method: "PUT",
                host: imds,
                target: AWS_TOKEN,
                header: ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
            };
            let r = put.send(endpoint).await?;
            if r.status != 200 {
                let why = format!(
                    "the metadata service at {endpoint} answered {} to PUT {AWS_TOKEN} \
                     (IMDSv2's session token)",
                    r.status_text()
                );
                return Err(if r.status >= 500 {
                    Failure::Retry(why)
                } else {
                    Failure::Final(format!("{why}; {}", hint(cloud)))
                });
            }
            let token = std::str::from_utf8(&r.body)
                .map(str::trim)
                .ok()
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| {
                    Failure::Final(format!(
                        "the metadata service at {endpoint} answered PUT {AWS_TOKEN} with \
                         {}, not a token",
                        quote(&r.body)
                    ))
                })?;
            let get = Request {
                method: "GET",
                host: imds,
                target: AWS_IPV4,
                header: ("X-aws-ec2-metadata-token", token),
            };
            return ipv4_in(get.send(endpoint).await?, &get, endpoint);
        }
        Cloud::Gcp => (
            "metadata.google.internal",
            GCP_IPV4,
            ("Metadata-Flavor", "Google"),
        ),
        Cloud::Azure => (imds, AZURE_IPV4, ("Metadata", "true")),
    };
    let get = Request {
        method: "GET",
        host,
        target,
        header,
    };
    ipv4_in(get.send(endpoint).await?, &get, endpoint)
}

/// The IPv4 address `response` to `request` gives.
fn ipv4_in(
    response: Response,
    request: &Request<'_>,
    endpoint: SocketAddr,
) -> Result<Ipv4Addr, Failure> {
    let asked = format!("{} {}", request.method, request.target);
    let body = std::str::from_utf8(&response.body).map(str::trim);
    let none = || {
        Failure::Final(format!(
            "the instance has no public IPv4 address (the metadata service at {endpoint} \
             answered {} to {asked}); give it (--external-ip PUBLIC[/PRIVATE]), or use \
             --external-ip auto with an --external-ip-stun server",
            response.status_text()
        ))
    };
    match response.status {
        200 if body == Ok("") => Err(none()),
        200 => body.ok().and_then(|b| b.parse().ok()).ok_or_else(|| {
            Failure::Final(format!(
                "the metadata service at {endpoint} answered {asked} with {}, not an IPv4 \
                 address",
                quote(&response.body)
            ))
        }),
        404 => Err(none()),
        s => {
            let why = format!(
                "the metadata service at {endpoint} answered {} to {asked}",
                response.status_text()
            );
            // 410 and 429: Azure's IMDS while the VM boots, or throttling.
            Err(if s >= 500 || s == 410 || s == 429 {
                Failure::Retry(why)
            } else {
                Failure::Final(why)
            })
        }
    }
}

/// A request without a body, with one header of the cloud's.
struct Request<'a> {
    method: &'a str,
    host: &'a str,
    target: &'a str,
    header: (&'a str, &'a str),
}

impl Request<'_> {
    /// The request on a connection of its own, and the response.
    async fn send(&self, endpoint: SocketAddr) -> Result<Response, Failure> {
        exchange(endpoint, self).await.map_err(|e| {
            let why = format!("the metadata service at {endpoint} {e}");
            if e.is_transient() {
                Failure::Retry(why)
            } else {
                Failure::Final(format!("{why} (to {} {})", self.method, self.target))
            }
        })
    }

    fn to_bytes(&self) -> Vec<u8> {
        let (name, value) = self.header;
        let length = if self.method == "GET" {
            ""
        } else {
            "Content-Length: 0\r\n"
        };
        format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n{name}: {value}\r\n{length}Connection: close\r\n\r\n",
            self.method, self.target, self.host
        )
        .into_bytes()
    }
}

/// A response's status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Response {
    status: u16,
    reason: String,
    body: Vec<u8>,
}

impl Response {
    /// `404 Not Found`.
    fn status_text(&self) -> String {
        format!("{} {}", self.status, self.reason)
            .trim_end()
            .to_owned()
    }
}

/// Why an exchange failed; each reads after "the metadata service at ADDR".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum HttpError {
    #[error("did not accept a connection in {} s", CONNECT_TIMEOUT.as_secs())]
    ConnectTimeout,
    #[error("cannot be connected to ({0})")]
    Connect(String),
    #[error("did not answer in {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
    #[error("broke the connection ({0})")]
    Io(String),
    #[error("closed the connection {0}")]
    Closed(&'static str),
    #[error("answered something that is not HTTP/1.x: {0}")]
    Malformed(String),
    #[error("answered with a head longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("answered with a body longer than {MAX_BODY} bytes")]
    BodyTooLong,
    #[error("answered with Transfer-Encoding {0:?}, which floe does not read")]
    TransferEncoding(String),
}

impl HttpError {
    /// Whether asking again may help: the connection, not the answer, failed.
    fn is_transient(&self) -> bool {
        matches!(
            self,
            HttpError::ConnectTimeout
                | HttpError::Connect(_)
                | HttpError::Timeout
                | HttpError::Io(_)
                | HttpError::Closed(_)
        )
    }
}

/// `request` on a new connection to `endpoint`, within [`REQUEST_TIMEOUT`].
async fn exchange(endpoint: SocketAddr, request: &Request<'_>) -> Result<Response, HttpError> {
    timeout(REQUEST_TIMEOUT, async {
        let mut stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint)).await {
            Err(_) => return Err(HttpError::ConnectTimeout),
            Ok(Err(e)) => return Err(HttpError::Connect(e.to_string())),
            Ok(Ok(s)) => s,
        };
        let io = |e: std::io::Error| HttpError::Io(e.to_string());
        stream.write_all(&request.to_bytes()).await.map_err(io)?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await.map_err(io)?;
            buf.extend_from_slice(&chunk[..n]);
            if let Some(response) = parse_response(&buf, n == 0)? {
                return Ok(response);
            }
            if n == 0 {
                return Err(HttpError::Closed("before the end of the response"));
            }
            if buf.len() > MAX_RESPONSE {
                return Err(HttpError::BodyTooLong);
            }
        }
    })
    .await
    .unwrap_or(Err(HttpError::Timeout))
}

/// The response in `buf`, what was read so far; `closed`: nothing more will come.
/// `Ok(None)`: incomplete, read on.
fn parse_response(buf: &[u8], closed: bool) -> Result<Option<Response>, HttpError> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(HttpError::HeadTooLong)
        } else if closed && buf.is_empty() {
            Err(HttpError::Closed("without answering"))
        } else if closed {
            Err(HttpError::Closed("in the middle of the response head"))
        } else {
            Ok(None)
        };
    };
    if end > MAX_HEAD {
        return Err(HttpError::HeadTooLong);
    }
    let head = std::str::from_utf8(&buf[..end])
        .map_err(|_| HttpError::Malformed(format!("a head that is not text: {}", quote(buf))))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let (status, reason) = status_line
        .split_once(' ')
        .filter(|(version, _)| version.starts_with("HTTP/1."))
        .and_then(|(_, rest)| {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let ok = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
            Some((code.parse::<u16>().ok().filter(|_| ok)?, reason))
        })
        .ok_or_else(|| HttpError::Malformed(format!("status line {}", quote(status_line))))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| HttpError::Malformed(format!("header line {}", quote(line))))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| HttpError::Malformed(format!("Content-Length {}", quote(value))))?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::Malformed("two Content-Length values".into()));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if !value.eq_ignore_ascii_case("identity") {
                return Err(HttpError::TransferEncoding(value.to_owned()));
            }
        }
    }
    let rest = &buf[end + 4..];
    let body = if status == 204 || status == 304 || status < 200 {
        Vec::new()
    } else if chunked {
        match dechunk(rest)? {
            Some(body) => body,
            None if closed => return Err(HttpError::Closed("in the middle of the chunked body")),
            None => return Ok(None),
        }
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(HttpError::BodyTooLong);
        }
        match rest.get(..n) {
            Some(body) => body.to_vec(),
            None if closed => return Err(HttpError::Closed("before the end of the body")),
            None => return Ok(None),
        }
    } else if rest.len() > MAX_BODY {
        return Err(HttpError::BodyTooLong);
    } else if closed {
        rest.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(Response {
        status,
        reason: reason.to_owned(),
        body,
    }))
}

/// The body of a chunked `data` (RFC 9112 §7.1), up to [`MAX_BODY`]; `Ok(None)`:
/// incomplete. Chunk extensions and trailers are skipped.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[..eol]).unwrap_or("?");
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16)
            .ok()
            .filter(|_| !hex.is_empty() && !hex.starts_with('+'))
            .ok_or_else(|| {
                HttpError::Malformed(format!("chunk size {}", quote(line.as_bytes())))
            })?;
        data = &data[eol + 2..];
        if size == 0 {
            // Trailer lines up to an empty one.
            loop {
                let Some(eol) = find(data, b"\r\n") else {
                    return Ok(None);
                };
                if eol == 0 {
                    return Ok(Some(body));
                }
                data = &data[eol + 2..];
            }
        }
        if size > MAX_BODY - body.len() {
            return Err(HttpError::BodyTooLong);
        }
        let Some(chunk) = data.get(..size + 2) else {
            return Ok(None);
        };
        if !chunk.ends_with(b"\r\n") {
            return Err(HttpError::Malformed("a chunk longer than its size".into()));
        }
        body.extend_from_slice(&chunk[..size]);
        data = &data[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `bytes` for a message: quoted, escaped, at most 64 characters.
fn quote(bytes: impl AsRef<[u8]>) -> String {
    let text = String::from_utf8_lossy(bytes.as_ref());
    let mut short: String = text.chars().take(64).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    format!("{short:?}")
}

#[cfg(test)]
mod tests;
