//! `floe-bench allocate`: creates COUNT authenticated allocations (Allocate, 401,
//! Allocate with credentials: two round trips each, as a real client does), WINDOW at a
//! time, each from its own socket, and holds them all until the end. Reports
//! allocations per second, the server's CPU per allocation and its memory per held
//! allocation; then deletes them.

use std::time::Duration;

use super::proc_stats::{sample, Interval, Snapshot};
use super::session::{self, PeerSetup, Sessions};
use super::{check_count, AllocateArgs, BenchError, Common, Report, MAX_ALLOCATIONS, SETUP_LIMIT};
use std::rc::Rc;

pub(crate) async fn run(
    common: &Common,
    args: &AllocateArgs,
) -> Result<Option<Report>, BenchError> {
    let count = check_count("count", args.count, MAX_ALLOCATIONS)?;
    let window = check_count("window", args.window, 1024)?;
    let (user, pass) = common.credentials()?;
    let sessions = Rc::new(Sessions::new(common.server, user, pass));
    let sockets = session::sockets(count)?;
    let before = Snapshot::take(common.pid).map_err(BenchError::Server)?;
    let opened = session::open_all(
        &sessions,
        &sockets,
        window,
        |_| PeerSetup::None,
        SETUP_LIMIT,
    )
    .await;
    let after = Snapshot::take(common.pid).map_err(BenchError::Server)?;
    // Memory once the server has settled, with every allocation still held.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = common
        .pid
        .map(sample)
        .transpose()
        .map_err(BenchError::Server)?;
    let allocations: Vec<_> = opened.allocations.into_iter().flatten().collect();
    let made = allocations.len() as u64;

    let mut report = Report::new("allocate");
    report
        .text("server", common.server.to_string())
        .int("count", count as u64)
        .int("window", window as u64)
        .int("allocations", made)
        .int("allocation_failures", opened.failures as u64);
    if let Some(e) = &opened.first_error {
        report.text("first_error", e.clone());
    }
    report.rates("allocations", made, &Interval::between(&before, &after));
    let per_allocation = match (before.server, held) {
        (Some(b), Some(h)) if made > 0 => Some((h.rss as f64 - b.rss as f64) / made as f64),
        _ => None,
    };
    report
        .opt_float("server_bytes_per_allocation", per_allocation)
        .opt_float(
            "server_rss_mb",
            held.map(|h| h.rss as f64 / (1024.0 * 1024.0)),
        );
    let setup = session::Setup {
        sessions,
        allocations,
        failures: opened.failures,
        first_error: opened.first_error,
        setup_s: opened.elapsed.as_secs_f64(),
        bytes_per_allocation: per_allocation,
    };
    session::tear_down(setup, &mut report).await;
    if made == 0 {
        return Err(BenchError::Server(format!(
            "no allocation from {}:\n{}",
            common.server,
            report.to_table()
        )));
    }
    Ok(Some(report))
}
