//! The metadata client: its response parser, its requests, its bounds.

use super::*;

fn parse(text: &str) -> Result<Option<Response>, HttpError> {
    parse_response(text.as_bytes(), true)
}

fn ok(text: &str) -> Response {
    parse(text).unwrap().expect("complete")
}

const GET: Request<'static> = Request {
    method: "GET",
    host: "169.254.169.254",
    target: AWS_IPV4,
    header: ("X-aws-ec2-metadata-token", "t"),
};
const AT: SocketAddr = ENDPOINT;

fn answer(status: u16, body: &str) -> Result<Ipv4Addr, Failure> {
    let response = Response {
        status,
        reason: if status == 404 { "Not Found" } else { "X" }.into(),
        body: body.as_bytes().to_vec(),
    };
    ipv4_in(response, &GET, AT)
}

#[test]
fn a_response_with_a_length_or_up_to_the_close() {
    let r = ok(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n198.51.100.23\n",
    );
    assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
    assert_eq!(r.body, b"198.51.100.23\n");
    // Bytes past Content-Length are not the body.
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nabcd").body,
        b"ab"
    );
    // No length: the body ends at the close, and not before.
    assert_eq!(ok("HTTP/1.0 200 OK\r\n\r\nabc").body, b"abc");
    let open = b"HTTP/1.1 200 OK\r\n\r\nabc";
    assert_eq!(parse_response(open, false), Ok(None));
    // A reason phrase may be absent; headers may have no space after the colon.
    let r = ok("HTTP/1.1 404\r\nContent-Length:0\r\n\r\n");
    assert_eq!((r.status, r.status_text()), (404, "404".to_owned()));
    // A head or a body still coming.
    assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nConte", false), Ok(None));
    let short = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab";
    assert_eq!(parse_response(short, false), Ok(None));
    assert_eq!(
        parse_response(short, true),
        Err(HttpError::Closed("before the end of the body"))
    );
    assert_eq!(parse(""), Err(HttpError::Closed("without answering")));
    assert_eq!(
        parse("HTTP/1.1 200 OK\r\n"),
        Err(HttpError::Closed("in the middle of the response head"))
    );
}

#[test]
fn a_chunked_response_is_read() {
    let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                5;ext=1\r\n198.5\r\n8\r\n1.100.23\r\n0\r\nX-Trailer: y\r\n\r\n";
    assert_eq!(ok(text).body, b"198.51.100.23");
    // Every prefix is incomplete, not an error.
    for cut in 0..text.len() {
        assert_eq!(
            parse_response(&text.as_bytes()[..cut], false),
            Ok(None),
            "{cut}"
        );
    }
    assert_eq!(
        parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n198"),
        Err(HttpError::Closed("in the middle of the chunked body"))
    );
    for bad in [
        "zz\r\n",
        "\r\n",
        "+5\r\nabcde\r\n0\r\n\r\n",
        "2\r\nabcd\r\n",
    ] {
        let text = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{bad}");
        assert!(
            matches!(parse(&text), Err(HttpError::Malformed(_))),
            "{bad:?}: {:?}",
            parse(&text)
        );
    }
    assert_eq!(
        parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
        Err(HttpError::TransferEncoding("gzip".into()))
    );
}

#[test]
fn an_oversized_response_is_an_error() {
    let big = "x".repeat(MAX_BODY + 1);
    let text = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{big}",
        big.len()
    );
    assert_eq!(parse(&text), Err(HttpError::BodyTooLong));
    // Refused from the header alone, before the body is read.
    assert_eq!(
        parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            false
        ),
        Err(HttpError::BodyTooLong)
    );
    let text = format!("HTTP/1.1 200 OK\r\n\r\n{big}");
    assert_eq!(
        parse_response(text.as_bytes(), false),
        Err(HttpError::BodyTooLong)
    );
    let chunks = format!("1000\r\n{}\r\n1\r\nx\r\n0\r\n\r\n", "x".repeat(4096));
    let text = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}");
    assert_eq!(parse(&text), Err(HttpError::BodyTooLong));
    let huge = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n";
    assert_eq!(parse(huge), Err(HttpError::BodyTooLong));
    let head = format!("HTTP/1.1 200 OK\r\nX: {}", "y".repeat(MAX_HEAD));
    assert_eq!(
        parse_response(head.as_bytes(), false),
        Err(HttpError::HeadTooLong)
    );
    assert_eq!(
        parse(&format!("{head}\r\n\r\n")),
        Err(HttpError::HeadTooLong)
    );
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bad in [
        "SSH-2.0-OpenSSH_9.2\r\n\r\n",
        "HTTP/2 200\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 OK 200\r\n\r\n",
        "HTTP/1.1\r\n\r\n",
        "HTTP/1.1 +20 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ] {
        let e = parse(bad).unwrap_err();
        assert!(matches!(e, HttpError::Malformed(_)), "{bad:?}: {e:?}");
        assert!(!e.is_transient(), "{bad:?}");
    }
    let e = parse_response(b"HTTP/1.1 200 OK\r\nX: \xff\xfe\r\n\r\n", true).unwrap_err();
    assert!(e.to_string().contains("not text"), "{e}");
    // Every prefix of every byte string parses to something without a panic.
    let noise: Vec<u8> = (0..=255u8).cycle().take(600).collect();
    for cut in 0..noise.len() {
        let _ = parse_response(&noise[..cut], cut % 2 == 0);
        let _ = dechunk(&noise[..cut]);
    }
    let e = HttpError::Malformed(format!("status line {}", quote("x".repeat(200))));
    assert!(e.to_string().len() < 140, "{e}");
}

#[test]
fn the_body_must_be_an_ipv4_address() {
    assert_eq!(
        answer(200, " 198.51.100.23\r\n").unwrap(),
        Ipv4Addr::new(198, 51, 100, 23)
    );
    for bad in [
        "2001:db8::1",
        "198.51.100",
        "<html>oops</html>",
        "198.51.100.23x",
    ] {
        let Err(Failure::Final(why)) = answer(200, bad) else {
            panic!("{bad} was taken");
        };
        assert!(why.contains("not an IPv4 address"), "{why}");
        assert!(why.contains("GET /latest/meta-data/public-ipv4"), "{why}");
    }
}

#[test]
fn statuses_other_than_200_say_why() {
    // No public IPv4: 404 (AWS, GCP), or an empty body (Azure).
    for (status, body) in [(404, ""), (200, ""), (200, " \n")] {
        let Err(Failure::Final(why)) = answer(status, body) else {
            panic!("{status} {body:?}");
        };
        assert!(
            why.starts_with("the instance has no public IPv4 address"),
            "{why}"
        );
        assert!(why.contains("--external-ip auto"), "{why}");
    }
    let Err(Failure::Final(why)) = answer(404, "") else {
        unreachable!()
    };
    assert!(why.contains("answered 404 Not Found to GET"), "{why}");
    for status in [500, 503, 410, 429] {
        assert!(
            matches!(answer(status, ""), Err(Failure::Retry(_))),
            "{status}"
        );
    }
    for status in [400, 401, 403, 301] {
        let Err(Failure::Final(why)) = answer(status, "") else {
            panic!("{status}");
        };
        assert!(
            why.contains(&format!("answered {status} X to GET")),
            "{why}"
        );
    }
}

#[actix_rt::test]
async fn a_service_that_accepts_and_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    let held = tokio::spawn(async move { listener.accept().await });
    let started = std::time::Instant::now();
    let e = exchange(at, &GET).await.unwrap_err();
    assert_eq!(e, HttpError::Timeout);
    assert!(e.is_transient());
    assert!(
        started.elapsed() >= REQUEST_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.to_string(), "did not answer in 5 s");
    held.abort();
}

#[actix_rt::test]
async fn an_exchange_reads_the_answer_and_sends_the_request() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = vec![0u8; 1024];
        let mut n = 0;
        while !got[..n].ends_with(b"\r\n\r\n") {
            n += s.read(&mut got[n..]).await.unwrap();
        }
        // The answer comes in pieces, and the connection stays open after it.
        for piece in [
            "HTTP/1.1 200 OK\r\nContent-Le",
            "ngth: 13\r\n\r\n198.51",
            ".100.23",
        ] {
            s.write_all(piece.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        got.truncate(n);
        (got, s)
    });
    let r = exchange(at, &GET).await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"198.51.100.23"[..]));
    let (got, _open) = server.await.unwrap();
    assert_eq!(got, GET.to_bytes());
}

#[test]
fn requests_name_the_host_and_close() {
    let text = String::from_utf8(GET.to_bytes()).unwrap();
    assert_eq!(
        text,
        "GET /latest/meta-data/public-ipv4 HTTP/1.1\r\nHost: 169.254.169.254\r\n\
         X-aws-ec2-metadata-token: t\r\nConnection: close\r\n\r\n"
    );
    let put = Request {
        method: "PUT",
        target: AWS_TOKEN,
        header: ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
        ..GET
    };
    let text = String::from_utf8(put.to_bytes()).unwrap();
    assert!(
        text.starts_with("PUT /latest/api/token HTTP/1.1\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nContent-Length: 0\r\n"), "{text}");
}
