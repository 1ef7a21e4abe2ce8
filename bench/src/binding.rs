//! `floe-bench binding`: Binding requests (RFC 8489 §6) over many sockets, each with a
//! window of requests outstanding, closed loop. The stamp is the transaction id, so a
//! request is its 20-byte header and a response needs no lookup.

use std::rc::Rc;
use std::time::Duration;

use super::flow::{abort, spawn_flows, Engine, Flow, ReplyKind};
use super::measure::{drive, loss_and_rtt};
use super::{check_count, BenchError, BindingArgs, Clock, Common, Report};

/// Replies up to this size are read (a Binding response is under 100 bytes).
const MAX_REPLY: usize = 1500;
/// How often stalled windows are looked for.
const TICK: Duration = Duration::from_millis(20);
/// How long outstanding requests may take to come back once sending stops.
const DRAIN: Duration = Duration::from_millis(500);

/// A Binding request with no attributes; the transaction id is the stamp.
fn binding_request() -> Vec<u8> {
    let mut r = vec![0u8; 20];
    r[..2].copy_from_slice(&[0x00, 0x01]);
    r[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
    r
}

pub(crate) async fn run(common: &Common, args: &BindingArgs) -> Result<Option<Report>, BenchError> {
    let sockets = check_count("sockets", args.sockets, 4096)?;
    let window = check_count("window", args.window, 1024)?;
    let clock = Clock::new();
    let mut flows = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        flows.push(Flow::new(
            Rc::new(super::client_socket()?),
            binding_request(),
            8,
        ));
    }
    let engine = Engine::new(
        flows,
        common.server,
        ReplyKind::Stun,
        window as u32,
        MAX_REPLY,
        clock,
    );
    let tasks = spawn_flows(&engine);
    let measured = drive(&engine, None, common, TICK, DRAIN, |_, _| {}).await;
    abort(tasks);
    let measured = measured?;
    let interval = measured.interval();
    let mut report = Report::new("binding");
    report
        .text("server", common.server.to_string())
        .int("sockets", sockets as u64)
        .int("window", window as u64);
    let responses = measured.replies();
    report.rates("requests", responses, &interval);
    loss_and_rtt(&mut report, &engine.borrow());
    if responses == 0 {
        return Err(BenchError::Server(format!(
            "no Binding response from {} in {:.1} s",
            common.server, interval.wall_s
        )));
    }
    Ok(Some(report))
}
