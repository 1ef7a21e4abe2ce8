//! Sending: [`Outgoing`] datagrams and GSO runs one at a time, or a [`SendQueue`] whose
//! runs to one destination are coalesced into GSO sends.

use std::io;
use std::net::{IpAddr, SocketAddr};

use quinn_udp::{Transmit, UdpSockRef};
use tokio::io::Interest;

use super::socket::BatchSocket;
use super::{bump, SendError, MAX_GSO_BYTES, SEND_GROUP};

impl BatchSocket {
    /// Sends one datagram, waiting while the send buffer is full.
    pub async fn send_to(&self, payload: &[u8], destination: SocketAddr) -> Result<(), SendError> {
        self.send(&Outgoing::new(destination, payload)).await
    }

    /// Sends one datagram or GSO run, waiting while the send buffer is full.
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<(), SendError> {
        loop {
            match self.try_send(out) {
                // Not registered for writability: nothing would wake the wait.
                Err(SendError::WouldBlock) if !self.writable_wakeups => {
                    return Err(SendError::WouldBlock)
                }
                Err(SendError::WouldBlock) => {
                    if let Err(source) = self.io.writable().await {
                        return Err(SendError::Io {
                            destination: out.destination,
                            source,
                        });
                    }
                }
                other => return other,
            }
        }
    }

    /// Sends one datagram or GSO run now, or fails with [`SendError::WouldBlock`].
    /// Errors are counted in [`UdpStats::send_errors`](super::UdpStats::send_errors), except `WouldBlock`.
    pub fn try_send(&self, out: &Outgoing<'_>) -> Result<(), SendError> {
        let count = out.datagram_count() as u64;
        let result = self.send_now(out);
        match &result {
            Ok(()) => bump(&self.counters.datagrams_sent, count),
            Err(SendError::WouldBlock) => {}
            Err(_) => bump(&self.counters.send_errors, count),
        }
        result
    }

    fn send_now(&self, out: &Outgoing<'_>) -> Result<(), SendError> {
        let destination = self.os_destination(out.destination)?;
        let send = || self.transmit(out, destination);
        match self.io.try_io(Interest::WRITABLE, |_| send()) {
            // tokio refuses without a syscall until its reactor has seen the socket writable,
            // which a socket bound within the current batch (a new relay) has not yet: ask
            // the kernel. A real EAGAIN leaves tokio's readiness clear, so `send` still waits.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => send(),
            result => result,
        }
        .map_err(|e| SendError::from_io(out.destination, out.payload.len(), e))
    }

    /// The destination as the socket's family needs it; rejects what the kernel would
    /// answer with EINVAL, which would also make quinn-udp turn GSO off for good.
    fn os_destination(&self, destination: SocketAddr) -> Result<SocketAddr, SendError> {
        if destination.port() == 0 || destination.ip().is_unspecified() {
            return Err(SendError::InvalidDestination { destination });
        }
        match (self.local, destination) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => Ok(SocketAddr::new(
                IpAddr::V6(v4.ip().to_ipv6_mapped()),
                v4.port(),
            )),
            (SocketAddr::V4(_), SocketAddr::V6(v6)) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => Ok(SocketAddr::new(IpAddr::V4(v4), v6.port())),
                None => Err(SendError::AddressFamily { destination }),
            },
            _ => Ok(destination),
        }
    }

    /// Sends everything in `queue`, waiting while the send buffer is full, then clears it.
    /// A failed send costs only the datagrams of that send: the rest still go.
    pub async fn send_batch(&self, queue: &mut SendQueue) -> SendReport {
        let mut report = SendReport::default();
        for i in 0..queue.runs.len() {
            let run = queue.runs[i];
            for out in self.split_run(queue, run) {
                report.record(out.datagram_count(), self.send(&out).await);
            }
        }
        queue.clear();
        report
    }

    /// Sends everything in `queue` without waiting, then clears it. Datagrams that meet a
    /// full send buffer are dropped and counted in [`SendReport::would_block`], as a
    /// router would drop them; use [`send_batch`](Self::send_batch) to wait instead.
    ///
    /// Sends go in groups of 32: single datagrams from the kernel's choice of source
    /// address leave with one `sendmmsg(2)` per group; GSO runs and datagrams with a
    /// chosen source address with one `sendmsg` each through `quinn-udp`. A send that
    /// fails costs only its own datagrams. A full send buffer drops the rest of its group;
    /// the next group is tried, as the buffer may have drained meanwhile.
    pub fn try_send_batch(&self, queue: &mut SendQueue) -> SendReport {
        let mut report = SendReport::default();
        if let Some(out) = queue.single() {
            // One datagram (a relay's answer to one peer, most often): one `sendto`,
            // without the headers of a batch.
            let result = self
                .os_destination(out.destination)
                .and_then(|d| self.send_one(out.payload, d));
            self.count_send(1, result, &mut report);
            queue.clear();
            return report;
        }
        let unset = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut group = [Outgoing::new(unset, &[]); SEND_GROUP];
        let mut len = 0;
        for run in &queue.runs {
            for out in self.split_run(queue, *run) {
                group[len] = out;
                len += 1;
                if len == SEND_GROUP {
                    self.send_group(&group, &mut report);
                    len = 0;
                }
            }
        }
        self.send_group(&group[..len], &mut report);
        queue.clear();
        report
    }

    /// Sends one group of [`try_send_batch`](Self::try_send_batch).
    fn send_group(&self, group: &[Outgoing<'_>], report: &mut SendReport) {
        let unset = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut many: [(SocketAddr, &[u8]); SEND_GROUP] = [(unset, &[]); SEND_GROUP];
        let mut i = 0;
        while i < group.len() {
            let out = &group[i];
            let destination = match self.os_destination(out.destination) {
                Ok(d) => d,
                Err(e) => {
                    bump(&self.counters.send_errors, 1);
                    report.record(1, Err(e));
                    i += 1;
                    continue;
                }
            };
            let single = out.segment_size.is_none() && out.source.is_none();
            if !single {
                // Straight to the kernel: tokio's readiness may not know yet that a new
                // socket is writable.
                let result = self
                    .transmit(out, destination)
                    .map_err(|e| SendError::from_io(out.destination, out.payload.len(), e));
                if self.count_send(out.datagram_count(), result, report) {
                    self.drop_rest(&group[i + 1..], report);
                    return;
                }
                i += 1;
                continue;
            }
            // A run of single datagrams with valid destinations: one sendmmsg.
            let mut n = 0;
            let mut j = i;
            while j < group.len() {
                let o = &group[j];
                if o.segment_size.is_some() || o.source.is_some() {
                    break;
                }
                match self.os_destination(o.destination) {
                    Ok(d) => many[n] = (d, o.payload),
                    Err(_) => break,
                }
                n += 1;
                j += 1;
            }
            match super::mmsg::send_many(self.io.get_ref(), &many[..n]) {
                Ok(sent) if sent > 0 => {
                    bump(&self.counters.datagrams_sent, sent as u64);
                    report.sent += sent;
                    i += sent;
                }
                Ok(_) => {
                    // Nothing taken and no error: treat as a full buffer.
                    let result = Err(SendError::WouldBlock);
                    self.count_send(1, result, report);
                    self.drop_rest(&group[i + 1..], report);
                    return;
                }
                Err(e) => {
                    let result = Err(SendError::from_io(out.destination, out.payload.len(), e));
                    if self.count_send(1, result, report) {
                        self.drop_rest(&group[i + 1..], report);
                        return;
                    }
                    i += 1;
                }
            }
        }
    }

    /// Counts one send's result; returns whether it met a full send buffer.
    fn count_send(
        &self,
        count: usize,
        result: Result<(), SendError>,
        report: &mut SendReport,
    ) -> bool {
        let blocked = matches!(result, Err(SendError::WouldBlock));
        match &result {
            Ok(()) => bump(&self.counters.datagrams_sent, count as u64),
            Err(SendError::WouldBlock) => {
                // Clear tokio's readiness so an async sender waiting for `writable()`
                // still waits.
                let _ = self.io.try_io(Interest::WRITABLE, |_| -> io::Result<()> {
                    Err(io::ErrorKind::WouldBlock.into())
                });
                bump(&self.counters.send_errors, count as u64);
            }
            Err(_) => bump(&self.counters.send_errors, count as u64),
        }
        report.record(count, result);
        blocked
    }

    /// The rest of a group after a full send buffer: dropped and counted.
    fn drop_rest(&self, rest: &[Outgoing<'_>], report: &mut SendReport) {
        for out in rest {
            let count = out.datagram_count();
            bump(&self.counters.send_errors, count as u64);
            report.record(count, Err(SendError::WouldBlock));
        }
    }

    /// One `sendmsg` of `out` to `destination` (already in the socket's family).
    fn transmit(&self, out: &Outgoing<'_>, destination: SocketAddr) -> io::Result<()> {
        let transmit = Transmit {
            destination,
            ecn: None,
            contents: out.payload,
            segment_size: out.segment_size,
            src_ip: out.source.map(|ip| ip.to_canonical()),
        };
        self.state
            .try_send(UdpSockRef::from(self.io.get_ref()), &transmit)
    }

    /// One `sendto(2)` of a single datagram to `destination` (already in the socket's
    /// family), straight to the kernel: tokio's readiness may not know yet that a new
    /// socket is writable.
    fn send_one(&self, payload: &[u8], destination: SocketAddr) -> Result<(), SendError> {
        socket2::SockRef::from(self.io.get_ref())
            .send_to(payload, &destination.into())
            .map(|_| ())
            .map_err(|e| SendError::from_io(destination, payload.len(), e))
    }

    /// Cuts a run into sends of at most `max_gso_segments` datagrams.
    fn split_run<'q>(
        &self,
        queue: &'q SendQueue,
        run: Run,
    ) -> impl Iterator<Item = Outgoing<'q>> + use<'q> {
        let max_segments = self.max_gso_segments().max(1);
        let bytes = &queue.buf[run.start..run.end];
        let chunk = if max_segments > 1 {
            run.segment_size * max_segments
        } else {
            run.segment_size
        };
        // An empty datagram is still one datagram to send.
        let empty = bytes.is_empty().then_some(bytes);
        bytes
            .chunks(chunk.max(1))
            .chain(empty)
            .map(move |payload| Outgoing {
                destination: run.destination,
                source: run.source,
                payload,
                segment_size: (payload.len() > run.segment_size).then_some(run.segment_size),
            })
    }
}

/// One datagram to send, or a GSO run of equal-size datagrams to one destination.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Where to send.
    pub destination: SocketAddr,
    /// The local IP to send from, for sockets bound to a wildcard address; `None` lets the
    /// kernel choose.
    pub source: Option<IpAddr>,
    /// The datagram, or the datagrams back to back when `segment_size` is set.
    pub payload: &'a [u8],
    /// With GSO: the size of each datagram in `payload` (the last may be shorter).
    pub segment_size: Option<usize>,
}

impl<'a> Outgoing<'a> {
    /// One datagram to `destination`, from the address the kernel chooses.
    pub fn new(destination: SocketAddr, payload: &'a [u8]) -> Self {
        Outgoing {
            destination,
            source: None,
            payload,
            segment_size: None,
        }
    }

    /// How many datagrams this send carries.
    pub fn datagram_count(&self) -> usize {
        match self.segment_size {
            Some(size) if size > 0 => self.payload.len().div_ceil(size).max(1),
            _ => 1,
        }
    }
}

/// What a batch send did.
#[derive(Debug, Default)]
pub struct SendReport {
    /// Datagrams handed to the kernel.
    pub sent: usize,
    /// Datagrams lost to an error other than a full buffer.
    pub failed: usize,
    /// Datagrams dropped because the send buffer was full (only [`BatchSocket::try_send_batch`]).
    pub would_block: usize,
    /// The first error other than a full buffer, for logging.
    pub first_error: Option<SendError>,
}

impl SendReport {
    fn record(&mut self, count: usize, result: Result<(), SendError>) {
        match result {
            Ok(()) => self.sent += count,
            Err(SendError::WouldBlock) => self.would_block += count,
            Err(e) => {
                self.failed += count;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Run {
    destination: SocketAddr,
    source: Option<IpAddr>,
    start: usize,
    end: usize,
    segment_size: usize,
    /// A shorter datagram ended the run; GSO allows only the last one to be shorter.
    closed: bool,
}

/// Outgoing datagrams collected for one [`BatchSocket::send_batch`]. Consecutive datagrams
/// to the same destination from the same source, of equal size, become one GSO send.
/// The memory is kept between batches.
#[derive(Debug, Default)]
pub struct SendQueue {
    buf: Vec<u8>,
    runs: Vec<Run>,
    datagrams: usize,
    /// Never join datagrams into GSO runs: each one leaves as its own datagram.
    no_gso: bool,
}

impl SendQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue with room for `bytes` of payload in `datagrams` datagrams.
    pub fn with_capacity(bytes: usize, datagrams: usize) -> Self {
        SendQueue {
            buf: Vec::with_capacity(bytes),
            runs: Vec::with_capacity(datagrams),
            datagrams: 0,
            no_gso: false,
        }
    }

    /// Whether runs to one destination may become GSO sends (the default), or every
    /// datagram is sent on its own (one `sendmsg` each). A load
    /// generator turns GSO off so a GRO-enabled receiver sees what real clients send.
    pub fn set_gso(&mut self, gso: bool) {
        self.no_gso = !gso;
    }

    /// Queues one datagram (copied), from the kernel's choice of source address.
    pub fn push(&mut self, destination: SocketAddr, payload: &[u8]) {
        self.push_from(destination, None, payload);
    }

    /// Queues one datagram (copied), sent from the local IP `source` if given.
    pub fn push_from(&mut self, destination: SocketAddr, source: Option<IpAddr>, payload: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(payload);
        self.datagrams += 1;
        let len = payload.len();
        if let Some(run) = self.runs.last_mut() {
            let run_len = run.end - run.start;
            let joins = !self.no_gso
                && !run.closed
                && len > 0
                && run.destination == destination
                && run.source == source
                && len <= run.segment_size
                && run_len + len <= MAX_GSO_BYTES;
            if joins {
                run.end += len;
                run.closed = len < run.segment_size;
                return;
            }
        }
        self.runs.push(Run {
            destination,
            source,
            start,
            end: start + len,
            segment_size: len,
            closed: len == 0,
        });
    }

    /// The one datagram queued, when there is exactly one and it leaves from the
    /// kernel's choice of source address.
    fn single(&self) -> Option<Outgoing<'_>> {
        match self.runs[..] {
            [run] if self.datagrams == 1 && run.source.is_none() => Some(Outgoing::new(
                run.destination,
                &self.buf[run.start..run.end],
            )),
            _ => None,
        }
    }

    /// The number of datagrams queued.
    pub fn len(&self) -> usize {
        self.datagrams
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.datagrams == 0
    }

    /// The number of sends the queue needs at most (before splitting by the GSO limit).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Drops everything queued, keeping the memory.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.runs.clear();
        self.datagrams = 0;
    }
}
