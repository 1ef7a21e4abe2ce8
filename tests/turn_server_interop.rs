//! floe's TURN server against real peers (issue 3, item 5; INTEROP.md): coturn's
//! `turnutils_uclient` and `turnutils_stunclient`, aioice's TURN client, and hand-built
//! requests that a hostile or careless client would send.
//!
//! Most tests run the real `floe serve` binary as a child process on 127.0.0.1, with ports
//! from a [`PortBlock`]; the stale-nonce test runs the server in-process to give it a short
//! nonce lifetime. Timeouts only bound hangs; nothing here asserts speed.

#[path = "support/mod.rs"]
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use floe::stun::attribute::{
    ChannelNumber, ErrorCode, Lifetime, MappedAddress, Nonce, Realm, RequestedTransport, Username,
    XorMappedAddress, XorPeerAddress, XorRelayedAddress,
};
use floe::stun::{
    Class, IntegrityKey, Message, MessageEncoder, Method, PasswordAlgorithm, TransactionId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use support::{
    require_peers, rest_api_credentials, run_python, turnutils_stunclient, turnutils_uclient,
    FloeServe, ServeOpts, TurnutilsPeer, Uclient, REALM, RUN_TIMEOUT,
};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Bounds one request/response exchange with a server; only there to catch hangs.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(20);
/// Retransmission interval of the hand-built requests (UDP can drop even on loopback).
const RETRANSMIT: Duration = Duration::from_millis(250);

// ---- coturn's turnutils_uclient against floe ----------------------------------------

/// Starts floe with `opts` and a `turnutils_peer` echo, runs `uclient` (built on floe's
/// address and the peer's), and asserts that every message came back.
fn uclient_without_loss(name: &str, opts: ServeOpts, uclient: impl FnOnce(Uclient) -> Uclient) {
    uclient_args_without_loss(name, opts, uclient, |args| args);
}

/// As [`uclient_without_loss`], with the command line edited by `args` last.
fn uclient_args_without_loss(
    name: &str,
    opts: ServeOpts,
    uclient: impl FnOnce(Uclient) -> Uclient,
    args: impl FnOnce(Vec<String>) -> Vec<String>,
) {
    let mut floe = FloeServe::start(opts);
    let peer = TurnutilsPeer::spawn();
    let uclient = uclient(Uclient::new(floe.addr()).peer(peer.addr()));
    let args = args(uclient.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = turnutils_uclient(&args);
    floe.assert_running();
    if report.lost_packets != Some(0) {
        println!("--- floe's log\n{}", floe.log());
    }
    report.assert_no_loss(uclient.expected_messages());
    println!(
        "uclient {name}: {} sent, {} received, 0 lost, in {:.1} s",
        report.sent_messages.unwrap_or(0),
        report.received_messages.unwrap_or(0),
        report.finished.elapsed.as_secs_f64()
    );
}

const UCLIENT_PEERS: &[&str] = &["turnutils_uclient", "turnutils_peer"];

#[test]
fn uclient_udp_channels_through_floe() {
    if !require_peers(UCLIENT_PEERS) {
        return;
    }
    uclient_without_loss("UDP, channels", ServeOpts::default(), |u| u);
}

#[test]
fn uclient_udp_send_indications_through_floe() {
    if !require_peers(UCLIENT_PEERS) {
        return;
    }
    uclient_without_loss("UDP, Send indications (-s)", ServeOpts::default(), |u| {
        u.flag("-s")
    });
}

#[test]
fn uclient_tcp_through_floe() {
    if !require_peers(UCLIENT_PEERS) {
        return;
    }
    uclient_without_loss("TCP (-t)", ServeOpts::default(), |u| u.flag("-t"));
}

#[test]
fn uclient_client_to_client_through_floe() {
    if !require_peers(UCLIENT_PEERS) {
        return;
    }
    // -y pairs the clients' allocations with each other; the echo peer stays unused.
    uclient_without_loss("client to client (-y)", ServeOpts::default(), |u| {
        u.flag("-y")
    });
}

#[test]
fn uclient_rtp_and_rtcp_allocations_through_floe_on_several_threads() {
    if !require_peers(UCLIENT_PEERS) {
        return;
    }
    // Without -c, each client makes an RTP allocation with EVEN-PORT (R) and an RTCP one
    // that redeems the RESERVATION-TOKEN from another client port, which the kernel may
    // hand to another of floe's threads (one SO_REUSEPORT listener each).
    uclient_args_without_loss(
        "RTP + RTCP (EVEN-PORT, RESERVATION-TOKEN), 4 threads",
        ServeOpts::default().arg("--threads").arg("4"),
        |u| u,
        |args| args.into_iter().filter(|a| a != "-c").collect(),
    );
}

#[test]
fn uclient_rest_api_credentials_through_floe() {
    if !require_peers(UCLIENT_PEERS) {
        return;
    }
    uclient_without_loss(
        "TURN REST API credentials (-W)",
        ServeOpts::auth_secret("rest-secret"),
        |u| u.rest_secret("rest-secret"),
    );
}

// ---- turnutils_stunclient, and Binding by hand --------------------------------------

#[test]
fn stunclient_reads_its_reflexive_address_from_floe() {
    if !require_peers(&["turnutils_stunclient"]) {
        return;
    }
    let floe = FloeServe::start(ServeOpts::default());
    let report = turnutils_stunclient(floe.addr());
    let reflexive = report
        .reflexive
        .unwrap_or_else(|| panic!("no reflexive address\n{}", report.finished.describe()));
    assert_eq!(reflexive.ip(), LOOPBACK, "{}", report.finished.describe());
    assert_ne!(reflexive.port(), 0, "{}", report.finished.describe());
    println!("turnutils_stunclient: reflexive address {reflexive}");

    // The exact port, from a socket whose port we know: over UDP ...
    let client = RawClient::new(floe.addr());
    let response = client.binding();
    let local = client.sock.local_addr().unwrap();
    assert_eq!(response.class(), Class::Success);
    assert_eq!(
        attr::<XorMappedAddress>(&response).map(|a| a.0),
        Some(local)
    );
    assert_eq!(attr::<MappedAddress>(&response).map(|a| a.0), Some(local));

    // ... and over TCP, with the same framing a TURN client uses there.
    let mut tcp = TcpStream::connect_timeout(&floe.addr(), EXCHANGE_LIMIT).unwrap();
    tcp.set_read_timeout(Some(EXCHANGE_LIMIT)).unwrap();
    let tid = TransactionId::random(&mut rand::thread_rng());
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING.request(), tid);
    enc.fingerprint();
    enc.finish().unwrap();
    tcp.write_all(&buf).unwrap();
    let mut header = [0u8; 20];
    tcp.read_exact(&mut header).unwrap();
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut whole = header.to_vec();
    whole.resize(20 + len, 0);
    tcp.read_exact(&mut whole[20..]).unwrap();
    let response = Message::decode(Bytes::from(whole)).expect("a STUN response over TCP");
    assert_eq!(response.transaction_id(), tid);
    assert_eq!(
        attr::<XorMappedAddress>(&response).map(|a| a.0),
        Some(tcp.local_addr().unwrap())
    );
}

// ---- aioice through floe --------------------------------------------------------------

/// Runs `aioice_relay.py` against floe with `extra` arguments; asserts that A's relayed
/// candidate comes from floe's relay range and that every message made it both ways.
fn aioice_relay(floe: &FloeServe, user: &str, password: &str, extra: &[&str]) {
    let server = floe.addr().to_string();
    let mut args = vec!["--turn", &server, "--user", user, "--password", password];
    args.extend_from_slice(extra);
    let run = run_python("aioice_relay.py", &args, RUN_TIMEOUT);
    let report = format!(
        "{}\n--- floe's log\n{}",
        run.finished.describe(),
        floe.log()
    );
    assert!(run.finished.success(), "{report}");
    let ok = run.events("ok");
    assert_eq!(ok.len(), 1, "{report}");
    assert_eq!(ok[0]["messages"], 7, "{report}");
    assert_eq!(run.events("echo").len(), 7, "{report}");
    let relayed: SocketAddr = ok[0]["relayed"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no relayed address\n{report}"));
    assert_eq!(relayed.ip(), LOOPBACK, "{report}");
    assert!(floe.relay_ports.contains(&relayed.port()), "{report}");
    let nominated = run.events("nominated");
    let a = nominated
        .iter()
        .find(|e| e["agent"] == "a")
        .unwrap_or_else(|| panic!("A nominated nothing\n{report}"));
    assert!(
        a["local"]
            .as_str()
            .unwrap_or_default()
            .contains("typ relay"),
        "{report}"
    );
    println!(
        "aioice {}: relayed {relayed}, 7 messages echoed, in {:.1} s",
        if extra.is_empty() {
            "UDP".to_string()
        } else {
            extra.join(" ")
        },
        run.finished.elapsed.as_secs_f64()
    );
}

#[test]
fn aioice_relays_data_through_floe_over_udp() {
    if !require_peers(&["aioice"]) {
        return;
    }
    let floe = FloeServe::start(ServeOpts::default());
    aioice_relay(&floe, "bob", "secret", &[]);
}

#[test]
fn aioice_relays_data_through_floe_over_tcp() {
    if !require_peers(&["aioice"]) {
        return;
    }
    let floe = FloeServe::start(ServeOpts::default());
    aioice_relay(&floe, "bob", "secret", &["--turn-tcp"]);
}

#[test]
fn aioice_agents_both_relayed_through_floe() {
    if !require_peers(&["aioice"]) {
        return;
    }
    // Both agents relay-only: data goes from one of floe's allocations to another.
    let floe = FloeServe::start(ServeOpts::default());
    aioice_relay(&floe, "bob", "secret", &["--both-relay"]);
    aioice_relay(&floe, "bob", "secret", &["--both-relay", "--turn-tcp"]);
}

#[test]
fn aioice_with_rest_api_credentials_through_floe() {
    if !require_peers(&["aioice"]) {
        return;
    }
    let floe = FloeServe::start(ServeOpts::auth_secret("rest-secret"));
    let (user, password) = rest_api_credentials("rest-secret", "alice", Duration::from_secs(3600));
    aioice_relay(&floe, &user, &password, &[]);
}

// ---- hand-built requests (turn_server_interop/requests.rs) ----------------------------

#[path = "turn_server_interop/requests.rs"]
mod requests;

use requests::{attr, RawClient};
