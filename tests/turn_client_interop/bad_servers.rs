//! floe's `TurnClient` against fake servers in the test that misbehave (wrong transaction
//! ids, garbage, a success without XOR-RELAYED-ADDRESS, silence, closed connections), and
//! that redirect with 300 Try Alternate.

use super::*;

// ---- bad servers ------------------------------------------------------------------------------

/// Short timers so a silent server fails in well under a second (the RFC's own timing is
/// tested in the core with a fake clock). Only for tests that wait for a timeout.
fn short_timers() -> TransactionConfig {
    TransactionConfig {
        rto: Duration::from_millis(20),
        rc: 4,
        rm: 4,
        reliable_timeout: Duration::from_millis(500),
    }
}

/// Timers no stalled test thread outlasts, for tests that wait for an answer or a close.
fn patient_timers() -> TransactionConfig {
    TransactionConfig {
        rto: Duration::from_millis(200),
        rc: 7,
        rm: 16,
        reliable_timeout: Duration::from_secs(10),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Misbehaviour {
    /// A success with another transaction id and a garbage datagram, then the right answer.
    WrongTransactionIdThenRight,
    /// Only garbage: random bytes, a truncated header, a bad length, stray ChannelData.
    Garbage,
    /// An Allocate success without XOR-RELAYED-ADDRESS.
    NoRelayedAddress,
    /// Nothing at all.
    Silence,
}

const FAKE_RELAYED: &str = "127.0.0.1:40000";

fn success(req: &Message, tid: TransactionId, relayed: bool, from: SocketAddr) -> Bytes {
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, req.method().success(), tid);
    enc.add(&XorMappedAddress(from));
    if req.method() == Method::ALLOCATE {
        if relayed {
            enc.add(&XorRelayedAddress(FAKE_RELAYED.parse().unwrap()));
        }
        enc.add(&Lifetime(600));
    }
    enc.finish().unwrap();
    buf.freeze()
}

fn garbage() -> Vec<Vec<u8>> {
    let mut bad_length = vec![0x01, 0x03, 0xFF, 0xFC, 0x21, 0x12, 0xA4, 0x42];
    bad_length.extend_from_slice(&[1; 12]);
    vec![
        vec![0xFF; 64],
        vec![0x01, 0x03, 0x00],
        bad_length,
        b"\x40\x00\x00\x04data".to_vec(),
        b"\x7f\xff\x00\x00".to_vec(),
        Vec::new(),
        (0..=255u8).collect(),
    ]
}

/// A UDP "TURN server" on 127.0.0.1 that misbehaves as told; counts requests it saw.
async fn fake_udp_server(how: Misbehaviour) -> (SocketAddr, Rc<Cell<usize>>) {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let seen = Rc::new(Cell::new(0));
    let count = seen.clone();
    actix_rt::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(req) = Message::decode(Bytes::copy_from_slice(&buf[..n])) else {
                continue;
            };
            if req.class() != Class::Request {
                continue;
            }
            count.set(count.get() + 1);
            let mut out: Vec<Vec<u8>> = Vec::new();
            match how {
                Misbehaviour::WrongTransactionIdThenRight => {
                    let mut other = req.transaction_id();
                    other.0[0] ^= 0xFF;
                    out.push(success(&req, other, true, "127.0.0.1:1".parse().unwrap()).to_vec());
                    out.extend(garbage());
                    out.push(success(&req, req.transaction_id(), true, from).to_vec());
                }
                Misbehaviour::Garbage => out.extend(garbage()),
                Misbehaviour::NoRelayedAddress => {
                    out.push(success(&req, req.transaction_id(), false, from).to_vec())
                }
                Misbehaviour::Silence => {}
            }
            for d in out {
                let _ = socket.send_to(&d, from).await;
            }
        }
    });
    (addr, seen)
}

async fn bad_server_client(
    server: SocketAddr,
    transport: Transport,
    timers: TransactionConfig,
) -> (TurnClientHandle, EventStream<TurnClientEvent>) {
    let mut config = TurnClientConfig::new(server, USER, PASSWORD);
    config.session.transport = transport;
    config.session.transaction = timers;
    let client = TurnClient::connect(config).await.expect("connect");
    let events = client.events();
    (client, events)
}

#[actix_rt::test]
async fn a_reply_with_a_wrong_transaction_id_is_ignored_and_garbage_dropped() {
    let (server, _) = fake_udp_server(Misbehaviour::WrongTransactionIdThenRight).await;
    let (client, mut events) = bad_server_client(server, Transport::Udp, patient_timers()).await;
    client.allocate().await.unwrap();
    let relayed = expect(&mut events, "allocate", |e| match e {
        TurnClientEvent::Session(ClientEvent::Allocated { relayed, .. }) => Some(relayed.clone()),
        _ => None,
    })
    .await;
    assert_eq!(relayed, [FAKE_RELAYED.parse::<SocketAddr>().unwrap()]);
    client.binding();
    let mapped = expect(&mut events, "binding", |e| match e {
        TurnClientEvent::Session(ClientEvent::BindingSucceeded { mapped, .. }) => Some(*mapped),
        _ => None,
    })
    .await;
    assert_eq!(mapped.port(), client.local_addr().port());
    // Nothing else came of the wrong ids and the garbage.
    let extra = events_within(&mut events, Duration::from_millis(200)).await;
    assert!(extra.is_empty(), "{extra:?}");
    client.close().await;
}

#[actix_rt::test]
async fn garbage_is_dropped_and_the_request_times_out() {
    let (server, seen) = fake_udp_server(Misbehaviour::Garbage).await;
    let (client, mut events) = bad_server_client(server, Transport::Udp, short_timers()).await;
    client.allocate().await.unwrap();
    let (request, code, reason) = expect_error(&mut events, "garbage").await;
    assert_eq!((request, code), (Some(Method::ALLOCATE), None));
    assert!(reason.contains("timed out"), "{reason}");
    assert_eq!(seen.get(), 4, "Rc = 4 sends with the short timers");
    // The actor is still alive and usable.
    client.binding();
    let (request, _, reason) = expect_error(&mut events, "binding to garbage").await;
    assert_eq!(request, Some(Method::BINDING));
    assert!(reason.contains("timed out"), "{reason}");
    client.close().await;
}

#[actix_rt::test]
async fn a_success_without_xor_relayed_address_is_an_error() {
    let (server, _) = fake_udp_server(Misbehaviour::NoRelayedAddress).await;
    let (client, mut events) = bad_server_client(server, Transport::Udp, patient_timers()).await;
    client.allocate().await.unwrap();
    let (request, code, reason) = expect_error(&mut events, "no relayed address").await;
    assert_eq!((request, code), (Some(Method::ALLOCATE), None));
    assert!(reason.contains("XOR-RELAYED-ADDRESS"), "{reason}");
    // No allocation: commands that need one are refused, and the client can try again.
    assert!(matches!(
        client.create_permission(vec![LOCALHOST]).await,
        Err(TurnClientError::Refused(ClientError::NoAllocation))
    ));
    client
        .allocate()
        .await
        .expect("idle again: a new Allocate is accepted");
    client.close().await;
}

#[actix_rt::test]
async fn silence_becomes_a_timeout_after_the_retransmissions() {
    let (server, seen) = fake_udp_server(Misbehaviour::Silence).await;
    let (client, mut events) = bad_server_client(server, Transport::Udp, short_timers()).await;
    client.allocate().await.unwrap();
    let (request, code, reason) = expect_error(&mut events, "silence").await;
    assert_eq!((request, code), (Some(Method::ALLOCATE), None));
    assert!(reason.contains("timed out"), "{reason}");
    assert_eq!(seen.get(), 4, "every retransmission was sent");
    client.close().await;
    expect(&mut events, "close", |e| {
        (*e == TurnClientEvent::Closed).then_some(())
    })
    .await;
}

/// A TCP "TURN server" that accepts and then either says nothing or sends garbage.
async fn fake_tcp_server(garbage: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    actix_rt::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            actix_rt::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = conn.read(&mut buf).await;
                if garbage {
                    let _ = conn.write_all(&[0xFF; 32]).await;
                }
                // Hold the connection open until the client goes.
                while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[actix_rt::test]
async fn tcp_garbage_closes_the_session_with_an_error() {
    let server = fake_tcp_server(true).await;
    let (client, mut events) = bad_server_client(server, Transport::Tcp, patient_timers()).await;
    client.allocate().await.unwrap();
    let (request, code, reason) = expect_error(&mut events, "TCP garbage").await;
    assert_eq!((request, code), (None, None));
    assert!(reason.contains("cannot be framed"), "{reason}");
    expect(&mut events, "closed", |e| {
        (*e == TurnClientEvent::Closed).then_some(())
    })
    .await;
    assert!(matches!(
        client.allocate().await,
        Err(TurnClientError::Closed)
    ));
}

#[actix_rt::test]
async fn tcp_silence_becomes_a_timeout() {
    let server = fake_tcp_server(false).await;
    let (client, mut events) = bad_server_client(server, Transport::Tcp, short_timers()).await;
    client.allocate().await.unwrap();
    let (request, code, reason) = expect_error(&mut events, "TCP silence").await;
    assert_eq!((request, code), (Some(Method::ALLOCATE), None));
    assert!(reason.contains("timed out"), "{reason}");
    client.close().await;
}

#[actix_rt::test]
async fn a_server_that_closes_the_connection_ends_the_session() {
    let listener = tokio::net::TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();

    // With a request under way the loss is an error.
    let (client, mut events) = bad_server_client(addr, Transport::Tcp, patient_timers()).await;
    let (conn, _) = listener.accept().await.unwrap();
    client.allocate().await.unwrap();
    drop(conn);
    let (request, _, reason) = expect_error(&mut events, "closed by the server").await;
    assert_eq!(request, None);
    // A FIN, or a RST since the server dropped our unread request.
    assert!(
        reason.contains("closed") || reason.contains("reset"),
        "{reason}"
    );
    assert_eq!(events.recv().await, Some(TurnClientEvent::Closed));
    assert_eq!(events.recv().await, None);

    // With nothing on the connection it is just the end.
    let (_client, mut events) = bad_server_client(addr, Transport::Tcp, patient_timers()).await;
    let (conn, _) = listener.accept().await.unwrap();
    drop(conn);
    let end = tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event");
    assert_eq!(end, Some(TurnClientEvent::Closed));
}

// ---- redirection ------------------------------------------------------------------------------

fn try_alternate(req: &Message, to: SocketAddr) -> Bytes {
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, req.method().error(), req.transaction_id());
    enc.add(&ErrorCode::new(300)).add(&AlternateServer(to));
    enc.finish().unwrap();
    buf.freeze()
}

/// A "TURN server" that answers every Allocate with 300 Try Alternate to `to`.
async fn redirecting_server(transport: Transport, to: SocketAddr) -> SocketAddr {
    if transport == Transport::Udp {
        let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
        let addr = socket.local_addr().unwrap();
        actix_rt::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                if let Ok(req) = Message::decode(Bytes::copy_from_slice(&buf[..n])) {
                    let _ = socket.send_to(&try_alternate(&req, to), from).await;
                }
            }
        });
        return addr;
    }
    let listener = tokio::net::TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    actix_rt::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            actix_rt::spawn(async move {
                let mut framer = floe::framing::StreamFramer::new();
                let mut buf = [0u8; 2048];
                while let Ok(n @ 1..) = conn.read(&mut buf).await {
                    framer.push(&buf[..n]).unwrap();
                    while let Ok(Some(frame)) = framer.next_frame() {
                        if let Ok(req) = Message::decode(frame.into_bytes()) {
                            let _ = conn.write_all(&try_alternate(&req, to)).await;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// RFC 8656 §7.4: the client follows ALTERNATE-SERVER (over TCP on a new connection) and
/// allocates and relays there.
async fn redirected_session(transport: Transport) {
    let target = Target::floe(false).await;
    let what = |step: &str| format!("redirect over {transport:?}: {step}");
    let redirector = redirecting_server(transport, target.udp_tcp).await;
    let mut config = target.config(transport);
    config.session.server = redirector;
    let client = TurnClient::connect(config).await.expect("connect");
    let mut events = client.events();
    let echo = Echo::start().await;
    client.allocate().await.unwrap();
    let to = expect(&mut events, &what("redirected"), |e| match e {
        TurnClientEvent::Session(ClientEvent::Redirected { to, .. }) => Some(*to),
        _ => None,
    })
    .await;
    assert_eq!(to, target.udp_tcp);
    let relayed = expect(&mut events, &what("allocate"), |e| match e {
        TurnClientEvent::Session(ClientEvent::Allocated { relayed, .. }) => Some(relayed.clone()),
        _ => None,
    })
    .await;
    assert_eq!(relayed[0].ip(), LOCALHOST);
    permission_round_trip(&client, &mut events, &echo, &what("round trip")).await;
    client.close().await;
    target.stop().await;
}

#[actix_rt::test]
async fn udp_300_try_alternate_moves_the_session() {
    redirected_session(Transport::Udp).await;
}

#[actix_rt::test]
async fn tcp_300_try_alternate_reconnects_to_the_alternate_server() {
    redirected_session(Transport::Tcp).await;
}
