//! `floe serve` behind NAT (issue 15, item 4): `--external-ip PUBLIC/PRIVATE` and
//! `--external-ip auto --external-ip-stun HOST:PORT`. The client is `floe turn` (the built
//! binary) relaying to a UDP echo on 127.0.0.1: it is told the public address in
//! XOR-RELAYED-ADDRESS, the admin API shows the same, and the data still goes through the
//! relay socket bound on 127.0.0.1. The STUN server of `auto` is a responder in this test,
//! written with floe's codec, that answers every Binding with 198.51.100.9 (TEST-NET-2):
//! nothing leaves loopback. Timeouts only bound hangs.

#[path = "support/mod.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use floe::stun::attribute::XorMappedAddress;
use floe::stun::{Class, Message, MessageEncoder, Method};
use serde_json::Value;
use support::{free_port, FloeServe, LineProcess, ServeOpts, RUN_TIMEOUT};

const FLOE: &str = env!("CARGO_BIN_EXE_floe");
/// Bounds a wait for a line of `floe turn`; only catches hangs.
const LINE_WAIT: Duration = Duration::from_secs(60);
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Who sent what to a UDP thread of the test.
type Received = Arc<Mutex<Vec<SocketAddr>>>;

/// A UDP thread on 127.0.0.1 that answers each datagram with `answer(datagram, from)`
/// (if any), and remembers who sent one. Stopped on drop.
struct Responder {
    addr: SocketAddr,
    received: Received,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    fn start(answer: impl Fn(&[u8], SocketAddr) -> Option<Vec<u8>> + Send + 'static) -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let received = Received::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (log, done) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    log.lock().unwrap().push(from);
                    if let Some(reply) = answer(&buf[..n], from) {
                        let _ = socket.send_to(&reply, from);
                    }
                }
            }
        });
        Responder {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// A UDP echo.
    fn echo() -> Self {
        Self::start(|data, _| Some(data.to_vec()))
    }

    /// A STUN server that tells every Binding it comes from `public` (the port it saw).
    fn stun_saying(public: IpAddr) -> Self {
        Self::start(move |data, from| {
            let request = Message::decode(Bytes::copy_from_slice(data)).ok()?;
            if request.method() != Method::BINDING || request.class() != Class::Request {
                return None;
            }
            let mut buf = BytesMut::new();
            let mut enc = MessageEncoder::new(
                &mut buf,
                Method::BINDING.success(),
                request.transaction_id(),
            );
            enc.add(&XorMappedAddress(SocketAddr::new(public, from.port())));
            enc.finish().ok()?;
            Some(buf.to_vec())
        })
    }

    fn received(&self) -> Vec<SocketAddr> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Allocates on `floe` with `floe turn`, relays "through the nat" to an echo and back,
/// and checks what the client was told, what the admin API shows and where the data
/// went out from. Returns the relayed address the client was told.
fn relay_through(floe: &FloeServe, public: IpAddr) -> SocketAddr {
    let echo = Responder::echo();
    let mut cmd = Command::new(FLOE);
    cmd.args(["turn", "--server", &floe.addr().to_string()])
        .args(["--user", "bob", "--password", "secret"])
        .args(["--peer", &echo.addr.to_string()])
        .args(["--send", "through the nat", "--hold", "0"]);
    let mut client = LineProcess::spawn("floe turn", cmd).expect("starting floe turn");
    let relayed: SocketAddr = value(&client.wait_for_key("relayed", LINE_WAIT))
        .parse()
        .unwrap();
    let mapped: SocketAddr = value(&client.wait_for_key("mapped", LINE_WAIT))
        .parse()
        .unwrap();
    let data = value(&client.wait_for_key("data", LINE_WAIT));

    // XOR-RELAYED-ADDRESS: the public address, on the port of the relay socket.
    assert_eq!(relayed.ip(), public, "{}", client.describe());
    assert!(
        floe.relay_ports.contains(&relayed.port()),
        "{relayed} is not on a port of floe's relay range"
    );
    // XOR-MAPPED-ADDRESS: what the server saw, untouched.
    assert_eq!(mapped.ip(), LOOPBACK, "{}", client.describe());
    // The echo came back, and it was sent from the relay socket on 127.0.0.1.
    assert_eq!(data, echo.addr.to_string(), "{}", client.describe());
    assert_eq!(
        echo.received(),
        vec![SocketAddr::new(LOOPBACK, relayed.port())]
    );
    // Operators see what the client was told.
    let (code, body) = floe.admin("GET", "/sessions", None);
    assert_eq!(code, 200, "{body}");
    let sessions: Vec<Value> = serde_json::from_str(&body).unwrap();
    let ours = sessions
        .iter()
        .filter(|v| v["client"].as_str() == Some(mapped.to_string().as_str()))
        .collect::<Vec<_>>();
    assert_eq!(ours.len(), 1, "{body}");
    assert_eq!(
        ours[0]["relayed"],
        serde_json::json!([relayed.to_string()]),
        "{body}"
    );
    relayed
}

#[test]
fn a_mapping_advertises_the_public_address_and_relays_through_the_private_one() {
    let floe = FloeServe::start(
        ServeOpts::default()
            .admin()
            .arg("--external-ip")
            .arg("203.0.113.7/127.0.0.1"),
    );
    let relayed = relay_through(&floe, "203.0.113.7".parse().unwrap());
    println!(
        "told {relayed}, relayed through 127.0.0.1:{}",
        relayed.port()
    );
}

#[test]
fn auto_advertises_what_the_stun_server_saw_from_the_relay_address() {
    let public: IpAddr = "198.51.100.9".parse().unwrap();
    let stun = Responder::stun_saying(public);
    let floe = FloeServe::start(
        ServeOpts::default()
            .admin()
            .arg("--external-ip")
            .arg("auto")
            .arg("--external-ip-stun")
            .arg(&stun.addr.to_string()),
    );
    // The Binding was sent from the relay address (127.0.0.1, an ephemeral port).
    let asked = stun.received();
    assert!(!asked.is_empty(), "the STUN server was never asked");
    assert!(asked.iter().all(|a| a.ip() == LOOPBACK), "{asked:?}");
    assert!(
        floe.log().contains("external-ip auto: discovered"),
        "{}",
        floe.log()
    );
    let relayed = relay_through(&floe, public);
    // A reload does not ask again, and keeps the discovered address without a warning.
    let (code, body) = floe.admin("POST", "/reload", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"kept\":[]"), "{body}");
    assert_eq!(stun.received().len(), asked.len(), "asked again on reload");
    relay_through(&floe, public);
    println!("discovered {public}; told {relayed}");
}

/// `floe serve` on a free port with `args` after the test user; run to its end.
fn serve_until_exit(args: &[&str]) -> support::Finished {
    let mut cmd = Command::new(FLOE);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--user", "bob:secret"])
        .args(args);
    support::run(cmd, RUN_TIMEOUT)
}

#[test]
fn auto_with_an_unreachable_stun_server_fails_to_start_with_a_clear_message() {
    // A port nobody listens on: the Bindings get no answer (or an ICMP refusal).
    let dead = format!("127.0.0.1:{}", free_port());
    let run = serve_until_exit(&["--external-ip", "auto", "--external-ip-stun", &dead]);
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        run.describe()
    );
    let want = "floe serve: external-ip auto: no STUN server told the public address of \
                relay address 127.0.0.1 after 3 attempts";
    assert!(run.stderr.contains(want), "{}", run.describe());
    assert!(run.stderr.contains(&dead), "{}", run.describe());
    assert!(!run.stderr.contains("panicked"), "{}", run.describe());
}

#[test]
fn auto_without_a_stun_server_is_a_config_error() {
    let run = serve_until_exit(&["--external-ip", "auto"]);
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(2),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr
            .contains("external-ip auto needs at least one --external-ip-stun HOST:PORT"),
        "{}",
        run.describe()
    );
}

/// The value (second word) of a `KEY VALUE` line.
fn value(line: &str) -> String {
    line.split(' ').nth(1).unwrap_or("").to_owned()
}
