//! `floe serve --external-ip aws|gcp|azure` (issue 15, item 4): the public IPv4 address
//! asked of the cloud's instance metadata service at start. The service is a mock on
//! 127.0.0.1 (a thread with a std `TcpListener`), which floe is pointed at with its test
//! hook `FLOE_METADATA_ENDPOINT`; it checks each request's line and headers as the cloud
//! would (IMDSv2's token round trip for AWS) and answers 198.51.100.23 (TEST-NET-2). The
//! client is `floe turn` relaying to a UDP echo on 127.0.0.1, told the address in
//! XOR-RELAYED-ADDRESS. Nothing leaves loopback. Timeouts only bound hangs.

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use support::{free_port, FloeServe, LineProcess, ServeOpts, RUN_TIMEOUT};

const FLOE: &str = env!("CARGO_BIN_EXE_floe");
/// floe's test hook: where the metadata service is asked.
const ENDPOINT_VAR: &str = "FLOE_METADATA_ENDPOINT";
/// Bounds a wait for a line of `floe turn`; only catches hangs.
const LINE_WAIT: Duration = Duration::from_secs(60);
const PUBLIC: &str = "198.51.100.23";
const TOKEN: &str = "AQAEAtest-imdsv2-token==";
const AWS_IPV4: &str = "/latest/meta-data/public-ipv4";
const GCP_IPV4: &str =
    "/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip";
const AZURE_IPV4: &str = "/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2021-02-01&format=text";

/// One request the mock got: its line and headers (names lowercased).
#[derive(Clone, Debug)]
struct Asked {
    line: String,
    headers: Vec<(String, String)>,
}

impl Asked {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the mock answers: status, extra header lines, body.
type Answer = (u16, String, String);

/// A metadata service on 127.0.0.1: `answer` says what each request gets (the mock
/// writes the status line and `Connection: close`, then closes). Stopped on drop.
struct Mock {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<Asked>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Mock {
    fn start(answer: impl Fn(&Asked) -> Answer + Send + 'static) -> Mock {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, done) = (asked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                if let Some(request) = serve_one(stream, &answer) {
                    log.lock().unwrap().push(request);
                }
            }
        });
        Mock {
            addr,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request head from `stream`, answers it, closes.
fn serve_one(mut stream: TcpStream, answer: &impl Fn(&Asked) -> Answer) -> Option<Asked> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8(head).ok()?;
    let mut lines = text.trim_end().split("\r\n");
    let line = lines.next()?.to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let asked = Asked { line, headers };
    let (status, extra, body) = answer(&asked);
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        _ => "Not Found",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\n{extra}Connection: close\r\n\r\n{body}"
    );
    Some(asked)
}

/// `body` with its `Content-Length`.
fn sized(status: u16, body: &str) -> Answer {
    let length = format!("Content-Length: {}\r\n", body.len());
    (status, length, body.to_owned())
}

/// IMDSv2: a token for a PUT with a TTL, then the address (or `ip_status`) for a GET
/// with that token; anything else is refused as EC2 refuses it.
fn aws(ip_status: u16) -> Mock {
    Mock::start(move |r| {
        if r.header("host") != Some("169.254.169.254") {
            return sized(400, "");
        }
        match r.line.as_str() {
            "PUT /latest/api/token HTTP/1.1" => {
                match r.header("x-aws-ec2-metadata-token-ttl-seconds") {
                    Some(ttl) if ttl.parse::<u32>().is_ok_and(|t| (1..=21600).contains(&t)) => {
                        sized(200, TOKEN)
                    }
                    _ => sized(400, ""),
                }
            }
            l if l == format!("GET {AWS_IPV4} HTTP/1.1") => {
                if r.header("x-aws-ec2-metadata-token") != Some(TOKEN) {
                    sized(401, "")
                } else if ip_status == 200 {
                    sized(200, PUBLIC)
                } else {
                    sized(ip_status, "<html>404 - Not Found</html>")
                }
            }
            _ => sized(404, ""),
        }
    })
}

/// GCE: the address for a GET with `Metadata-Flavor: Google`, in a chunked body.
fn gcp() -> Mock {
    Mock::start(|r| {
        let ok = r.line == format!("GET {GCP_IPV4} HTTP/1.1")
            && r.header("metadata-flavor") == Some("Google")
            && r.header("host") == Some("metadata.google.internal");
        if !ok {
            return sized(403, "");
        }
        let chunked = format!(
            "5\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            &PUBLIC[..5],
            PUBLIC.len() - 5,
            &PUBLIC[5..]
        );
        (
            200,
            "Metadata-Flavor: Google\r\nContent-Type: application/text\r\n\
             Transfer-Encoding: chunked\r\n"
                .to_owned(),
            chunked,
        )
    })
}

/// Azure IMDS: the address (or `body`) for a GET with `Metadata: true`, up to the close.
fn azure(body: &'static str) -> Mock {
    Mock::start(move |r| {
        let ok = r.line == format!("GET {AZURE_IPV4} HTTP/1.1")
            && r.header("metadata") == Some("true")
            && r.header("host") == Some("169.254.169.254");
        if ok {
            (
                200,
                "Content-Type: text/plain\r\n".to_owned(),
                body.to_owned(),
            )
        } else {
            sized(400, "")
        }
    })
}

/// `floe serve --external-ip CLOUD` asking `mock`; checks that an allocation is told
/// 198.51.100.23 in XOR-RELAYED-ADDRESS and still relays through 127.0.0.1, and that a
/// reload keeps it without asking again.
fn serve_and_relay(cloud: &str, mock: &Mock) {
    let floe = FloeServe::start(
        ServeOpts::default()
            .admin()
            .arg("--external-ip")
            .arg(cloud)
            .env(ENDPOINT_VAR, &mock.addr.to_string()),
    );
    assert!(
        floe.log()
            .contains(&format!("external-ip {cloud}: discovered")),
        "{}",
        floe.log()
    );
    let echo = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    echo.set_read_timeout(Some(LINE_WAIT)).unwrap();
    let echo_addr = echo.local_addr().unwrap();
    let echoer = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let (n, from) = echo
            .recv_from(&mut buf)
            .expect("nothing relayed to the echo");
        echo.send_to(&buf[..n], from).unwrap();
        from
    });
    let mut cmd = Command::new(FLOE);
    cmd.args(["turn", "--server", &floe.addr().to_string()])
        .args(["--user", "bob", "--password", "secret"])
        .args(["--peer", &echo_addr.to_string()])
        .args(["--send", "from the cloud", "--hold", "0"]);
    let mut client = LineProcess::spawn("floe turn", cmd).expect("starting floe turn");
    let relayed: SocketAddr = value(&client.wait_for_key("relayed", LINE_WAIT))
        .parse()
        .unwrap();
    let data = value(&client.wait_for_key("data", LINE_WAIT));
    let public: IpAddr = PUBLIC.parse().unwrap();
    assert_eq!(relayed.ip(), public, "{}", client.describe());
    assert!(
        floe.relay_ports.contains(&relayed.port()),
        "{relayed} is not on a port of floe's relay range"
    );
    assert_eq!(data, echo_addr.to_string(), "{}", client.describe());
    let from = echoer.join().unwrap();
    assert_eq!(
        from,
        SocketAddr::from((Ipv4Addr::LOCALHOST, relayed.port()))
    );
    // A reload neither asks again nor reports external-ip as changed.
    let asked = mock.asked().len();
    let (code, body) = floe.admin("POST", "/reload", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"kept\":[]"), "{body}");
    assert_eq!(mock.asked().len(), asked, "asked again on reload");
    println!("{cloud}: told {relayed}, relayed through {from}");
}

#[test]
fn aws_asks_imdsv2_for_a_token_then_the_public_ipv4_and_advertises_it() {
    let mock = aws(200);
    serve_and_relay("aws", &mock);
    let asked = mock.asked();
    let lines: Vec<&str> = asked.iter().map(|a| a.line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "PUT /latest/api/token HTTP/1.1".to_owned(),
            format!("GET {AWS_IPV4} HTTP/1.1")
        ],
        "{asked:?}"
    );
    assert_eq!(
        asked[0].header("x-aws-ec2-metadata-token-ttl-seconds"),
        Some("60")
    );
    assert_eq!(asked[1].header("x-aws-ec2-metadata-token"), Some(TOKEN));
    assert!(asked
        .iter()
        .all(|a| a.header("connection") == Some("close")));
}

#[test]
fn gcp_asks_the_metadata_server_with_its_flavor_header_and_advertises_the_address() {
    let mock = gcp();
    serve_and_relay("gcp", &mock);
    assert_eq!(mock.asked().len(), 1, "{:?}", mock.asked());
}

#[test]
fn azure_asks_imds_for_the_text_address_and_advertises_it() {
    let mock = azure(PUBLIC);
    serve_and_relay("azure", &mock);
    assert_eq!(mock.asked().len(), 1, "{:?}", mock.asked());
}

/// `floe serve` on a free port with `args` after the test user, asking `endpoint` for
/// metadata; run to its end.
fn serve_until_exit(endpoint: &str, args: &[&str]) -> support::Finished {
    let mut cmd = Command::new(FLOE);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--user", "bob:secret"])
        .args(args)
        .env(ENDPOINT_VAR, endpoint);
    support::run(cmd, RUN_TIMEOUT)
}

/// Asserts that `run` exited 1 saying `want`, without a panic.
fn assert_fails(run: &support::Finished, want: &str) {
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        run.describe()
    );
    assert!(run.stderr.contains(want), "{}", run.describe());
    assert!(!run.stderr.contains("panicked"), "{}", run.describe());
}

#[test]
fn an_instance_without_a_public_ipv4_fails_to_start_with_a_clear_message() {
    // AWS: 404 for public-ipv4. Not asked again: the answer would not change.
    let mock = aws(404);
    let run = serve_until_exit(&mock.addr.to_string(), &["--external-ip", "aws"]);
    let want = format!(
        "floe serve: external-ip aws: the instance has no public IPv4 address (the \
         metadata service at {} answered 404 Not Found to GET {AWS_IPV4}); give it \
         (--external-ip PUBLIC[/PRIVATE]), or use --external-ip auto",
        mock.addr
    );
    assert_fails(&run, &want);
    assert_eq!(mock.asked().len(), 2, "{:?}", mock.asked());
    // Azure: an empty address.
    let mock = azure("");
    let run = serve_until_exit(&mock.addr.to_string(), &["--external-ip", "azure"]);
    assert_fails(
        &run,
        "floe serve: external-ip azure: the instance has no public IPv4 address",
    );
}

#[test]
fn an_unreachable_metadata_service_is_asked_three_times_then_floe_exits() {
    // A port nobody listens on: each connection is refused.
    let dead = format!("127.0.0.1:{}", free_port());
    let run = serve_until_exit(&dead, &["--external-ip", "gcp"]);
    assert_fails(
        &run,
        &format!(
            "floe serve: external-ip gcp: the metadata service at {dead} cannot be connected to"
        ),
    );
    assert!(
        run.stderr.contains(
            "after 3 attempts (is this a Compute Engine VM with its metadata server reachable?)"
        ),
        "{}",
        run.describe()
    );
}

#[test]
fn without_a_cloud_value_the_metadata_service_is_never_asked() {
    let mock = aws(200);
    let floe = FloeServe::start(ServeOpts::default().env(ENDPOINT_VAR, &mock.addr.to_string()));
    let mut cmd = Command::new(FLOE);
    cmd.args(["turn", "--server", &floe.addr().to_string()])
        .args(["--user", "bob", "--password", "secret"]);
    let mut client = LineProcess::spawn("floe turn", cmd).expect("starting floe turn");
    let relayed: SocketAddr = value(&client.wait_for_key("relayed", LINE_WAIT))
        .parse()
        .unwrap();
    assert_eq!(relayed.ip(), Ipv4Addr::LOCALHOST, "{}", client.describe());
    assert!(mock.asked().is_empty(), "{:?}", mock.asked());
}

/// The value (second word) of a `KEY VALUE` line.
fn value(line: &str) -> String {
    line.split(' ').nth(1).unwrap_or("").to_owned()
}
