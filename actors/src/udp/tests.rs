//! The module's tests. They send on loopback only.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// tokio learns a new socket is writable only when its reactor next runs; a send right
/// after bind (a relay created and used within one batch) must not be refused for that.
#[actix_rt::test]
async fn a_new_socket_sends_before_the_reactor_has_run() {
    let config = UdpSocketConfig::default();
    let a = BatchSocket::bind(loopback(), &config).unwrap();
    let b = BatchSocket::bind(loopback(), &config).unwrap();
    a.try_send(&Outgoing::new(b.local_addr(), b"first"))
        .expect("the first datagram is sent");
    let mut bufs = b.recv_buffers(1500);
    let got = tokio::time::timeout(Duration::from_secs(10), b.recv_batch(&mut bufs))
        .await
        .expect("it arrives")
        .unwrap()
        .next()
        .map(|d| d.payload.to_vec());
    assert_eq!(got.as_deref(), Some(&b"first"[..]));
}

/// Without writable wake-ups (relay sockets) a socket still sends (batches and waiting
/// sends, which go straight to the kernel) and receives.
#[actix_rt::test]
async fn a_socket_without_writable_wakeups_sends_and_receives() {
    let quiet = UdpSocketConfig {
        writable_wakeups: false,
        ..UdpSocketConfig::default()
    };
    let a = BatchSocket::bind(loopback(), &quiet).unwrap();
    let b = BatchSocket::bind(loopback(), &quiet).unwrap();
    let mut queue = SendQueue::new();
    queue.push(b.local_addr(), b"one");
    assert_eq!(a.try_send_batch(&mut queue).sent, 1);
    queue.push(b.local_addr(), b"two");
    queue.push(b.local_addr(), b"three");
    assert_eq!(a.try_send_batch(&mut queue).sent, 2);
    a.send_to(b"four", b.local_addr()).await.unwrap();
    let mut bufs = b.recv_buffers(1500);
    let mut got = Vec::new();
    while got.len() < 4 {
        let batch = tokio::time::timeout(Duration::from_secs(10), b.recv_batch(&mut bufs))
            .await
            .expect("they arrive")
            .unwrap();
        got.extend(batch.map(|d| d.payload.to_vec()));
    }
    assert_eq!(got, [&b"one"[..], b"two", b"three", b"four"]);
}

#[test]
fn bind_outside_a_runtime_is_an_error() {
    let err = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap_err();
    assert!(matches!(err, UdpError::NoRuntime), "{err}");
}

/// Sends 1000 numbered datagrams from one socket to another on loopback, at most 100 in
/// flight, and checks each arrives once. Returns (receive calls, largest batch).
async fn thousand_datagrams(gso: bool, gro: bool) -> (u32, u32) {
    let config = UdpSocketConfig {
        gro,
        ..UdpSocketConfig::listener()
    };
    let a = BatchSocket::bind(loopback(), &config).unwrap();
    let b = BatchSocket::bind(loopback(), &config).unwrap();
    let mut bufs = b.recv_buffers(1500);
    let mut queue = SendQueue::with_capacity(64 * 1024, 64);

    const TOTAL: u32 = 1000;
    let mut seen = vec![false; TOTAL as usize];
    let (mut received, mut sent, mut receives, mut largest_batch) = (0u32, 0u32, 0, 0);
    while received < TOTAL {
        // Keep at most 100 in flight so the loopback receive buffer never overflows.
        while sent < TOTAL && sent - received < 100 {
            let mut payload = [0u8; 100];
            payload[..4].copy_from_slice(&sent.to_be_bytes());
            if gso {
                queue.push(b.local_addr(), &payload);
            } else {
                a.send_to(&payload, b.local_addr()).await.unwrap();
            }
            sent += 1;
            if queue.len() == 32 {
                let report = a.send_batch(&mut queue).await;
                assert_eq!(report.failed, 0, "{:?}", report.first_error);
            }
        }
        let report = a.send_batch(&mut queue).await;
        assert_eq!(report.failed, 0, "{:?}", report.first_error);

        let batch = tokio::time::timeout(Duration::from_secs(5), b.recv_batch(&mut bufs))
            .await
            .expect("datagrams within 5 s")
            .unwrap();
        let mut n = 0;
        for d in batch {
            assert_eq!(d.source, a.local_addr());
            assert_eq!(d.destination, Some(b.local_addr()));
            assert_eq!(d.payload.len(), 100);
            let seq = u32::from_be_bytes(d.payload[..4].try_into().unwrap());
            assert!(!seen[seq as usize], "datagram {seq} twice");
            seen[seq as usize] = true;
            n += 1;
        }
        received += n;
        receives += 1;
        largest_batch = largest_batch.max(n);
    }
    assert!(seen.iter().all(|s| *s));
    assert_eq!(a.stats().datagrams_sent, u64::from(TOTAL));
    assert_eq!(a.stats().send_errors, 0);
    assert_eq!(b.stats().datagrams_received, u64::from(TOTAL));
    (receives, largest_batch)
}

#[actix_rt::test]
async fn thousand_datagrams_arrive_in_recvmmsg_batches() {
    let (receives, largest) = thousand_datagrams(false, false).await;
    assert!(receives < 1000, "{receives} receives for 1000 datagrams");
    assert!(largest > 1);
}

#[actix_rt::test]
async fn thousand_datagrams_arrive_with_gso_and_gro() {
    let (receives, largest) = thousand_datagrams(true, true).await;
    assert!(receives < 1000, "{receives} receives for 1000 datagrams");
    assert!(largest > 1);
}

#[actix_rt::test]
async fn gso_run_arrives_as_separate_datagrams() {
    let a = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    let b = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    let mut queue = SendQueue::new();
    for i in 0..10u8 {
        queue.push(b.local_addr(), &[i; 200]);
    }
    queue.push(b.local_addr(), &[10; 50]);
    assert_eq!(queue.len(), 11);
    assert_eq!(queue.runs(), 1, "equal sizes then one shorter form one run");
    let report = a.send_batch(&mut queue).await;
    assert_eq!(report.sent, 11);
    assert!(queue.is_empty());

    let mut bufs = b.recv_buffers(1500);
    let mut got = Vec::new();
    while got.len() < 11 {
        let batch = tokio::time::timeout(Duration::from_secs(5), b.recv_batch(&mut bufs))
            .await
            .unwrap()
            .unwrap();
        got.extend(batch.map(|d| (d.payload[0], d.payload.len())));
    }
    let mut want: Vec<_> = (0..10u8).map(|i| (i, 200)).collect();
    want.push((10, 50));
    assert_eq!(got, want);
}

/// Receives until `n` datagrams came or 5 s passed; (first byte, length, source).
async fn receive_n(socket: &BatchSocket, n: usize) -> Vec<(u8, usize, SocketAddr)> {
    let mut bufs = socket.recv_buffers(1500);
    let mut got = Vec::new();
    while got.len() < n {
        let batch = tokio::time::timeout(Duration::from_secs(5), socket.recv_batch(&mut bufs))
            .await
            .expect("datagrams within 5 s")
            .unwrap();
        got.extend(batch.map(|d| (d.payload[0], d.payload.len(), d.source)));
    }
    got
}

#[actix_rt::test]
async fn try_send_batch_reaches_many_destinations_and_skips_bad_ones() {
    let a = BatchSocket::bind(loopback(), &UdpSocketConfig::listener()).unwrap();
    let rx: Vec<BatchSocket> = (0..3)
        .map(|_| BatchSocket::bind(loopback(), &UdpSocketConfig::listener()).unwrap())
        .collect();
    let mut queue = SendQueue::new();
    // 70 datagrams, more than one send group holds, to three sockets in turn, with
    // a destination the kernel refuses in the middle.
    for i in 0..70u8 {
        if i == 40 {
            queue.push("127.0.0.1:0".parse().unwrap(), &[0xEE; 10]);
        }
        queue.push(rx[usize::from(i) % 3].local_addr(), &[i; 100]);
    }
    assert_eq!(queue.runs(), 71);
    let report = a.try_send_batch(&mut queue);
    assert_eq!((report.sent, report.failed, report.would_block), (70, 1, 0));
    assert!(matches!(
        report.first_error,
        Some(SendError::InvalidDestination { .. })
    ));
    assert!(queue.is_empty());
    for (r, socket) in rx.iter().enumerate() {
        let want = (0..70u8).filter(|i| usize::from(*i) % 3 == r).count();
        let got = receive_n(socket, want).await;
        let firsts: Vec<u8> = got.iter().map(|g| g.0).collect();
        let expected: Vec<u8> = (0..70u8).filter(|i| usize::from(*i) % 3 == r).collect();
        assert_eq!(firsts, expected, "in order, each once");
        assert!(got.iter().all(|g| g.1 == 100 && g.2 == a.local_addr()));
    }
    assert_eq!(a.stats().datagrams_sent, 70);
    assert_eq!(a.stats().send_errors, 1);
}

#[actix_rt::test]
async fn try_send_batch_sends_gso_runs_and_sets_the_source() {
    // A wildcard-bound sender answering from a chosen local IP, as a listener does.
    let a = BatchSocket::bind("0.0.0.0:0".parse().unwrap(), &UdpSocketConfig::listener()).unwrap();
    let b = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    let c = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    let from = Some("127.0.0.1".parse().unwrap());
    let mut queue = SendQueue::new();
    for i in 0..10u8 {
        queue.push_from(b.local_addr(), from, &[i; 200]);
    }
    queue.push_from(c.local_addr(), from, &[99; 20]);
    queue.push_from(b.local_addr(), from, &[10; 50]);
    assert_eq!(queue.runs(), 3);
    let report = a.try_send_batch(&mut queue);
    assert_eq!((report.sent, report.failed), (12, 0));
    let expect_src = SocketAddr::new("127.0.0.1".parse().unwrap(), a.local_addr().port());
    let got = receive_n(&b, 11).await;
    let mut want: Vec<_> = (0..10u8).map(|i| (i, 200, expect_src)).collect();
    want.push((10, 50, expect_src));
    assert_eq!(got, want);
    assert_eq!(receive_n(&c, 1).await, vec![(99, 20, expect_src)]);
}

#[actix_rt::test]
async fn the_destination_is_reported_on_wildcard_and_specific_sockets() {
    let wild =
        BatchSocket::bind("0.0.0.0:0".parse().unwrap(), &UdpSocketConfig::default()).unwrap();
    let specific = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    let sender = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    let to_wild = SocketAddr::new("127.0.0.1".parse().unwrap(), wild.local_addr().port());
    sender.send_to(b"w", to_wild).await.unwrap();
    sender.send_to(b"s", specific.local_addr()).await.unwrap();
    for (socket, want) in [(&wild, to_wild), (&specific, specific.local_addr())] {
        let mut bufs = socket.recv_buffers(1500);
        let d = tokio::time::timeout(Duration::from_secs(5), socket.recv_batch(&mut bufs))
            .await
            .unwrap()
            .unwrap()
            .next()
            .unwrap();
        assert_eq!(d.destination, Some(want));
    }
}

#[test]
fn a_queue_without_gso_keeps_every_datagram_apart() {
    let p: SocketAddr = "127.0.0.1:1000".parse().unwrap();
    let mut queue = SendQueue::new();
    queue.set_gso(false);
    for _ in 0..5 {
        queue.push(p, &[0; 100]);
    }
    assert_eq!((queue.len(), queue.runs()), (5, 5));
}

#[actix_rt::test]
async fn empty_datagrams_are_sent_and_skipped_on_receive() {
    let a = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    let b = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    let mut queue = SendQueue::new();
    queue.push(b.local_addr(), b"");
    queue.push(b.local_addr(), b"after");
    let report = a.send_batch(&mut queue).await;
    assert_eq!((report.sent, report.failed), (2, 0));
    let mut bufs = b.recv_buffers(1500);
    let mut got = Vec::new();
    while got.is_empty() {
        let batch = tokio::time::timeout(Duration::from_secs(5), b.recv_batch(&mut bufs))
            .await
            .unwrap()
            .unwrap();
        got.extend(batch.map(|d| d.payload.to_vec()));
    }
    assert_eq!(got, vec![b"after".to_vec()]);
}

#[test]
fn send_queue_runs_follow_gso_rules() {
    let p: SocketAddr = "127.0.0.1:1000".parse().unwrap();
    let q: SocketAddr = "127.0.0.1:1001".parse().unwrap();
    let mut queue = SendQueue::new();
    queue.push(p, &[0; 100]);
    queue.push(p, &[0; 100]);
    queue.push(q, &[0; 100]); // other destination
    queue.push(q, &[0; 120]); // larger than the segment
    queue.push(q, &[0; 60]); // shorter: joins and closes
    queue.push(q, &[0; 60]); // closed run: new one
    queue.push_from(q, Some("127.0.0.2".parse().unwrap()), &[0; 60]); // other source
    assert_eq!(queue.len(), 7);
    assert_eq!(queue.runs(), 5);
    queue.clear();
    assert!(queue.is_empty());
    assert_eq!(queue.runs(), 0);
}

#[actix_rt::test]
async fn dual_stack_reports_ipv4_peers_as_ipv4() {
    let v6 = match BatchSocket::bind(
        "[::ffff:127.0.0.1]:0".parse().unwrap(),
        &UdpSocketConfig {
            ipv6_only: Some(false),
            ..UdpSocketConfig::default()
        },
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("no IPv6 here, skipping: {e}");
            return;
        }
    };
    let v4 = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    let to_v6: SocketAddr = SocketAddr::new("127.0.0.1".parse().unwrap(), v6.local_addr().port());
    v4.send_to(b"hello", to_v6).await.unwrap();
    let mut bufs = v6.recv_buffers(1500);
    let d = tokio::time::timeout(Duration::from_secs(5), v6.recv_batch(&mut bufs))
        .await
        .unwrap()
        .unwrap()
        .next()
        .unwrap();
    assert_eq!(d.source, v4.local_addr());
    assert_eq!(d.destination, Some(to_v6));
    // Answer an IPv4 peer from the IPv6 socket with a plain IPv4 address.
    v6.send_to(b"back", d.source).await.unwrap();
    let mut bufs4 = v4.recv_buffers(1500);
    let back = tokio::time::timeout(Duration::from_secs(5), v4.recv_batch(&mut bufs4))
        .await
        .unwrap()
        .unwrap()
        .next()
        .unwrap();
    assert_eq!(back.payload, b"back");
}

#[actix_rt::test]
async fn bad_destinations_are_errors_and_the_socket_keeps_working() {
    let a = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    let b = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    let port0: SocketAddr = "127.0.0.1:0".parse().unwrap();
    assert!(matches!(
        a.send_to(b"x", port0).await,
        Err(SendError::InvalidDestination { .. })
    ));
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    assert!(matches!(
        a.send_to(b"x", v6).await,
        Err(SendError::AddressFamily { .. })
    ));
    let too_big = vec![0u8; 70_000];
    assert!(matches!(
        a.send_to(&too_big, b.local_addr()).await,
        Err(SendError::TooLarge { len: 70_000, .. })
    ));
    assert_eq!(a.stats().send_errors, 3);
    assert!(a.max_gso_segments() >= 1);
    a.send_to(b"still here", b.local_addr()).await.unwrap();
    let mut bufs = b.recv_buffers(1500);
    let d = tokio::time::timeout(Duration::from_secs(5), b.recv_batch(&mut bufs))
        .await
        .unwrap()
        .unwrap()
        .next()
        .unwrap();
    assert_eq!(d.payload, b"still here");
}

#[actix_rt::test]
async fn icmp_port_unreachable_does_not_stop_the_socket() {
    let a = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    let b = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    // A port nobody listens on: the kernel answers with ICMP port unreachable.
    let closed = {
        let s = std::net::UdpSocket::bind(loopback()).unwrap();
        s.local_addr().unwrap()
    };
    // Make the kernel report ICMP errors on this unconnected socket, the worst case.
    #[cfg(target_os = "linux")]
    a.state
        .enable_transport_errors(quinn_udp::UdpSockRef::from(&a.io))
        .unwrap();

    let mut bufs_a = a.recv_buffers(1500);
    let mut bufs_b = b.recv_buffers(1500);
    for round in 0..5u8 {
        let _ = a.send_to(b"to nobody", closed).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Whatever the kernel left (ECONNREFUSED on send or receive), both directions
        // keep working.
        let mut sent = false;
        for _ in 0..3 {
            if a.send_to(&[round], b.local_addr()).await.is_ok() {
                sent = true;
                break;
            }
        }
        assert!(sent, "round {round}: send kept failing");
        let d = tokio::time::timeout(Duration::from_secs(5), b.recv_batch(&mut bufs_b))
            .await
            .unwrap()
            .unwrap()
            .next()
            .unwrap();
        assert_eq!(d.payload, [round]);
        b.send_to(&[round], a.local_addr()).await.unwrap();
        let d = tokio::time::timeout(Duration::from_secs(5), a.recv_batch(&mut bufs_a))
            .await
            .unwrap()
            .unwrap()
            .next()
            .unwrap();
        assert_eq!(d.payload, [round]);
    }
    // The kernel did report the ICMP errors (as failed sends or skipped receives).
    #[cfg(target_os = "linux")]
    assert!(
        a.stats().send_errors + a.stats().recv_errors > 0,
        "{:?}",
        a.stats()
    );
}

#[test]
fn recv_buffers_are_clamped() {
    let b = RecvBuffers::new(1000, 0);
    assert!(b.slots() <= MAX_BATCH);
    assert_eq!(b.slot_len(), 1);
    assert_eq!(b.datagrams().count(), 0);
}

/// The options quinn-udp sets for QUIC are turned off or kept as the config asks, and
/// `set_dont_fragment` toggles DF (RFC 8656 §14).
#[cfg(target_os = "linux")]
#[actix_rt::test]
async fn socket_options_follow_the_config() {
    use nix::sys::socket::{getsockopt, sockopt};
    use rustix::net::sockopt::{ip_mtu_discover, ipv6_mtu_discover};
    use rustix::net::sockopt::{Ipv4PathMtuDiscovery as V4, Ipv6PathMtuDiscovery as V6};

    let quiet = UdpSocketConfig {
        gro: false,
        ..UdpSocketConfig::default()
    };
    let a = BatchSocket::bind(loopback(), &quiet).unwrap();
    assert!(!a.gro_enabled());
    assert!(!getsockopt(&a.io, sockopt::UdpGroSegment).unwrap());
    assert!(!getsockopt(&a.io, sockopt::ReceiveTimestampns).unwrap());
    assert!(!getsockopt(&a.io, sockopt::IpRecvTos).unwrap());
    // Bound to one address: no packet info, the destination is the socket's own.
    assert!(!getsockopt(&a.io, sockopt::Ipv4PacketInfo).unwrap());
    assert_eq!(
        ip_mtu_discover(&a.io).unwrap(),
        V4::DONT,
        "fragmentation allowed"
    );
    a.set_dont_fragment(true).unwrap();
    assert_eq!(ip_mtu_discover(&a.io).unwrap(), V4::PROBE);
    a.set_dont_fragment(false).unwrap();
    assert_eq!(ip_mtu_discover(&a.io).unwrap(), V4::DONT);

    let wild = BatchSocket::bind("0.0.0.0:0".parse().unwrap(), &quiet).unwrap();
    assert!(getsockopt(&wild.io, sockopt::Ipv4PacketInfo).unwrap());

    let gro = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
    assert_eq!(
        getsockopt(&gro.io, sockopt::UdpGroSegment).unwrap(),
        gro.gro_enabled()
    );

    let df = UdpSocketConfig {
        allow_fragmentation: false,
        ..UdpSocketConfig::default()
    };
    let b = BatchSocket::bind(loopback(), &df).unwrap();
    assert_eq!(ip_mtu_discover(&b.io).unwrap(), V4::PROBE);

    let v6 = match BatchSocket::bind("[::1]:0".parse().unwrap(), &quiet) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("no IPv6 here, skipping the IPv6 part: {e}");
            return;
        }
    };
    assert!(!getsockopt(&v6.io, sockopt::Ipv6RecvPacketInfo).unwrap());
    assert!(!getsockopt(&v6.io, sockopt::Ipv6RecvTClass).unwrap());
    assert_eq!(ipv6_mtu_discover(&v6.io).unwrap(), V6::DONT);
    assert!(!getsockopt(&v6.io, sockopt::Ipv6DontFrag).unwrap());
    v6.set_dont_fragment(true).unwrap();
    assert_eq!(ipv6_mtu_discover(&v6.io).unwrap(), V6::PROBE);
    assert!(getsockopt(&v6.io, sockopt::Ipv6DontFrag).unwrap());
}
