//! One measurement: warm-up, the marks at the start and the end of the measured window,
//! the drain of what is still in flight, and loss and RTT from the flows' stamps.

use std::time::{Duration, Instant};

use super::echo::EchoCounters;
use super::flow::{Counters, Engine, SharedEngine};
use super::proc_stats::{Interval, Snapshot};
use super::{BenchError, Common, Report};

/// The state at one end of the measured window.
pub(crate) struct Mark {
    pub snapshot: Snapshot,
    pub counters: Counters,
    /// Datagrams the echo peers had received.
    pub peer_received: u64,
}

/// Both ends of the measured window.
pub(crate) struct Measured {
    pub start: Mark,
    pub end: Mark,
}

impl Measured {
    pub(crate) fn interval(&self) -> Interval {
        Interval::between(&self.start.snapshot, &self.end.snapshot)
    }

    /// Replies the flows received in the window.
    pub(crate) fn replies(&self) -> u64 {
        self.end.counters.replies - self.start.counters.replies
    }

    /// Datagrams the echo peers received in the window.
    pub(crate) fn peer_received(&self) -> u64 {
        self.end.peer_received - self.start.peer_received
    }
}

/// Runs spawned flows through warm-up, measurement and drain: tops every window up,
/// calls `on_tick` every `tick` (pacing, for `hold`), gives up stalled windows, and
/// marks the start and the end of the measurement. Bounded by `--warmup`, `--duration`
/// and `drain`.
pub(crate) async fn drive(
    engine: &SharedEngine,
    peers: Option<&EchoCounters>,
    common: &Common,
    tick: Duration,
    drain: Duration,
    mut on_tick: impl FnMut(&mut Engine, u64),
) -> Result<Measured, BenchError> {
    {
        let mut e = engine.borrow_mut();
        let now = e.clock.now_ns();
        for i in 0..e.flows.len() {
            e.refill(i, now);
        }
    }
    let mark = |e: &Engine| -> Result<Mark, BenchError> {
        Ok(Mark {
            snapshot: Snapshot::take(common.pid).map_err(BenchError::Server)?,
            counters: e.c,
            peer_received: peers.map_or(0, |p| p.received.get()),
        })
    };
    let started = Instant::now();
    let measure_at = started + common.warmup;
    let until = measure_at + common.duration;
    let mut start = None;
    let mut next = started;
    loop {
        let now = Instant::now();
        if start.is_none() && now >= measure_at {
            let mut e = engine.borrow_mut();
            e.measure_from_now();
            start = Some(mark(&e)?);
        }
        if now >= until {
            break;
        }
        {
            let mut e = engine.borrow_mut();
            let ns = e.clock.now_ns();
            on_tick(&mut e, ns);
            e.check_stalls();
        }
        next += tick;
        let mut wake = next.min(until);
        if start.is_none() {
            wake = wake.min(measure_at);
        }
        tokio::time::sleep_until(wake.max(Instant::now()).into()).await;
    }
    let end = {
        let mut e = engine.borrow_mut();
        let m = mark(&e)?;
        e.stop();
        m
    };
    let drain_until = Instant::now() + drain;
    while Instant::now() < drain_until {
        {
            let e = engine.borrow();
            if e.c.replied_measured >= e.c.sent_measured {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let start = match start {
        Some(s) => s,
        None => {
            return Err(BenchError::Usage(
                "the run ended before it was measured".into(),
            ))
        }
    };
    Ok(Measured { start, end })
}

/// Loss over the measured packets (stamped inside the window, not back by the end of
/// the drain), and their RTT.
pub(crate) fn loss_and_rtt(report: &mut Report, e: &Engine) {
    let (sent, replied) = (e.c.sent_measured, e.c.replied_measured);
    let lost = sent.saturating_sub(replied);
    report
        .int("sent", sent)
        .int("replied", replied)
        .int("lost", lost)
        .float(
            "loss_ratio",
            if sent > 0 {
                lost as f64 / sent as f64
            } else {
                0.0
            },
        );
    let us = |q: f64| e.hist.quantile(q).map(|ns| ns as f64 / 1000.0);
    report
        .opt_float("rtt_p50_us", us(0.5))
        .opt_float("rtt_p99_us", us(0.99))
        .opt_float("rtt_p999_us", us(0.999))
        .opt_float(
            "rtt_max_us",
            (e.hist.count() > 0).then(|| e.hist.max() as f64 / 1000.0),
        )
        .int("stalled_windows", e.c.stalls)
        .int("send_failures", e.c.send_failures)
        .int("unexpected", e.c.unexpected);
}
