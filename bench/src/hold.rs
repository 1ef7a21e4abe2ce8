//! `floe-bench hold`: N allocations paced like audio, each sending RATE packets per
//! second of SIZE bytes over its channel to the echo peer, evenly spread in time.
//! Reports loss and RTT (p99 above all), and the server's CPU and memory.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::echo::{echo_socket, spawn_echo, EchoCounters};
use super::flow::{abort, spawn_flows, Engine, Flow, ReplyKind, STAMP_LEN};
use super::measure::{drive, loss_and_rtt};
use super::relay::channel_data;
use super::session::{self, PeerSetup};
use super::{check_count, BenchError, Clock, Common, HoldArgs, Report};
use super::{MAX_ALLOCATIONS, SETUP_WINDOW};

/// The pacing timer (tokio's timer has a 1 ms resolution).
const TICK: Duration = Duration::from_millis(1);
/// How long packets may take to come back once sending stops.
const DRAIN: Duration = Duration::from_millis(1000);
/// Allocations per echo peer socket.
const ALLOCATIONS_PER_PEER: usize = 500;

pub(crate) async fn run(common: &Common, args: &HoldArgs) -> Result<Option<Report>, BenchError> {
    let n = check_count("allocations", args.allocations, MAX_ALLOCATIONS)?;
    let rate = check_count("rate", args.rate as usize, 1000)? as u64;
    if !(STAMP_LEN..=1400).contains(&args.size) {
        return Err(BenchError::Usage(format!(
            "--size must be {STAMP_LEN} to 1400"
        )));
    }
    let peers = n.div_ceil(ALLOCATIONS_PER_PEER);
    let mut peer_sockets = Vec::with_capacity(peers);
    for _ in 0..peers {
        peer_sockets.push(Rc::new(echo_socket(SocketAddr::from(([127, 0, 0, 1], 0)))?));
    }
    let addrs: Vec<SocketAddr> = peer_sockets.iter().map(|s| s.local_addr()).collect();
    let setup = session::set_up(common, n, SETUP_WINDOW, move |i| {
        PeerSetup::Channel(addrs[i % addrs.len()])
    })
    .await?;
    let n = setup.allocations.len();
    let flows: Vec<Flow> = setup
        .allocations
        .iter()
        .map(|a| {
            let (template, at) = channel_data(args.size);
            Flow::new(a.socket.clone(), template, at)
        })
        .collect();
    let engine = Engine::new(
        flows,
        common.server,
        ReplyKind::ChannelData,
        0,
        args.size + 128,
        Clock::new(),
    );
    let echo = Rc::new(EchoCounters::default());
    let mut tasks = spawn_flows(&engine);
    for s in &peer_sockets {
        tasks.push(spawn_echo(s.clone(), args.size + 64, echo.clone()));
    }

    // Allocation i sends at (k + i/n) / rate seconds: n * rate packets a second, evenly
    // spread. A tool that falls more than 100 ms behind skips ahead and says so.
    let per_second = n as u64 * rate;
    let mut schedule_start = None;
    let mut sent_total: u64 = 0;
    let mut skipped: u64 = 0;
    let measured = drive(&engine, Some(&echo), common, TICK, DRAIN, |e, now| {
        let t0 = *schedule_start.get_or_insert(now);
        let due = ((now - t0) as u128 * per_second as u128 / 1_000_000_000) as u64;
        if due > sent_total + per_second / 10 {
            skipped += due - sent_total;
            sent_total = due;
        }
        while sent_total < due {
            let i = (sent_total % n as u64) as usize;
            let ns = e.clock.now_ns();
            e.send_paced(i, ns);
            sent_total += 1;
        }
    })
    .await;
    abort(tasks);
    let measured = measured?;

    let interval = measured.interval();
    let mut report = Report::new("hold");
    report
        .text("server", common.server.to_string())
        .int("rate", rate)
        .int("size", args.size as u64);
    session::setup_fields(&mut report, &setup);
    report.rates(
        "relayed packets",
        measured.replies() + measured.peer_received(),
        &interval,
    );
    report.int("offered_pps_each_way", per_second);
    loss_and_rtt(&mut report, &engine.borrow());
    report
        .int("pacing_skipped", skipped)
        .int("peer_dropped", echo.dropped.get());
    session::tear_down(setup, &mut report).await;
    Ok(Some(report))
}
