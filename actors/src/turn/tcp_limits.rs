//! Limits on TCP and TLS client connections (issue 13): how many one source and all
//! sources may hold open, how long a client has to finish a message, and how many bytes
//! may wait for a client that reads slowly. Each is a flag of `floe serve`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::ServeConfig;
use crate::metrics::Metrics;

/// The limits every TCP and TLS connection of a server keeps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpLimits {
    /// Connections one source (an IPv4 address, an IPv6 /64) may hold open.
    pub max_per_ip: u32,
    /// Connections all sources may hold open.
    pub max_total: u32,
    /// Time a client has to complete a message: its first from connecting, and any other
    /// from its first byte.
    pub message_timeout: Duration,
    /// Bytes queued for one client at most; beyond, messages for it are dropped.
    pub write_queue_bytes: usize,
}

impl TcpLimits {
    /// The limits `config` asks for, with the total lowered to half the open-file limit
    /// when that is lower: the other half stays for relays and listeners.
    pub(crate) fn from_config(config: &ServeConfig) -> Self {
        let mut max_total = config.max_tcp_connections;
        if let Some(half) = open_file_limit().map(|n| n / 2) {
            let half = u32::try_from(half).unwrap_or(u32::MAX).max(1);
            if half < max_total {
                tracing::warn!(
                    max_tcp_connections = max_total,
                    lowered_to = half,
                    "max-tcp-connections lowered to half the open-file limit (ulimit -n), so \
                     that the other half stays for relays; raise the limit to allow more"
                );
                max_total = half;
            }
        }
        TcpLimits {
            max_per_ip: config.max_tcp_per_ip,
            max_total,
            message_timeout: Duration::from_secs(config.tcp_message_timeout.into()),
            write_queue_bytes: config.tcp_write_queue as usize,
        }
    }
}

/// The soft RLIMIT_NOFILE of the process, if it has one.
fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CapReached {
    /// Its source holds [`TcpLimits::max_per_ip`] connections.
    PerIp,
    /// All sources hold [`TcpLimits::max_total`].
    Total,
}

/// The connections open now, per source and in all, counted across the Arbiters (control
/// plane only: taken once per accept, given back once per close).
#[derive(Debug)]
pub(crate) struct ConnectionCaps {
    max_per_ip: u32,
    max_total: u32,
    open: Mutex<Open>,
    metrics: Metrics,
}

#[derive(Debug, Default)]
struct Open {
    total: u32,
    per_source: HashMap<IpAddr, u32>,
}

impl ConnectionCaps {
    pub(crate) fn new(limits: &TcpLimits, metrics: Metrics) -> Arc<Self> {
        Arc::new(ConnectionCaps {
            max_per_ip: limits.max_per_ip,
            max_total: limits.max_total,
            open: Mutex::default(),
            metrics,
        })
    }

    /// Takes a slot for a connection from `ip`, held until the slot drops; refused when
    /// a cap is reached.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, CapReached> {
        let source = source_of(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_total {
            return Err(CapReached::Total);
        }
        let n = open.per_source.entry(source).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(CapReached::PerIp);
        }
        *n += 1;
        open.total += 1;
        self.metrics.tcp_connection_opened();
        Ok(ConnectionSlot {
            caps: self.clone(),
            source,
        })
    }

    fn release(&self, source: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                open.per_source.remove(&source);
            }
            open.total -= 1;
            self.metrics.tcp_connection_closed();
        }
    }
}

/// One open connection's place under the caps; given back when dropped.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    caps: Arc<ConnectionCaps>,
    source: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.caps.release(self.source);
    }
}

/// The source a connection counts against: its IPv4 address (also when written as an
/// IPv4-mapped IPv6 address), or the /64 of its IPv6 address, since one host commonly
/// holds a whole /64.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(s))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(per_ip: u32, total: u32) -> (Arc<ConnectionCaps>, Metrics) {
        let limits = TcpLimits {
            max_per_ip: per_ip,
            max_total: total,
            message_timeout: Duration::from_secs(30),
            write_queue_bytes: 256 * 1024,
        };
        let metrics = Metrics::new();
        (ConnectionCaps::new(&limits, metrics.clone()), metrics)
    }

    #[test]
    fn each_source_and_all_of_them_are_capped() {
        let (caps, metrics) = caps(2, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = caps.admit(a).unwrap();
        let _a2 = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).unwrap_err(), CapReached::PerIp);
        let _b1 = caps.admit(b).unwrap();
        assert_eq!(caps.admit(b).unwrap_err(), CapReached::Total);
        assert_eq!(metrics.snapshot().tcp_connections_active, 3);
        // A closed connection gives its slot back, to its source and to the total.
        drop(a1);
        assert_eq!(metrics.snapshot().tcp_connections_active, 2);
        let _a3 = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).unwrap_err(), CapReached::Total);
    }

    #[test]
    fn an_ipv6_host_is_its_64_and_a_mapped_ipv4_address_its_ipv4_address() {
        let (caps, _) = caps(1, 100);
        let _one = caps.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert_eq!(
            caps.admit("2001:db8:1:2:ffff::9".parse().unwrap())
                .unwrap_err(),
            CapReached::PerIp
        );
        let _other = caps.admit("2001:db8:1:3::1".parse().unwrap()).unwrap();
        let _v4 = caps.admit("192.0.2.7".parse().unwrap()).unwrap();
        assert_eq!(
            caps.admit("::ffff:192.0.2.7".parse().unwrap()).unwrap_err(),
            CapReached::PerIp
        );
    }
}
