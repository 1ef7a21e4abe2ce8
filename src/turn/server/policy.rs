//! Which peers a relay may talk to (RFC 8656 §21.3, "safe by default").

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::cidr::Cidr;

/// Blocks denied unless allowed: unspecified, loopback, private, shared (CGNAT),
/// IETF protocol assignments, benchmarking, link-local, unique-local, multicast,
/// reserved, discard-only, NAT64 (well-known and local-use), Teredo and 6to4.
pub const DEFAULT_DENIED: &[&str] = &[
    "0.0.0.0/8",
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "192.0.0.0/24",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/32",
    "2002::/16",
];

/// Peer policy: an explicit allow list wins over every denial; then the deny list
/// (the defaults, the operator's own, and the server's own addresses).
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
    own: Vec<IpAddr>,
    own_sockets: Vec<SocketAddr>,
}

impl Default for PeerPolicy {
    fn default() -> Self {
        PeerPolicy {
            allow: Vec::new(),
            deny: DEFAULT_DENIED
                .iter()
                .map(|c| c.parse().expect("valid default CIDR"))
                .collect(),
            own: Vec::new(),
            own_sockets: Vec::new(),
        }
    }
}

/// RFC 4291 §2.5.5: IPv4-mapped and IPv4-compatible IPv6 addresses are the IPv4
/// address they carry.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0; 6] && v6 != Ipv6Addr::UNSPECIFIED && v6 != Ipv6Addr::LOCALHOST {
                return IpAddr::V4(std::net::Ipv4Addr::from(
                    u32::from(s[6]) << 16 | u32::from(s[7]),
                ));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

/// A peer transport address with its IP made canonical ([`canonical_ip`]), so that
/// `::ffff:a.b.c.d` is relayed from the IPv4 relay and matches its IPv4 traffic.
pub fn canonical_peer(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(peer.ip()), peer.port())
}

impl PeerPolicy {
    /// Allows a block (`--allow-peer`).
    pub fn allow(&mut self, cidr: Cidr) {
        self.allow.push(cidr);
    }

    /// Denies a block (`--deny-peer`).
    pub fn deny(&mut self, cidr: Cidr) {
        self.deny.push(cidr);
    }

    /// Allows 127.0.0.0/8 and ::1 (`--allow-loopback-peers`).
    pub fn allow_loopback(&mut self) {
        self.allow.push("127.0.0.0/8".parse().expect("valid CIDR"));
        self.allow.push("::1/128".parse().expect("valid CIDR"));
    }

    /// Adds one of the server's own addresses (listener or relay): its IP is denied
    /// unless allowed, and the exact socket address is never a peer.
    pub fn add_own(&mut self, addr: SocketAddr) {
        let ip = canonical_ip(addr.ip());
        if !ip.is_unspecified() && !self.own.contains(&ip) {
            self.own.push(ip);
        }
        self.own_sockets.push(addr);
    }

    /// Adds one of the server's own IPs (a relay or external address).
    pub fn add_own_ip(&mut self, ip: IpAddr) {
        let ip = canonical_ip(ip);
        if !ip.is_unspecified() && !self.own.contains(&ip) {
            self.own.push(ip);
        }
    }

    /// Whether a permission for `peer` may be installed (RFC 8656 §9, 403 otherwise).
    pub fn permits(&self, peer: IpAddr) -> bool {
        let ip = canonical_ip(peer);
        if self.allow.iter().any(|c| c.contains(ip)) {
            return true;
        }
        !(self.deny.iter().any(|c| c.contains(ip)) || self.own.contains(&ip))
    }

    /// Whether data may be sent to this exact address: never to the server's own
    /// listeners, whatever is allowed, so a relay cannot loop into the server.
    pub fn may_send_to(&self, peer: SocketAddr) -> bool {
        let ip = canonical_ip(peer.ip());
        // A wildcard listener is reachable on loopback and on every address of ours.
        let ours = |o: &SocketAddr| {
            if o.ip().is_unspecified() {
                ip.is_loopback() || self.own.contains(&ip)
            } else {
                canonical_ip(o.ip()) == ip
            }
        };
        !self
            .own_sockets
            .iter()
            .any(|o| o.port() == peer.port() && ours(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_deny_the_dangerous_ranges() {
        let mut p = PeerPolicy::default();
        p.add_own("203.0.113.5:3478".parse().unwrap());
        for bad in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "0.0.0.0",
            "::",
            "::1",
            "fe80::1",
            "fd00::1",
            "224.0.0.1",
            "ff02::1",
            "100.64.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "64:ff9b::a00:1",
            "2001::1",
            "2002::1",
            "203.0.113.5",
            "::ffff:203.0.113.5",
            "255.255.255.255",
        ] {
            assert!(!p.permits(ip(bad)), "{bad} permitted");
        }
        for good in ["198.51.100.7", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert!(p.permits(ip(good)), "{good} denied");
        }
    }

    #[test]
    fn allow_wins_but_own_listeners_stay_unreachable() {
        let mut p = PeerPolicy::default();
        p.add_own("127.0.0.1:3478".parse().unwrap());
        assert!(!p.permits(ip("127.0.0.1")));
        p.allow_loopback();
        assert!(p.permits(ip("127.0.0.1")));
        assert!(p.permits(ip("::ffff:127.0.0.1")));
        assert!(p.may_send_to("127.0.0.1:3480".parse().unwrap()));
        assert!(!p.may_send_to("127.0.0.1:3478".parse().unwrap()));
        let mut w = PeerPolicy::default();
        w.add_own("0.0.0.0:3478".parse().unwrap());
        w.add_own_ip("203.0.113.5".parse().unwrap());
        assert!(!w.may_send_to("127.0.0.1:3478".parse().unwrap()));
        assert!(!w.may_send_to("203.0.113.5:3478".parse().unwrap()));
        assert!(
            w.may_send_to("198.51.100.9:3478".parse().unwrap()),
            "another host's 3478"
        );
        p.deny("198.51.100.0/24".parse().unwrap());
        assert!(!p.permits(ip("198.51.100.1")));
        p.allow("198.51.100.1/32".parse().unwrap());
        assert!(p.permits(ip("198.51.100.1")));
    }
}
