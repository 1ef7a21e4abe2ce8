//! `floe bench`: a load generator for any STUN/TURN server on loopback, coturn included.
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

mod allocate;
mod binding;
mod echo;
mod flow;
mod histogram;
mod hold;
mod measure;
mod proc_stats;
mod relay;
mod report;
mod session;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use crate::config::UserCredential;
use crate::udp::{BatchSocket, UdpError, UdpSocketConfig};

pub use report::Report;

/// `floe bench`: load a STUN/TURN server on loopback and report rates, loss, latency and
/// (with `--pid`) the server's CPU and memory per operation.
#[derive(Debug, Clone, Args)]
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

/// The workloads of `floe bench`.
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

/// `floe bench binding`.
#[derive(Debug, Clone, Args)]
pub struct BindingArgs {
    /// Client sockets
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub sockets: usize,
    /// Requests outstanding on each socket
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub window: usize,
}

/// `floe bench relay`.
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

/// `floe bench allocate`.
#[derive(Debug, Clone, Args)]
pub struct AllocateArgs {
    /// Allocations to create (and hold until the end)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub count: usize,
    /// Allocations being set up at once
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub window: usize,
}

/// `floe bench hold`.
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
}

/// `floe bench echo-server`.
#[derive(Debug, Clone, Args)]
pub struct EchoServerArgs {
    /// Where to listen (loopback only)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Seconds to run before stopping by itself
    #[arg(long = "for", value_name = "SECS", default_value_t = 120.0)]
    pub run_for: f64,
}

/// Allocations at most, in any workload (each takes a socket in the tool and the server).
pub(crate) const MAX_ALLOCATIONS: usize = 10_000;
/// Longest measurement.
const MAX_DURATION: f64 = 600.0;
/// How long setting up allocations may take in all before the tool gives up.
pub(crate) const SETUP_LIMIT: Duration = Duration::from_secs(120);
/// Allocations set up at once by `relay` and `hold`.
pub(crate) const SETUP_WINDOW: usize = 64;

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
    fn from_args(a: &CommonArgs) -> Result<Self, BenchError> {
        if !a.server.ip().is_loopback() {
            return Err(BenchError::Usage(format!(
                "--server {}: floe bench loads loopback servers only",
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
    let config = UdpSocketConfig {
        gro: false,
        recv_buffer_size: Some(1 << 20),
        send_buffer_size: Some(1 << 20),
        ..UdpSocketConfig::default()
    };
    BatchSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)), &config)
}

/// Raises the soft open-files limit to the hard one: every allocation needs a socket.
fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Runs `floe bench` to completion and prints its report.
pub fn run(args: BenchArgs) -> ExitCode {
    let common = match Common::from_args(&args.common) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("floe bench: {e}");
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
            eprintln!("floe bench: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("floe bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::report::Value;
    use super::*;
    use crate::config::ServerConfig;
    use crate::metrics::Metrics;
    use crate::turn::{ServerHandle, TurnServer};
    use std::rc::Rc;

    async fn floe_server() -> ServerHandle {
        let config = ServerConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            users: vec!["bob:secret".parse().unwrap()],
            allow_loopback_peers: true,
            threads: 1,
            ..ServerConfig::default()
        };
        TurnServer::start(&config, Metrics::new()).await.unwrap()
    }

    fn common(server: SocketAddr) -> Common {
        Common {
            server,
            user: Some(("bob".into(), "secret".into())),
            pid: Some(std::process::id()),
            duration: Duration::from_millis(300),
            warmup: Duration::from_millis(100),
        }
    }

    fn int(r: &Report, k: &str) -> u64 {
        match r.get(k) {
            Some(Value::Int(n)) => *n,
            other => panic!("{k}: {other:?}\n{}", r.to_table()),
        }
    }

    fn float(r: &Report, k: &str) -> f64 {
        match r.get(k) {
            Some(Value::Float(f)) => *f,
            other => panic!("{k}: {other:?}\n{}", r.to_table()),
        }
    }

    #[actix_rt::test]
    async fn relay_over_channels_and_indications_loses_nothing() {
        let server = floe_server().await;
        let c = common(server.local_addrs()[0]);
        for indications in [false, true] {
            let args = RelayArgs {
                allocations: 5,
                size: 100,
                window: 2,
                indications,
                peers: 2,
            };
            let r = relay::run(&c, &args).await.unwrap().unwrap();
            assert_eq!(int(&r, "allocations"), 5);
            assert!(int(&r, "ops") > 0, "{}", r.to_table());
            assert_eq!(int(&r, "lost"), 0, "{}", r.to_table());
            assert_eq!(int(&r, "unexpected"), 0, "{}", r.to_table());
            assert_eq!(int(&r, "deleted"), 5);
            assert!(float(&r, "rtt_p99_us") > 0.0);
            // The "server" is this process: its CPU was read from /proc.
            assert!(float(&r, "server_cpu_s") >= 0.0);
        }
        // The server counts a deletion just after it answers the Refresh.
        let mut m = server.metrics().snapshot();
        for _ in 0..100 {
            if m.allocations_active == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            m = server.metrics().snapshot();
        }
        assert_eq!(m.allocations_active, 0, "every allocation was deleted");
        assert!(m.packets_to_peer > 0 && m.packets_to_client > 0);
    }

    #[actix_rt::test]
    async fn binding_against_the_server_and_the_bare_echo() {
        let server = floe_server().await;
        let args = BindingArgs {
            sockets: 4,
            window: 4,
        };
        let r = binding::run(&common(server.local_addrs()[0]), &args)
            .await
            .unwrap()
            .unwrap();
        assert!(int(&r, "ops") > 0);
        assert_eq!(int(&r, "lost"), 0, "{}", r.to_table());

        let echo = Rc::new(echo::echo_socket("127.0.0.1:0".parse().unwrap()).unwrap());
        let counters = Rc::new(echo::EchoCounters::default());
        let task = echo::spawn_echo(echo.clone(), 2048, counters.clone());
        let r = binding::run(&common(echo.local_addr()), &args)
            .await
            .unwrap()
            .unwrap();
        task.abort();
        assert!(int(&r, "ops") > 0);
        assert_eq!(int(&r, "lost"), 0, "{}", r.to_table());
        assert!(counters.received.get() >= int(&r, "ops"));
    }

    #[actix_rt::test]
    async fn allocate_and_hold_make_delete_and_relay() {
        let server = floe_server().await;
        let c = common(server.local_addrs()[0]);
        let r = allocate::run(
            &c,
            &AllocateArgs {
                count: 20,
                window: 4,
            },
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(int(&r, "allocations"), 20);
        assert_eq!(int(&r, "deleted"), 20);
        assert!(float(&r, "ops_per_s") > 0.0);
        let r = hold::run(
            &c,
            &HoldArgs {
                allocations: 10,
                rate: 50,
                size: 160,
            },
        )
        .await
        .unwrap()
        .unwrap();
        // 10 allocations at 50/s for 0.3 s: about 150 packets.
        assert!(int(&r, "sent") >= 100, "{}", r.to_table());
        assert_eq!(int(&r, "lost"), 0, "{}", r.to_table());
        assert_eq!(int(&r, "deleted"), 10);
    }

    /// The server sends what one relay socket relays in one batch; datagrams to a peer
    /// that is not listening must cost only themselves.
    #[actix_rt::test]
    async fn an_unreachable_peer_in_a_batch_costs_only_its_own_datagrams() {
        use crate::udp::SendQueue;
        let server = floe_server().await;
        let sessions = Rc::new(session::Sessions::new(
            server.local_addrs()[0],
            "bob".into(),
            "secret".into(),
        ));
        let echo = Rc::new(echo::echo_socket("127.0.0.1:0".parse().unwrap()).unwrap());
        let counters = Rc::new(echo::EchoCounters::default());
        let task = echo::spawn_echo(echo.clone(), 2048, counters.clone());
        let closed = client_socket().unwrap().local_addr(); // bound, then closed
        let mut ex = session::Exchange::new();
        let socket = Rc::new(client_socket().unwrap());
        // The permission is per IP: it covers the closed port too.
        let alloc = sessions
            .open(
                socket.clone(),
                &mut ex,
                session::PeerSetup::Permission(echo.local_addr()),
            )
            .await
            .unwrap();
        let (to_closed, _) = relay::send_indication(closed, 40);
        let (to_echo, _) = relay::send_indication(echo.local_addr(), 40);
        let mut queue = SendQueue::new();
        for _ in 0..20 {
            queue.push(server.local_addrs()[0], &to_closed);
            queue.push(server.local_addrs()[0], &to_echo);
        }
        assert_eq!(socket.try_send_batch(&mut queue).sent, 40);
        let mut bufs = socket.recv_buffers(2048);
        let mut data_indications = 0;
        while data_indications < 20 {
            let batch = tokio::time::timeout(Duration::from_secs(5), socket.recv_batch(&mut bufs))
                .await
                .expect("the echoes come back through the relay")
                .unwrap();
            for d in batch {
                assert_eq!(&d.payload[..2], &[0x00, 0x17], "a Data indication");
                data_indications += 1;
            }
        }
        assert_eq!(counters.received.get(), 20);
        task.abort();
        session::close_all(&sessions, vec![alloc], 1, Duration::from_secs(2)).await;
    }

    /// The Arbiters send events only once someone subscribed; a subscriber then gets
    /// every event, from the first allocation made after `events()` on.
    #[actix_rt::test]
    async fn events_flow_once_subscribed() {
        use crate::turn::TurnEvent;
        let server = floe_server().await;
        let sessions = Rc::new(session::Sessions::new(
            server.local_addrs()[0],
            "bob".into(),
            "secret".into(),
        ));
        let mut ex = session::Exchange::new();
        let before = sessions
            .open(
                Rc::new(client_socket().unwrap()),
                &mut ex,
                session::PeerSetup::None,
            )
            .await
            .unwrap();
        // The server answers before it handles the allocation's event: let it finish.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut events = server.events();
        let socket = Rc::new(client_socket().unwrap());
        let after = sessions
            .open(socket.clone(), &mut ex, session::PeerSetup::None)
            .await
            .unwrap();
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("an event within 5 s")
            .unwrap();
        match event {
            TurnEvent::AllocationCreated { five_tuple, .. } => {
                assert_eq!(five_tuple.client, socket.local_addr(), "the second one's")
            }
            other => panic!("{other:?}"),
        }
        session::close_all(&sessions, vec![before, after], 2, Duration::from_secs(2)).await;
        let mut deleted = 0;
        while deleted < 2 {
            match tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .expect("Deleted events within 5 s")
            {
                Some(TurnEvent::Deleted { .. }) => deleted += 1,
                Some(_) => {}
                None => panic!("the stream ended"),
            }
        }
    }

    #[actix_rt::test]
    async fn a_server_that_does_not_answer_is_an_error_not_a_hang() {
        // A bound socket that never answers.
        let silent = client_socket().unwrap();
        let mut c = common(silent.local_addr());
        c.duration = Duration::from_millis(100);
        let err = binding::run(
            &c,
            &BindingArgs {
                sockets: 1,
                window: 1,
            },
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("no Binding response"), "{err}");
    }

    #[test]
    fn the_cli_takes_the_workloads_and_shared_flags_in_any_order() {
        use crate::cli::{Cli, Command};
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "floe",
            "bench",
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
        let Command::Bench(b) = cli.command else {
            panic!("not bench")
        };
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
