//! The data path of the tool: flows of stamped datagrams between one client socket and
//! the server, closed loop with a window (binding, relay) or paced (hold).
//!
//! Every datagram a flow sends is its preallocated template with a 12-byte stamp written
//! in place: the flow's index (u16), a generation (u16) and the send time in nanoseconds
//! (u64). The server (Binding: in the transaction id) or the echo peer (relay, hold: in the
//! application data) returns the stamp, so a reply needs no per-packet state in the tool:
//! its RTT is the receive time less the stamp.
//!
//! All flows share one [`Engine`] (one receive buffer, one send queue, one histogram)
//! borrowed only inside a task's `poll`, never across an await.

use std::cell::RefCell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

use super::histogram::Histogram;
use super::Clock;
use floe_actors::udp::{BatchSocket, RecvBuffers, SendQueue};

/// Bytes of the stamp.
pub(crate) const STAMP_LEN: usize = 12;
/// Batches a flow handles before it lets the other tasks run.
const BATCHES_PER_POLL: usize = 4;

/// Where the stamp sits in a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyKind {
    /// A STUN message (a Binding response, or a bare echo of the request): the stamp is
    /// the transaction id.
    Stun,
    /// ChannelData: the stamp starts the application data.
    ChannelData,
    /// A Data indication: the stamp starts the DATA attribute.
    DataIndication,
}

impl ReplyKind {
    /// The stamp in `reply`, if it is the kind of reply expected.
    #[inline]
    fn stamp(self, reply: &[u8]) -> Option<&[u8]> {
        match self {
            ReplyKind::Stun => {
                if reply.len() >= 20 && reply[0] & 0xC0 == 0 && reply[4..8] == MAGIC {
                    Some(&reply[8..20])
                } else {
                    None
                }
            }
            ReplyKind::ChannelData => {
                if reply.len() >= 4 + STAMP_LEN && (0x40..=0x7F).contains(&reply[0]) {
                    Some(&reply[4..4 + STAMP_LEN])
                } else {
                    None
                }
            }
            ReplyKind::DataIndication => data_attribute(reply)
                .filter(|d| d.len() >= STAMP_LEN)
                .map(|d| &d[..STAMP_LEN]),
        }
    }
}

const MAGIC: [u8; 4] = 0x2112_A442u32.to_be_bytes();
/// RFC 8656 §17: Data indication (method 0x007, class indication).
const DATA_INDICATION: [u8; 2] = [0x00, 0x17];
/// RFC 8656 §18: DATA.
const DATA: u16 = 0x0013;

/// The value of the DATA attribute of a Data indication, read in place.
fn data_attribute(msg: &[u8]) -> Option<&[u8]> {
    if msg.len() < 20 || msg[..2] != DATA_INDICATION || msg[4..8] != MAGIC {
        return None;
    }
    let end = (20 + usize::from(u16::from_be_bytes([msg[2], msg[3]]))).min(msg.len());
    let mut at = 20;
    while at + 4 <= end {
        let typ = u16::from_be_bytes([msg[at], msg[at + 1]]);
        let len = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
        let value = msg.get(at + 4..at + 4 + len)?;
        if typ == DATA {
            return Some(value);
        }
        at += 4 + ((len + 3) & !3);
    }
    None
}

/// Writes a stamp.
#[inline]
pub(crate) fn write_stamp(out: &mut [u8], flow: u16, gen: u16, ns: u64) {
    out[..2].copy_from_slice(&flow.to_be_bytes());
    out[2..4].copy_from_slice(&gen.to_be_bytes());
    out[4..12].copy_from_slice(&ns.to_be_bytes());
}

#[inline]
fn read_stamp(s: &[u8]) -> (u16, u16, u64) {
    let flow = u16::from_be_bytes([s[0], s[1]]);
    let gen = u16::from_be_bytes([s[2], s[3]]);
    let mut ns = [0u8; 8];
    ns.copy_from_slice(&s[4..12]);
    (flow, gen, u64::from_be_bytes(ns))
}

/// One client socket and the datagram it sends.
pub(crate) struct Flow {
    pub socket: Rc<BatchSocket>,
    template: Box<[u8]>,
    stamp_at: usize,
    in_flight: u32,
    gen: u16,
    last_progress_ns: u64,
}

impl Flow {
    /// A flow sending `template` with the stamp written at `stamp_at`.
    pub(crate) fn new(socket: Rc<BatchSocket>, template: Vec<u8>, stamp_at: usize) -> Self {
        assert!(template.len() >= stamp_at + STAMP_LEN);
        Flow {
            socket,
            template: template.into_boxed_slice(),
            stamp_at,
            in_flight: 0,
            gen: 0,
            last_progress_ns: 0,
        }
    }
}

/// Monotonic counters; the driver reads them at the start and the end of the
/// measurement and takes the difference.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    /// Datagrams handed to the kernel.
    pub sent: u64,
    /// Replies that matched a flow.
    pub replies: u64,
    /// Datagrams that were not a reply of the expected kind, or not for their socket.
    pub unexpected: u64,
    /// Datagrams the kernel refused (full buffer, error).
    pub send_failures: u64,
    /// Times a flow's window was given up for lost after [`Engine::stall_ns`].
    pub stalls: u64,
    /// Datagrams sent with a stamp inside the measurement window.
    pub sent_measured: u64,
    /// Replies to those (for loss): the stamp is inside the window.
    pub replied_measured: u64,
}

/// The shared state of all flows of a run.
pub(crate) struct Engine {
    pub flows: Vec<Flow>,
    destination: SocketAddr,
    kind: ReplyKind,
    /// Packets outstanding per flow; 0 for paced flows.
    window: u32,
    /// New packets may be sent.
    pub sending: bool,
    pub clock: Clock,
    /// Stamps in `[measure_from, measure_to)` count for loss and RTT.
    measure_from: u64,
    measure_to: u64,
    /// A window with no reply for this long is given up for lost.
    stall_ns: u64,
    pub hist: Histogram,
    pub c: Counters,
    bufs: RecvBuffers,
    queue: SendQueue,
}

pub(crate) type SharedEngine = Rc<RefCell<Engine>>;

impl Engine {
    /// Flows to `destination` whose replies are of `kind`, with `window` outstanding
    /// each (0: paced by the driver), and replies up to `max_reply` bytes.
    pub(crate) fn new(
        flows: Vec<Flow>,
        destination: SocketAddr,
        kind: ReplyKind,
        window: u32,
        max_reply: usize,
        clock: Clock,
    ) -> SharedEngine {
        assert!(flows.len() <= usize::from(u16::MAX) + 1);
        let mut queue = SendQueue::with_capacity(64 * 1024, 256);
        queue.set_gso(false);
        Rc::new(RefCell::new(Engine {
            flows,
            destination,
            kind,
            window,
            sending: true,
            clock,
            measure_from: u64::MAX,
            measure_to: u64::MAX,
            stall_ns: 500_000_000,
            hist: Histogram::new(),
            c: Counters::default(),
            bufs: RecvBuffers::new(32, max_reply + 1),
            queue,
        }))
    }

    /// Starts the measurement window now: RTTs recorded so far are dropped.
    pub(crate) fn measure_from_now(&mut self) {
        self.measure_from = self.clock.now_ns();
        self.hist = Histogram::new();
    }

    /// Ends the measurement window now and stops sending.
    pub(crate) fn stop(&mut self) {
        self.measure_to = self.clock.now_ns();
        self.sending = false;
    }

    #[inline]
    fn measured(&self, stamp_ns: u64) -> bool {
        stamp_ns >= self.measure_from && stamp_ns < self.measure_to
    }

    /// Queues one stamped datagram of flow `i`.
    #[inline]
    fn queue_one(&mut self, i: usize, now: u64) {
        let f = &mut self.flows[i];
        if f.in_flight == 0 {
            f.last_progress_ns = now;
        }
        f.in_flight += 1;
        let at = f.stamp_at;
        write_stamp(&mut f.template[at..at + STAMP_LEN], i as u16, f.gen, now);
        self.queue.push(self.destination, &f.template);
        if self.measured(now) {
            self.c.sent_measured += 1;
        }
    }

    /// Sends what is queued on flow `i`'s socket, in one `sendmmsg`.
    #[inline]
    fn flush(&mut self, i: usize) {
        if self.queue.is_empty() {
            return;
        }
        let report = self.flows[i].socket.try_send_batch(&mut self.queue);
        self.c.sent += report.sent as u64;
        self.c.send_failures += (report.failed + report.would_block) as u64;
    }

    /// Tops flow `i` up to its window.
    pub(crate) fn refill(&mut self, i: usize, now: u64) {
        if !self.sending || self.window == 0 {
            return;
        }
        while self.flows[i].in_flight < self.window {
            self.queue_one(i, now);
        }
        self.flush(i);
    }

    /// Sends one datagram on flow `i` (paced flows).
    pub(crate) fn send_paced(&mut self, i: usize, now: u64) {
        if !self.sending {
            return;
        }
        self.queue_one(i, now);
        // A paced flow has no window: in_flight only counts for the drain.
        self.flush(i);
    }

    /// Gives up the windows that saw no reply for the stall time, and refills them.
    pub(crate) fn check_stalls(&mut self) {
        if self.window == 0 {
            return;
        }
        let now = self.clock.now_ns();
        for i in 0..self.flows.len() {
            let f = &mut self.flows[i];
            if f.in_flight > 0 && now.saturating_sub(f.last_progress_ns) > self.stall_ns {
                f.in_flight = 0;
                f.gen = f.gen.wrapping_add(1);
                self.c.stalls += 1;
                self.refill(i, now);
            }
        }
    }

    /// Handles the replies in `bufs` for flow `i`.
    #[inline]
    fn take_replies(&mut self, i: usize, now: u64) {
        let Engine {
            flows,
            kind,
            bufs,
            hist,
            c,
            measure_from,
            measure_to,
            ..
        } = self;
        let flow = &mut flows[i];
        for d in bufs.datagrams() {
            let Some(stamp) = kind.stamp(d.payload) else {
                c.unexpected += 1;
                continue;
            };
            let (index, gen, sent_ns) = read_stamp(stamp);
            if usize::from(index) != i {
                c.unexpected += 1;
                continue;
            }
            c.replies += 1;
            if gen == flow.gen && flow.in_flight > 0 {
                flow.in_flight -= 1;
                flow.last_progress_ns = now;
            }
            if sent_ns >= *measure_from && sent_ns < *measure_to {
                c.replied_measured += 1;
                hist.record(now.saturating_sub(sent_ns));
            }
        }
    }
}

/// Runs the receive loop of every flow as its own task on the current thread.
pub(crate) fn spawn_flows(engine: &SharedEngine) -> Vec<JoinHandle<()>> {
    let sockets: Vec<Rc<BatchSocket>> = engine
        .borrow()
        .flows
        .iter()
        .map(|f| f.socket.clone())
        .collect();
    sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let engine = engine.clone();
            actix_rt::spawn(async move {
                poll_fn(|cx| poll_flow(&engine, i, &socket, cx)).await;
            })
        })
        .collect()
}

fn poll_flow(
    engine: &SharedEngine,
    i: usize,
    socket: &BatchSocket,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let mut e = engine.borrow_mut();
    for _ in 0..BATCHES_PER_POLL {
        match socket.poll_recv_batch(cx, &mut e.bufs) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Ready(Ok(_)) => {}
        }
        let now = e.clock.now_ns();
        e.take_replies(i, now);
        e.refill(i, now);
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// Stops the flows' tasks.
pub(crate) fn abort(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        t.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_found_in_each_kind_of_reply() {
        let mut stun = vec![0u8; 20];
        stun[..2].copy_from_slice(&[0x01, 0x01]);
        stun[4..8].copy_from_slice(&MAGIC);
        write_stamp(&mut stun[8..20], 7, 1, 99);
        assert_eq!(
            read_stamp(ReplyKind::Stun.stamp(&stun).unwrap()),
            (7, 1, 99)
        );
        stun[4] = 0;
        assert!(ReplyKind::Stun.stamp(&stun).is_none());

        let mut cd = vec![0x40, 0x00, 0, 16];
        cd.extend_from_slice(&[0; 16]);
        write_stamp(&mut cd[4..16], 3, 0, 5);
        assert_eq!(
            read_stamp(ReplyKind::ChannelData.stamp(&cd).unwrap()),
            (3, 0, 5)
        );
        assert!(ReplyKind::ChannelData.stamp(&cd[..10]).is_none());

        // A Data indication with XOR-PEER-ADDRESS first, as servers send it.
        let mut di = vec![0x00, 0x17, 0, 32];
        di.extend_from_slice(&MAGIC);
        di.extend_from_slice(&[0; 12]);
        di.extend_from_slice(&[0x00, 0x12, 0, 8, 0, 1, 0, 0, 0, 0, 0, 0]);
        di.extend_from_slice(&[0x00, 0x13, 0, 13]);
        let mut data = [0u8; 16];
        write_stamp(&mut data[..12], 9, 2, 1234);
        di.extend_from_slice(&data);
        assert_eq!(
            read_stamp(ReplyKind::DataIndication.stamp(&di).unwrap()),
            (9, 2, 1234)
        );
        assert!(ReplyKind::DataIndication.stamp(&di[..30]).is_none());
    }
}
