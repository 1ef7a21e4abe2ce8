//! Echo loops: the peer inside the tool that returns relayed data to the relay it came
//! from, and `floe-bench echo-server`, a bare UDP echo that is the baseline of the
//! `binding` workload. Both read with `recvmmsg` and answer a whole batch with `sendmmsg`.

use std::cell::Cell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{BenchError, EchoServerArgs, Report};
use floe_actors::udp::{BatchSocket, SendQueue, UdpError, UdpSocketConfig};

/// Batches one loop handles before it lets the other tasks run.
const BATCHES_PER_POLL: usize = 8;

/// Datagrams an echo loop received and could not send back.
#[derive(Debug, Default)]
pub(crate) struct EchoCounters {
    pub received: Cell<u64>,
    pub dropped: Cell<u64>,
}

/// A socket for an echo loop: no GRO, so it reads datagrams one by one as a real
/// peer would, and large buffers.
pub(crate) fn echo_socket(addr: SocketAddr) -> Result<BatchSocket, UdpError> {
    let mut config = UdpSocketConfig::listener();
    config.gro = false;
    BatchSocket::bind(addr, &config)
}

/// Echoes every datagram to its source until the task is aborted or the socket fails.
pub(crate) fn spawn_echo(
    socket: Rc<BatchSocket>,
    max_datagram: usize,
    counters: Rc<EchoCounters>,
) -> JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut bufs = socket.recv_buffers(max_datagram);
        let mut queue = SendQueue::with_capacity(64 * 1024, 64);
        queue.set_gso(false);
        poll_fn(|cx| {
            for _ in 0..BATCHES_PER_POLL {
                match socket.poll_recv_batch(cx, &mut bufs) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(_)) => {}
                }
                let mut n = 0;
                for d in bufs.datagrams() {
                    queue.push(d.source, d.payload);
                    n += 1;
                }
                let report = socket.try_send_batch(&mut queue);
                counters.received.set(counters.received.get() + n);
                let lost = (report.failed + report.would_block) as u64;
                counters.dropped.set(counters.dropped.get() + lost);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await;
    })
}

/// `floe-bench echo-server`: echoes on `--listen` for `--for` seconds, then reports.
pub(crate) async fn serve(args: &EchoServerArgs) -> Result<Option<Report>, BenchError> {
    if !args.listen.ip().is_loopback() {
        return Err(BenchError::Usage(
            "--listen: the echo server listens on loopback only".into(),
        ));
    }
    if !(args.run_for.is_finite() && (0.0..=3600.0).contains(&args.run_for)) {
        return Err(BenchError::Usage("--for must be 0 to 3600 s".into()));
    }
    let socket = Rc::new(echo_socket(args.listen)?);
    // The line a script waits for before it starts the load.
    println!("echo-server listening on {}", socket.local_addr());
    let counters = Rc::new(EchoCounters::default());
    let task = spawn_echo(socket.clone(), 2048, counters.clone());
    let _ = tokio::time::timeout(Duration::from_secs_f64(args.run_for), task).await;
    let mut report = Report::new("echo-server");
    report
        .text("listen", socket.local_addr().to_string())
        .int("received", counters.received.get())
        .int("dropped", counters.dropped.get());
    Ok(Some(report))
}
