//! `floe-bench hold`: N allocations paced like audio, each sending RATE packets per
//! second of SIZE bytes over its channel to the echo peer, evenly spread in time.
//! Reports loss and RTT (p99 above all), the server's CPU per round trip and memory, and
//! the tool's send lag (how late the paced datagrams left). With `--direct` there is no
//! server: the flows talk to the echo peer straight, which gives the tool's own floor.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::echo::{echo_socket, spawn_echo, EchoCounters};
use super::flow::{abort, spawn_flows, Engine, Flow, ReplyKind, STAMP_LEN};
use super::histogram::Histogram;
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
    // Direct: one echo peer takes every flow's datagrams, and the flows send to it.
    let peers = if args.direct {
        1
    } else {
        n.div_ceil(ALLOCATIONS_PER_PEER)
    };
    let mut peer_sockets = Vec::with_capacity(peers);
    for _ in 0..peers {
        peer_sockets.push(Rc::new(echo_socket(SocketAddr::from(([127, 0, 0, 1], 0)))?));
    }
    let addrs: Vec<SocketAddr> = peer_sockets.iter().map(|s| s.local_addr()).collect();
    let (setup, sockets, destination) = if args.direct {
        let sockets = session::sockets(n)?;
        (None, sockets, addrs[0])
    } else {
        let setup = session::set_up(common, n, SETUP_WINDOW, move |i| {
            PeerSetup::Channel(addrs[i % addrs.len()])
        })
        .await?;
        let sockets = setup.allocations.iter().map(|a| a.socket.clone()).collect();
        (Some(setup), sockets, common.server)
    };
    let n = sockets.len();
    let flows: Vec<Flow> = sockets
        .into_iter()
        .map(|socket| {
            let (template, at) = channel_data(args.size);
            Flow::new(socket, template, at)
        })
        .collect();
    let engine = Engine::new(
        flows,
        destination,
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
    // How late each datagram left against its slot in the schedule.
    let mut lag = Histogram::new();
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
            let slot = t0 + (sent_total as u128 * 1_000_000_000 / per_second as u128) as u64;
            lag.record(ns.saturating_sub(slot));
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
        .text(
            "server",
            if args.direct {
                "none (direct)".to_owned()
            } else {
                common.server.to_string()
            },
        )
        .int("rate", rate)
        .int("size", args.size as u64)
        .flag("direct", args.direct);
    match &setup {
        Some(setup) => session::setup_fields(&mut report, setup),
        None => {
            report.int("allocations", n as u64);
        }
    }
    report.rates(
        "relayed packets",
        measured.replies() + measured.peer_received(),
        &interval,
    );
    // A round trip: client -> server -> peer -> server -> client.
    report.opt_float(
        "server_cpu_us_per_round_trip",
        interval
            .server_cpu_s
            .filter(|_| measured.replies() > 0)
            .map(|c| c * 1e6 / measured.replies() as f64),
    );
    report.int("offered_pps_each_way", per_second);
    loss_and_rtt(&mut report, &engine.borrow());
    let us = |q: f64| lag.quantile(q).map(|ns| ns as f64 / 1000.0);
    report
        .opt_float("send_lag_p50_us", us(0.5))
        .opt_float("send_lag_p99_us", us(0.99))
        .opt_float(
            "send_lag_max_us",
            (lag.count() > 0).then(|| lag.max() as f64 / 1000.0),
        )
        .int("pacing_skipped", skipped)
        .int("peer_dropped", echo.dropped.get());
    if let Some(setup) = setup {
        session::tear_down(setup, &mut report).await;
    }
    Ok(Some(report))
}
