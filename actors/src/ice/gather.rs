//! Gathering IO: the host addresses to gather on (RFC 8445 §5.1.1.1: every interface
//! that is up, through [`if_addrs`], filtered by a [`GatherConfig`]), and the Binding
//! to a STUN server from a host socket that gives a server-reflexive candidate
//! (RFC 8445 §5.1.1.2).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use floe::stun::transaction::TransactionConfig;
use floe::turn::client::{Client, ClientConfig, ClientEvent};
use floe::Transmit;
use if_addrs::IfOperStatus;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::config::GatherConfig;
use super::CandidateErrorKind;

/// The local addresses host candidates are gathered on: the addresses of interfaces
/// that are up (Linux reports loopback's state as unknown, which counts as up), that
/// `config` allows, each once, IPv4 first.
/// The list comes from [`GatherConfig::interfaces`].
pub fn host_addresses(config: &GatherConfig) -> std::io::Result<Vec<IpAddr>> {
    let mut ips: Vec<IpAddr> = config
        .interfaces
        .list()?
        .into_iter()
        .filter(|ip| config.allows(*ip))
        .collect();
    let mut seen = Vec::with_capacity(ips.len());
    ips.retain(|ip| {
        let new = !seen.contains(ip);
        seen.push(*ip);
        new
    });
    ips.sort_by_key(|ip| ip.is_ipv6());
    Ok(ips)
}

/// The addresses of the system's interfaces that are up.
pub(crate) fn system_addresses() -> std::io::Result<Vec<IpAddr>> {
    Ok(if_addrs::get_if_addrs()?
        .into_iter()
        .filter(|i| {
            !matches!(
                i.oper_status,
                IfOperStatus::Down | IfOperStatus::NotPresent | IfOperStatus::LowerLayerDown
            )
        })
        .map(|i| i.ip())
        .collect())
}

/// What a Binding to a STUN server gave.
pub(crate) enum BindingOutcome {
    /// The server-reflexive address of the host socket.
    Mapped(SocketAddr),
    /// No answer, or an error response.
    Failed {
        kind: CandidateErrorKind,
        code: Option<u16>,
        reason: String,
    },
}

/// A Binding to a STUN server from host socket number `socket` (RFC 8445 §5.1.1.2),
/// driven through the core's client.
pub(crate) struct ServerBinding {
    socket: usize,
    server: SocketAddr,
    client: Client,
    done: bool,
}

impl ServerBinding {
    /// Starts a Binding from `base` (the host socket number `socket`) to `server`.
    pub(crate) fn start(
        now: Instant,
        socket: usize,
        base: SocketAddr,
        server: SocketAddr,
        transaction: TransactionConfig,
    ) -> Self {
        let mut c = ClientConfig::new(server, base, "", "");
        c.transaction = transaction;
        let mut client = Client::new(c, StdRng::from_entropy());
        client.binding(now);
        ServerBinding {
            socket,
            server,
            client,
            done: false,
        }
    }

    /// The STUN server.
    pub(crate) fn server(&self) -> SocketAddr {
        self.server
    }

    /// The host socket it runs on.
    pub(crate) fn socket(&self) -> usize {
        self.socket
    }

    /// Whether it has given its outcome.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Whether a datagram from `from` on host socket `socket` is this Binding's answer.
    pub(crate) fn is_for(&self, socket: usize, from: SocketAddr) -> bool {
        !self.done && self.socket == socket && self.server == from
    }

    pub(crate) fn handle_input(&mut self, now: Instant, from: SocketAddr, data: Bytes) {
        self.client.handle_input(now, from, data);
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if !self.done {
            self.client.handle_timeout(now);
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.client.poll_transmit()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        (!self.done).then(|| self.client.poll_timeout()).flatten()
    }

    /// The outcome, once.
    pub(crate) fn poll_outcome(&mut self) -> Option<BindingOutcome> {
        while let Some(e) = self.client.poll_event() {
            if self.done {
                continue;
            }
            match e {
                ClientEvent::BindingSucceeded { mapped, .. } => {
                    self.done = true;
                    return Some(BindingOutcome::Mapped(mapped));
                }
                ClientEvent::Error { code, reason, .. } => {
                    self.done = true;
                    let kind = match code {
                        None => CandidateErrorKind::Unreachable,
                        Some(_) => CandidateErrorKind::Rejected,
                    };
                    return Some(BindingOutcome::Failed { kind, code, reason });
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_finds_loopback_and_nothing_else() {
        let ips = host_addresses(&GatherConfig::loopback_only()).unwrap();
        assert!(
            ips.contains(&"127.0.0.1".parse::<IpAddr>().unwrap()),
            "{ips:?}"
        );
        assert!(ips.iter().all(IpAddr::is_loopback), "{ips:?}");
    }

    #[test]
    fn the_default_leaves_loopback_out() {
        let ips = host_addresses(&GatherConfig::default()).unwrap();
        assert!(!ips.iter().any(IpAddr::is_loopback), "{ips:?}");
    }
}
