//! floe-bench: a load generator for any STUN/TURN server on loopback, coturn included.
//!
//! Workloads (each a subcommand):
//! - `binding`: Binding requests per second over many sockets, a window outstanding on each;
//! - `relay`: N allocations relaying through ChannelData or Send/Data indications to an
//!   echo peer inside the tool, closed loop with a window per allocation;
//! - `allocate`: allocations per second while creating COUNT authenticated allocations,
//!   all held until the end;
//! - `hold`: N allocations paced like audio (50 packets/s of 160 bytes each);
//! - `echo-server`: a bare UDP echo, the baseline `binding` is compared with.
//!
//! With `--pid` it reads the server's CPU time (`/proc/PID/stat`) and resident memory
//! (`/proc/PID/status`) before and after, and reports CPU per operation and memory per
//! allocation. It reports its own CPU use too and says when it, not the server, was the
//! bottleneck.
//!
//! The tool is built to cost little per packet: one thread, `recvmmsg` through
//! [`BatchSocket`], `sendmmsg` for everything it sends in a batch, datagrams stamped in
//! place in preallocated buffers, one clock read per received batch, and no allocation or
//! formatting on the data path. Every loop is bounded in count and time; it stops by itself.
#![forbid(unsafe_code)]

mod allocate;
mod binding;
mod cli;
mod echo;
mod flow;
mod histogram;
mod hold;
mod measure;
mod proc_stats;
mod relay;
mod report;
mod session;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use floe_actors::udp::{BatchSocket, UdpError, UdpSocketConfig};

use cli::{check_count, Common};
use cli::{AllocateArgs, BenchArgs, BindingArgs, EchoServerArgs, HoldArgs, RelayArgs, Workload};
use report::Report;

/// Allocations at most, in any workload (each takes a socket in the tool and the server).
const MAX_ALLOCATIONS: usize = 30_000;
/// How long setting up allocations may take in all before the tool gives up.
const SETUP_LIMIT: Duration = Duration::from_secs(120);
/// Allocations set up at once by `relay` and `hold`.
const SETUP_WINDOW: usize = 64;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag is out of range.
    #[error("{0}")]
    Usage(String),
    /// A socket could not be made.
    #[error(transparent)]
    Udp(#[from] UdpError),
    /// The server did not do what the workload needs.
    #[error("{0}")]
    Server(String),
}

/// Nanoseconds since the start of the run, the time base of every stamp.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// A client socket of the tool: loopback, no GRO (so it reads datagrams as a real client
/// would), buffers large enough for a window of packets.
pub(crate) fn client_socket() -> Result<BatchSocket, UdpError> {
    let mut config = UdpSocketConfig::default();
    config.gro = false;
    config.recv_buffer_size = Some(1 << 20);
    config.send_buffer_size = Some(1 << 20);
    BatchSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)), &config)
}

/// Raises the soft open-files limit to the hard one: every allocation needs a socket.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        // Best effort: if it fails, a run that needs more sockets fails when it makes them.
        let _ = setrlimit(Resource::Nofile, lim);
    }
}

/// Runs the workload to completion and prints its report.
fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let common = match Common::from_args(&args.common) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("floe-bench: {e}");
            return ExitCode::from(2);
        }
    };
    raise_open_files_limit();
    let json = args.common.json;
    let result = actix_rt::System::new().block_on(async move {
        match args.workload {
            Workload::Binding(a) => binding::run(&common, &a).await,
            Workload::Relay(a) => relay::run(&common, &a).await,
            Workload::Allocate(a) => allocate::run(&common, &a).await,
            Workload::Hold(a) => hold::run(&common, &a).await,
            Workload::EchoServer(a) => echo::serve(&a).await,
        }
    });
    match result {
        Ok(Some(report)) => {
            report.print(json);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e @ BenchError::Usage(_)) => {
            eprintln!("floe-bench: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("floe-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
