//! The agent's multicast DNS socket (RFC 6762) around the core [`floe::mdns::Mdns`]:
//! it answers for the `UUID.local` names of the agent's host candidates
//! (`GatherConfig::mdns`) and resolves the `.local` names of remote candidates.
//!
//! The socket binds `0.0.0.0:5353` with SO_REUSEADDR and SO_REUSEPORT (so several agents
//! and a system responder can share the port), joins 224.0.0.251 on each IPv4 address
//! the agent gathers on, and sends from the first of them (IP_MULTICAST_IF): an agent
//! gathering on loopback only keeps its mDNS traffic on loopback. IPv6 (ff02::fb) is not
//! done yet: IPv6 host candidates are signalled with their address.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use floe::ice::Candidate;
use floe::mdns::{Mdns, MdnsEvent, MDNS_V4};
use futures_util::stream::{self, Stream};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Larger than any mDNS message floe reads (RFC 6762 §17: 9000 at most on the wire).
const MAX_MESSAGE: usize = 9000;
/// Remote candidates waiting for their name, at most.
const MAX_WAITING: usize = 256;

/// A datagram that arrived on the mDNS socket.
pub(crate) struct MdnsDatagram {
    pub from: SocketAddr,
    pub data: Bytes,
}

impl actix::Message for MdnsDatagram {
    type Result = ();
}

/// The mDNS state of one agent.
pub(crate) struct MdnsService {
    core: Mdns,
    /// The socket, for sending straight to the kernel (tokio's readiness of a new
    /// socket is not known yet when the first announcement goes out).
    sender: Socket,
    /// Remote candidates waiting for their name: (name, stream, attribute value).
    waiting: Vec<(String, usize, String)>,
}

/// Opens the mDNS socket on `interfaces` (their IPv4 addresses).
pub(crate) fn open(
    interfaces: &[IpAddr],
) -> io::Result<(MdnsService, impl Stream<Item = MdnsDatagram> + Unpin)> {
    let v4: Vec<Ipv4Addr> = interfaces
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    let first = *v4
        .first()
        .ok_or_else(|| io::Error::other("no IPv4 address to run mDNS on"))?;
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from(([0, 0, 0, 0], MDNS_V4.port())).into())?;
    let group = Ipv4Addr::new(224, 0, 0, 251);
    let mut joined = 0;
    for ip in &v4 {
        match socket.join_multicast_v4(&group, ip) {
            Ok(()) => joined += 1,
            Err(e) => tracing::debug!(%ip, error = %e, "cannot join the mDNS group"),
        }
    }
    if joined == 0 {
        return Err(io::Error::other(
            "could not join the mDNS group on any address",
        ));
    }
    socket.set_multicast_if_v4(&first)?;
    // RFC 6762 §11: 255, and looped back so agents on one host hear each other.
    socket.set_multicast_ttl_v4(255)?;
    socket.set_multicast_loop_v4(true)?;
    let sender = socket.try_clone()?;
    let socket = Rc::new(UdpSocket::from_std(socket.into())?);
    let service = MdnsService {
        core: Mdns::new(),
        sender,
        waiting: Vec::new(),
    };
    let datagrams = Box::pin(stream::unfold(socket, |socket| async move {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            match socket.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    let data = Bytes::copy_from_slice(&buf[..n]);
                    return Some((MdnsDatagram { from, data }, socket));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "the mDNS socket stopped receiving");
                    return None;
                }
            }
        }
    }));
    Ok((service, datagrams))
}

impl MdnsService {
    /// The name to signal for the host address `ip` (IPv4; IPv6 keeps its address).
    pub(crate) fn hide(&mut self, candidate: Candidate) -> Candidate {
        let ip = candidate.addr().ip();
        if !ip.is_ipv4() {
            return candidate;
        }
        let name = self.core.register(ip, &mut rand::thread_rng());
        candidate.with_mdns_name(name)
    }

    /// Resolves `name` for a remote candidate of `stream`, whose attribute is `sdp`.
    pub(crate) fn resolve(&mut self, now: Instant, name: &str, stream: usize, sdp: String) {
        if self.waiting.len() >= MAX_WAITING {
            tracing::warn!(%name, "too many remote mDNS candidates waiting; dropped");
            return;
        }
        match self.core.resolve(now, name) {
            Ok(()) => {
                self.waiting
                    .push((name.trim_end_matches('.').to_ascii_lowercase(), stream, sdp))
            }
            Err(e) => tracing::warn!(%name, error = %e, "cannot resolve a remote candidate"),
        }
    }

    /// Whether a remote candidate of `stream` is waiting for its name.
    pub(crate) fn resolving(&self, stream: usize) -> bool {
        self.waiting.iter().any(|w| w.1 == stream)
    }

    pub(crate) fn handle_input(&mut self, now: Instant, d: MdnsDatagram) {
        if let Err(e) = self.core.handle_input(now, d.from, &d.data) {
            tracing::trace!(from = %d.from, error = %e, "mDNS datagram dropped");
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// Sends what the core queued, and returns the remote candidates resolved since
    /// the last call, with their stream.
    pub(crate) fn drive(&mut self) -> Vec<(usize, Candidate)> {
        while let Some(t) = self.core.poll_transmit() {
            if let Err(e) = self.sender.send_to(&t.payload, &t.destination.into()) {
                tracing::debug!(to = %t.destination, error = %e, "mDNS datagram not sent");
            }
        }
        let mut ready = Vec::new();
        while let Some(e) = self.core.poll_event() {
            let (name, ip) = match e {
                MdnsEvent::Resolved { name, ip } => (name, Some(ip)),
                MdnsEvent::Failed { name } => (name, None),
            };
            let mut i = 0;
            while i < self.waiting.len() {
                if self.waiting[i].0 != name {
                    i += 1;
                    continue;
                }
                let (_, stream, sdp) = self.waiting.swap_remove(i);
                match ip.map(|ip| Candidate::from_sdp_resolved(&sdp, ip)) {
                    Some(Ok(c)) => ready.push((stream, c)),
                    Some(Err(e)) => tracing::warn!(%sdp, error = %e, "ignoring a remote candidate"),
                    None => tracing::warn!(%name, "no answer for a remote mDNS candidate"),
                }
            }
        }
        ready
    }
}
