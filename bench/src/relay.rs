//! `floe-bench relay`: N allocations, each from its own socket with a channel (or a
//! permission, for Send/Data indications) to an echo peer inside the tool; a closed loop
//! with a window of packets outstanding per allocation. Reports relayed packets per
//! second (both directions through the server: client to peer, and back), loss and RTT.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use floe::stun::attribute::{Data, XorPeerAddress};
use floe::stun::{AttributeCodec, MessageEncoder, Method, TransactionId};

use super::echo::{echo_socket, spawn_echo, EchoCounters};
use super::flow::{abort, spawn_flows, Engine, Flow, ReplyKind, STAMP_LEN};
use super::measure::{drive, loss_and_rtt};
use super::session::{self, PeerSetup, CHANNEL};
use super::{check_count, BenchError, Clock, Common, RelayArgs, Report};
use super::{MAX_ALLOCATIONS, SETUP_WINDOW};

/// How often stalled windows are looked for.
const TICK: Duration = Duration::from_millis(20);
/// How long outstanding packets may take to come back once sending stops.
const DRAIN: Duration = Duration::from_millis(500);

/// A ChannelData message of `size` data bytes on the tool's channel; stamp at 4.
pub(crate) fn channel_data(size: usize) -> (Vec<u8>, usize) {
    let mut m = vec![0u8; 4 + size];
    m[..2].copy_from_slice(&CHANNEL.to_be_bytes());
    m[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    (m, 4)
}

/// A Send indication (RFC 8656 §10) of `size` data bytes to `peer`; the stamp starts
/// the DATA value.
pub(crate) fn send_indication(peer: SocketAddr, size: usize) -> (Vec<u8>, usize) {
    let mut buf = BytesMut::new();
    let tid = TransactionId(session::random_tid());
    let mut enc = MessageEncoder::new(&mut buf, Method::SEND.indication(), tid);
    enc.add(&XorPeerAddress(peer))
        .add_raw(Data::TYPE, &vec![0u8; size]);
    enc.finish().expect("a Send indication under 64 KiB");
    // Header, XOR-PEER-ADDRESS (4 + 8 or 20), DATA's type and length.
    let xpa = if peer.is_ipv4() { 8 } else { 20 };
    (buf.to_vec(), 20 + 4 + xpa + 4)
}

pub(crate) async fn run(common: &Common, args: &RelayArgs) -> Result<Option<Report>, BenchError> {
    let n = check_count("allocations", args.allocations, MAX_ALLOCATIONS)?;
    let window = check_count("window", args.window, 256)?;
    let peers = check_count("peers", args.peers, n)?;
    if !(STAMP_LEN..=1400).contains(&args.size) {
        return Err(BenchError::Usage(format!(
            "--size must be {STAMP_LEN} to 1400"
        )));
    }
    let mut peer_sockets = Vec::with_capacity(peers);
    for _ in 0..peers {
        peer_sockets.push(Rc::new(echo_socket(SocketAddr::from(([127, 0, 0, 1], 0)))?));
    }
    let peer_addrs: Vec<SocketAddr> = peer_sockets.iter().map(|s| s.local_addr()).collect();
    let indications = args.indications;
    let addrs = peer_addrs.clone();
    let setup = session::set_up(common, n, SETUP_WINDOW, move |i| {
        let p = addrs[i % addrs.len()];
        if indications {
            PeerSetup::Permission(p)
        } else {
            PeerSetup::Channel(p)
        }
    })
    .await?;

    let flows: Vec<Flow> = setup
        .allocations
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let (template, at) = if indications {
                send_indication(peer_addrs[i % peers], args.size)
            } else {
                channel_data(args.size)
            };
            Flow::new(a.socket.clone(), template, at)
        })
        .collect();
    let kind = if indications {
        ReplyKind::DataIndication
    } else {
        ReplyKind::ChannelData
    };
    let engine = Engine::new(
        flows,
        common.server,
        kind,
        window as u32,
        args.size + 128,
        Clock::new(),
    );
    let echo = Rc::new(EchoCounters::default());
    let mut tasks = spawn_flows(&engine);
    for s in &peer_sockets {
        tasks.push(spawn_echo(s.clone(), args.size + 64, echo.clone()));
    }
    let measured = drive(&engine, Some(&echo), common, TICK, DRAIN, |_, _| {}).await;
    abort(tasks);
    let measured = measured?;

    let interval = measured.interval();
    let replies = measured.replies();
    let mut report = Report::new("relay");
    report
        .text("server", common.server.to_string())
        .text(
            "via",
            if indications {
                "indications"
            } else {
                "channels"
            },
        )
        .int("size", args.size as u64)
        .int("window", window as u64);
    session::setup_fields(&mut report, &setup);
    report.rates(
        "relayed packets",
        replies + measured.peer_received(),
        &interval,
    );
    report.float(
        "round_trips_per_s",
        replies as f64 / interval.wall_s.max(1e-9),
    );
    loss_and_rtt(&mut report, &engine.borrow());
    report.int("peer_dropped", echo.dropped.get());
    session::tear_down(setup, &mut report).await;
    if replies == 0 {
        return Err(BenchError::Server(format!(
            "nothing came back through {}:\n{}",
            common.server,
            report.to_table()
        )));
    }
    Ok(Some(report))
}
