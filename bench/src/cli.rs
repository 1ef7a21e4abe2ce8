//! The command line of `floe-bench` (clap derive): a subcommand per workload, the flags
//! they share, and their validation into [`Common`].

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use floe_actors::config::UserCredential;

use crate::BenchError;

/// Longest measurement.
const MAX_DURATION: f64 = 600.0;

/// floe-bench: load a STUN/TURN server on loopback and report rates, loss, latency and
/// (with `--pid`) the server's CPU and memory per operation.
#[derive(Debug, Clone, Parser)]
#[command(name = "floe-bench", version, about, propagate_version = true)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub workload: Workload,
    /// Settings every workload shares.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Settings shared by the workloads (they may follow the workload's name).
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The server to load; loopback addresses only
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:3478"
    )]
    pub server: SocketAddr,
    /// TURN long-term credentials (relay, allocate, hold)
    #[arg(long, global = true, value_name = "NAME:PASS")]
    pub user: Option<UserCredential>,
    /// The server's process id: report its CPU seconds per operation and memory growth
    #[arg(long, global = true, value_name = "PID")]
    pub pid: Option<u32>,
    /// Seconds measured (binding, relay, hold)
    #[arg(long, global = true, value_name = "SECS", default_value_t = 3.0)]
    pub duration: f64,
    /// Seconds of load before measuring starts
    #[arg(long, global = true, value_name = "SECS", default_value_t = 0.5)]
    pub warmup: f64,
    /// Print one JSON object instead of a table
    #[arg(long, global = true)]
    pub json: bool,
}

/// The workloads of `floe-bench`.
#[derive(Debug, Clone, Subcommand)]
pub enum Workload {
    /// Binding requests per second over many sockets, a window outstanding on each
    Binding(BindingArgs),
    /// Relayed packets per second through N allocations to an echo peer in the tool
    Relay(RelayArgs),
    /// Allocations per second while creating COUNT authenticated allocations, held to the end
    Allocate(AllocateArgs),
    /// N allocations paced like audio (RATE packets/s of SIZE bytes each): loss and RTT
    Hold(HoldArgs),
    /// A bare UDP echo on loopback (recvmmsg/sendmmsg), the baseline of `binding`
    EchoServer(EchoServerArgs),
}

/// `floe-bench binding`.
#[derive(Debug, Clone, Args)]
pub struct BindingArgs {
    /// Client sockets
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub sockets: usize,
    /// Requests outstanding on each socket
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub window: usize,
}

/// `floe-bench relay`.
#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// Allocations, each from its own client socket
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub allocations: usize,
    /// Application data bytes per packet (at least 12)
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub size: usize,
    /// Packets outstanding on each allocation
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub window: usize,
    /// Use Send and Data indications instead of channels
    #[arg(long)]
    pub indications: bool,
    /// Echo peer sockets in the tool; allocations are spread over them
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub peers: usize,
}

/// `floe-bench allocate`.
#[derive(Debug, Clone, Args)]
pub struct AllocateArgs {
    /// Allocations to create (and hold until the end)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub count: usize,
    /// Allocations being set up at once
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub window: usize,
}

/// `floe-bench hold`.
#[derive(Debug, Clone, Args)]
pub struct HoldArgs {
    /// Allocations, each with a channel to an echo peer in the tool
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub allocations: usize,
    /// Packets per second on each allocation
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub rate: u32,
    /// Application data bytes per packet (at least 12)
    #[arg(long, value_name = "BYTES", default_value_t = 160)]
    pub size: usize,
    /// No server: each flow sends its datagrams straight to an echo peer in the tool and
    /// back, at the same rate. The tool's own floor: if it loses or lags here, a run
    /// against a server at this rate measures the machine.
    #[arg(long)]
    pub direct: bool,
}

/// `floe-bench echo-server`.
#[derive(Debug, Clone, Args)]
pub struct EchoServerArgs {
    /// Where to listen (loopback only)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Seconds to run before stopping by itself
    #[arg(long = "for", value_name = "SECS", default_value_t = 120.0)]
    pub run_for: f64,
}

/// Validated settings shared by the workloads.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub server: SocketAddr,
    pub user: Option<(String, String)>,
    pub pid: Option<u32>,
    pub duration: Duration,
    pub warmup: Duration,
}

impl Common {
    pub(crate) fn from_args(a: &CommonArgs) -> Result<Self, BenchError> {
        if !a.server.ip().is_loopback() {
            return Err(BenchError::Usage(format!(
                "--server {}: floe-bench loads loopback servers only",
                a.server
            )));
        }
        let secs = |name: &str, v: f64, max: f64| {
            if v.is_finite() && (0.0..=max).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(BenchError::Usage(format!("--{name} must be 0 to {max} s")))
            }
        };
        let duration = secs("duration", a.duration, MAX_DURATION)?.max(Duration::from_millis(100));
        Ok(Common {
            server: a.server,
            user: a
                .user
                .as_ref()
                .map(|u| (u.name.clone(), u.password.expose().to_owned())),
            pid: a.pid,
            duration,
            warmup: secs("warmup", a.warmup, 60.0)?,
        })
    }

    /// The TURN credentials, which TURN workloads need.
    pub(crate) fn credentials(&self) -> Result<(String, String), BenchError> {
        self.user
            .clone()
            .ok_or_else(|| BenchError::Usage("this workload needs --user NAME:PASS".into()))
    }
}

/// Checks `n` is within `1..=max` for `--flag`.
pub(crate) fn check_count(flag: &str, n: usize, max: usize) -> Result<usize, BenchError> {
    if (1..=max).contains(&n) {
        Ok(n)
    } else {
        Err(BenchError::Usage(format!("--{flag} must be 1 to {max}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        BenchArgs::command().debug_assert();
    }

    #[test]
    fn the_cli_takes_the_workloads_and_shared_flags_in_any_order() {
        let b = BenchArgs::try_parse_from([
            "floe-bench",
            "relay",
            "--server",
            "127.0.0.1:3479",
            "--user",
            "bob:secret",
            "--allocations",
            "7",
            "--indications",
            "--pid",
            "42",
            "--json",
        ])
        .unwrap();
        assert!(matches!(
            b.workload,
            Workload::Relay(RelayArgs {
                allocations: 7,
                indications: true,
                ..
            })
        ));
        assert_eq!(b.common.pid, Some(42));
        assert!(b.common.json);
        let c = Common::from_args(&b.common).unwrap();
        assert_eq!(c.user, Some(("bob".into(), "secret".into())));
        let remote = CommonArgs {
            server: "192.0.2.1:3478".parse().unwrap(),
            ..b.common.clone()
        };
        assert!(Common::from_args(&remote).is_err(), "loopback only");
    }
}
