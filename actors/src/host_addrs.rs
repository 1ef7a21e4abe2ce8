//! The host's own addresses, for the TURN server's peer policy: a relay must not reach the
//! server's host through any of its interfaces, not only through the relay address
//! (issue 13 item 7; RFC 8656 §21.3).
//!
//! The driver of the server core adds them with
//! [`PeerPolicy::add_own_ip`](floe::turn::server::PeerPolicy::add_own_ip):
//!
//! ```no_run
//! # let listen: Vec<std::net::SocketAddr> = vec!["0.0.0.0:3478".parse().unwrap()];
//! let mut policy = floe::turn::server::PeerPolicy::default();
//! for ip in floe_actors::host_addrs::own_addresses(&listen) {
//!     policy.add_own_ip(ip);
//! }
//! ```

use std::net::{IpAddr, SocketAddr};

/// Every IP address configured on an interface of this host, up or down, each once.
pub fn host_addresses() -> std::io::Result<Vec<IpAddr>> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| i.ip())
        .collect();
    ips.sort();
    ips.dedup();
    Ok(ips)
}

/// The addresses the peer policy must treat as the server's own, beyond the listeners
/// themselves: every address of the host when a listener is on a wildcard address
/// (`0.0.0.0` or `::`, reachable through every interface), none otherwise. If the
/// interfaces cannot be listed, says so in the log and returns none (the listeners,
/// loopback and private ranges stay denied by the policy's defaults).
pub fn own_addresses(listen: &[SocketAddr]) -> Vec<IpAddr> {
    if !has_wildcard(listen) {
        return Vec::new();
    }
    match host_addresses() {
        Ok(ips) => ips,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the host's addresses to deny them as peers");
            Vec::new()
        }
    }
}

/// Whether one of `listen` is a wildcard address.
pub fn has_wildcard(listen: &[SocketAddr]) -> bool {
    listen.iter().any(|a| a.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_has_loopback_and_each_address_once() {
        let ips = host_addresses().unwrap();
        assert!(ips.contains(&"127.0.0.1".parse().unwrap()), "{ips:?}");
        let mut unique = ips.clone();
        unique.dedup();
        assert_eq!(unique, ips);
    }

    #[test]
    fn only_a_wildcard_listener_takes_the_hosts_addresses() {
        let specific: Vec<SocketAddr> = vec!["127.0.0.1:3478".parse().unwrap()];
        assert!(!has_wildcard(&specific));
        assert!(own_addresses(&specific).is_empty());
        for wildcard in ["0.0.0.0:3478", "[::]:3478"] {
            let listen: Vec<SocketAddr> =
                vec!["127.0.0.1:3478".parse().unwrap(), wildcard.parse().unwrap()];
            assert!(has_wildcard(&listen));
            let own = own_addresses(&listen);
            assert!(own.contains(&"127.0.0.1".parse().unwrap()), "{own:?}");
        }
    }

    #[test]
    fn the_policy_refuses_every_host_address_when_listening_on_a_wildcard() {
        let mut policy = floe::turn::server::PeerPolicy::default();
        // Every block allowed, as an operator of a private network might: the host's own
        // addresses must stay refused all the same.
        policy.allow("0.0.0.0/0".parse().unwrap());
        policy.allow("::/0".parse().unwrap());
        let listen: Vec<SocketAddr> = vec!["0.0.0.0:3478".parse().unwrap()];
        for ip in own_addresses(&listen) {
            policy.add_own_ip(ip);
        }
        assert!(policy.permits("1.1.1.1".parse().unwrap()));
        for ip in host_addresses().unwrap() {
            if !ip.is_loopback() {
                assert!(!policy.permits(ip), "{ip} is the server's host");
            }
        }
    }
}
