//! Which peers a relay may talk to (RFC 8656 §21.3, "safe by default").
//!
//! A peer address is judged in its canonical form: an IPv6 address that carries an IPv4
//! address (mapped, translated, compatible, NAT64 well-known prefix, 6to4) is judged as that
//! IPv4 address, so `::ffff:10.0.0.1` or `2002:a00:1::1` cannot reach what `10.0.0.1` may not.
//! Every IANA special-purpose block is denied unless the operator allows it; an allow
//! applies to the canonical form too (allowing `10.0.0.0/8` allows `::ffff:10.0.0.1`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::cidr::Cidr;

/// Blocks denied unless allowed: the IANA IPv4 and IPv6 Special-Purpose Address Registries
/// (RFC 6890) and the ranges no relay should reach.
///
/// IPv6 forms that embed an IPv4 address (`::ffff:0:0/96`, `::ffff:0:0:0/96`, `::/96`,
/// `64:ff9b::/96`, `2002::/16`) are not listed: they are judged by the IPv4 address they
/// carry. Teredo (`2001::/32`, inside `2001::/23`) is denied whole, since the client
/// address it embeds is obfuscated and the server address says nothing about the peer.
pub const DEFAULT_DENIED: &[&str] = &[
    // IPv4 (RFC 6890 and the IANA IPv4 Special-Purpose Address Registry).
    "0.0.0.0/8",          // "this network" (RFC 791)
    "10.0.0.0/8",         // private (RFC 1918)
    "100.64.0.0/10",      // shared address space, CGNAT (RFC 6598)
    "127.0.0.0/8",        // loopback (RFC 1122)
    "169.254.0.0/16",     // link-local, cloud metadata (RFC 3927)
    "172.16.0.0/12",      // private (RFC 1918)
    "192.0.0.0/24",       // IETF protocol assignments (RFC 6890)
    "192.0.2.0/24",       // documentation, TEST-NET-1 (RFC 5737)
    "192.88.99.0/24",     // 6to4 relay anycast, deprecated (RFC 7526)
    "192.168.0.0/16",     // private (RFC 1918)
    "198.18.0.0/15",      // benchmarking (RFC 2544)
    "198.51.100.0/24",    // documentation, TEST-NET-2 (RFC 5737)
    "203.0.113.0/24",     // documentation, TEST-NET-3 (RFC 5737)
    "224.0.0.0/4",        // multicast (RFC 5771)
    "240.0.0.0/4",        // reserved (RFC 1112)
    "255.255.255.255/32", // limited broadcast (RFC 919)
    // IPv6 (the IANA IPv6 Special-Purpose Address Registry).
    "::/128",         // unspecified (RFC 4291)
    "::1/128",        // loopback (RFC 4291)
    "64:ff9b:1::/48", // local-use NAT64 (RFC 8215): the site's own translator, any embedding
    "100::/64",       // discard-only (RFC 6666)
    "2001::/23",      // IETF protocol assignments: Teredo, 2001:10::/28, 2001:20::/28 ...
    "2001:db8::/32",  // documentation (RFC 3849)
    "3fff::/20",      // documentation (RFC 9637)
    "5f00::/16",      // segment routing SIDs (RFC 9602)
    "fc00::/7",       // unique local (RFC 4193)
    "fe80::/10",      // link-local (RFC 4291)
    "fec0::/10",      // site-local, deprecated (RFC 3879)
    "ff00::/8",       // multicast (RFC 4291)
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

/// The low 32 bits of an IPv6 address as IPv4.
fn low_ipv4(v6: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from(u128::from(v6) as u32)
}

/// RFC 4291 §2.5.5: IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`, but not
/// `::` nor `::1`) addresses are the IPv4 address they carry: the relay sends to that IPv4
/// address from its IPv4 socket.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            if is_ipv4_compatible(v6) {
                return IpAddr::V4(low_ipv4(v6));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

/// RFC 4291 §2.5.5.1: `::a.b.c.d`, excluding `::` and `::1`, which are IPv6's own.
fn is_ipv4_compatible(v6: Ipv6Addr) -> bool {
    v6.segments()[..6] == [0; 6] && v6 != Ipv6Addr::UNSPECIFIED && v6 != Ipv6Addr::LOCALHOST
}

/// The IPv4 address an IPv6 peer address leads to, for the forms that carry one in the
/// clear: IPv4-mapped `::ffff:0:0/96` and IPv4-compatible `::/96` (RFC 4291 §2.5.5),
/// IPv4-translated `::ffff:0:0:0/96` (RFC 2765 §2.1), the NAT64 well-known prefix
/// `64:ff9b::/96` (RFC 6052 §2.1) and 6to4 `2002::/16`, whose bits 16..48 are the IPv4
/// address of the site (RFC 3056 §2).
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(low_ipv4(v6)),
        [0, 0, 0, 0, 0, 0, _, _] if is_ipv4_compatible(v6) => Some(low_ipv4(v6)),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low_ipv4(v6)),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        _ => None,
    }
}

/// The form a peer address is judged in: the IPv4 address it embeds
/// ([`embedded_ipv4`]), or itself.
pub fn policy_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// A peer transport address with its IP made canonical ([`canonical_ip`]), so that
/// `::ffff:a.b.c.d` is relayed from the IPv4 relay and matches its IPv4 traffic.
pub fn canonical_peer(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(peer.ip()), peer.port())
}

impl PeerPolicy {
    /// Allows a block (`--allow-peer`), also in the IPv6 forms that embed its addresses.
    pub fn allow(&mut self, cidr: Cidr) {
        self.allow.push(cidr);
    }

    /// Denies a block (`--deny-peer`), also in the IPv6 forms that embed its addresses.
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
        self.add_own_ip(addr.ip());
        self.own_sockets.push(addr);
    }

    /// Adds one of the server's own IPs (a relay or external address, or an address of
    /// one of the host's interfaces when a listener is on a wildcard address).
    pub fn add_own_ip(&mut self, ip: IpAddr) {
        let ip = policy_ip(ip);
        if !ip.is_unspecified() && !self.own.contains(&ip) {
            self.own.push(ip);
        }
    }

    /// Adds the server's own addresses that `other` knows (a policy replaced on reload
    /// keeps denying them).
    pub fn keep_own_of(&mut self, other: &PeerPolicy) {
        for ip in &other.own {
            self.add_own_ip(*ip);
        }
        for addr in &other.own_sockets {
            if !self.own_sockets.contains(addr) {
                self.own_sockets.push(*addr);
            }
        }
    }

    /// Whether a permission for `peer` may be installed (RFC 8656 §9, 403 otherwise).
    ///
    /// The peer is judged in its canonical form ([`policy_ip`]); an operator's deny also
    /// matches the IPv6 form as written. An allow wins over the deny list. The host's own
    /// addresses are refused even inside an allowed block: only an allow of that one
    /// address (`/32`, `/128`), or of loopback, lets a relay reach the server's host.
    pub fn permits(&self, peer: IpAddr) -> bool {
        let ip = policy_ip(peer);
        if self.own.contains(&ip) {
            return self
                .allow
                .iter()
                .any(|c| *c == Cidr::host(ip) || (ip.is_loopback() && c.contains(ip)));
        }
        if self.allow.iter().any(|c| c.contains(ip)) {
            return true;
        }
        let denied = |a: IpAddr| self.deny.iter().any(|c| c.contains(a));
        !(denied(ip) || denied(peer) || self.own.contains(&peer))
    }

    /// Whether data may be sent to this exact address: never to the server's own
    /// listeners, whatever is allowed, so a relay cannot loop into the server.
    pub fn may_send_to(&self, peer: SocketAddr) -> bool {
        let ip = policy_ip(peer.ip());
        // A wildcard listener is reachable on loopback and on every address of ours.
        let ours = |o: &SocketAddr| {
            if o.ip().is_unspecified() {
                ip.is_loopback() || self.own.contains(&ip)
            } else {
                policy_ip(o.ip()) == ip
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
    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The IPv6 forms that carry `v4` in the clear, as a peer could write them.
    fn embedded_forms(v4: Ipv4Addr, suffix: u64) -> Vec<(&'static str, IpAddr)> {
        let n = u128::from(u32::from(v4));
        let v6 = |x: u128| IpAddr::V6(Ipv6Addr::from(x));
        vec![
            ("mapped", v6(0xffff << 32 | n)),
            ("translated", v6(0xffff << 48 | n)),
            ("compatible", v6(n)),
            ("nat64", v6(0x0064_ff9b << 96 | n)),
            ("6to4", v6(0x2002 << 112 | n << 80 | u128::from(suffix))),
        ]
    }

    #[test]
    fn every_special_purpose_block_is_denied_by_default() {
        let p = PeerPolicy::default();
        for bad in [
            // IPv4
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.9",
            "192.0.2.7",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.5",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6
            "::",
            "::1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "2001:1ff::1",
            "2001:db8::1",
            "3fff::1",
            "3fff:fff::1",
            "5f00::1",
            "fc00::1",
            "fd00::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
            "64:ff9b:1::808:808", // local-use NAT64: any embedding, denied whole
        ] {
            assert!(!p.permits(ip(bad)), "{bad} permitted");
        }
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.0.3.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "2001:200::1",
            "2001:db9::1",
            "4000::1",
        ] {
            assert!(p.permits(ip(good)), "{good} denied");
        }
    }

    #[test]
    fn embedded_ipv4_forms_are_judged_by_the_ipv4_address() {
        let p = PeerPolicy::default();
        for (form, v6, verdict) in [
            ("mapped", "::ffff:10.0.0.1", false),
            ("mapped", "::ffff:127.0.0.1", false),
            ("mapped", "::ffff:8.8.8.8", true),
            ("translated", "::ffff:0:10.0.0.1", false),
            ("translated", "::ffff:0:169.254.169.254", false),
            ("translated", "::ffff:0:8.8.8.8", true),
            ("compatible", "::127.0.0.1", false),
            ("compatible", "::10.0.0.1", false),
            ("compatible", "::8.8.8.8", true),
            ("nat64", "64:ff9b::a00:1", false),
            ("nat64", "64:ff9b::127.0.0.1", false),
            ("nat64", "64:ff9b::8.8.8.8", true),
            ("6to4", "2002:a00:1::1", false),
            ("6to4", "2002:7f00:1::", false),
            ("6to4", "2002:a9fe:a9fe:1:2:3:4:5", false),
            ("6to4", "2002:c058:6301::1", false), // 192.88.99.1
            ("6to4", "2002:808:808::1", true),
            ("teredo", "2001:0:808:808::1", false),
        ] {
            assert_eq!(p.permits(ip(v6)), verdict, "{form} {v6}");
        }
        assert_eq!(
            embedded_ipv4("2002:c0a8:101::1".parse().unwrap()),
            Some("192.168.1.1".parse().unwrap())
        );
        assert_eq!(embedded_ipv4(Ipv6Addr::LOCALHOST), None);
        assert_eq!(embedded_ipv4(Ipv6Addr::UNSPECIFIED), None);
        assert_eq!(embedded_ipv4("2606:4700::1111".parse().unwrap()), None);
        assert_eq!(embedded_ipv4("64:ff9b:1::808:808".parse().unwrap()), None);
    }

    #[test]
    fn an_allow_applies_to_the_canonical_form() {
        let mut p = PeerPolicy::default();
        p.allow("10.0.0.0/8".parse().unwrap());
        for form in [
            "10.1.2.3",
            "::ffff:10.1.2.3",
            "::ffff:0:10.1.2.3",
            "::10.1.2.3",
            "64:ff9b::10.1.2.3",
            "2002:a01:203::9",
        ] {
            assert!(p.permits(ip(form)), "{form} denied");
        }
        // Only what was allowed: other private blocks, local-use NAT64 and Teredo stay denied.
        for form in [
            "172.16.0.1",
            "::ffff:192.168.0.1",
            "64:ff9b:1::10.1.2.3",
            "2001:0:a01:203::1",
        ] {
            assert!(!p.permits(ip(form)), "{form} permitted");
        }
        // An allow of an IPv6 block is no way around the IPv4 verdict.
        let mut q = PeerPolicy::default();
        q.allow("::/0".parse().unwrap());
        assert!(q.permits(ip("fd00::1")));
        assert!(!q.permits(ip("::ffff:127.0.0.1")));
        assert!(!q.permits(ip("2002:7f00:1::1")));
    }

    #[test]
    fn an_operators_deny_matches_both_forms() {
        let mut p = PeerPolicy::default();
        p.deny("8.8.8.0/24".parse().unwrap());
        assert!(!p.permits(ip("64:ff9b::8.8.8.8")));
        assert!(!p.permits(ip("2002:808:808::1")));
        p.deny("2002::/16".parse().unwrap());
        assert!(!p.permits(ip("2002:101:101::1")));
        assert!(p.permits(ip("1.1.1.1")));
    }

    #[test]
    fn every_address_of_the_host_is_refused_in_every_form() {
        let mut p = PeerPolicy::default();
        p.add_own("0.0.0.0:3478".parse().unwrap());
        for host in ["93.184.216.34", "2606:2800:220:1::1", "::ffff:1.2.3.4"] {
            p.add_own_ip(ip(host));
        }
        for own in [
            "93.184.216.34",
            "::ffff:93.184.216.34",
            "64:ff9b::93.184.216.34",
            "2002:5db8:d822::7",
            "2606:2800:220:1::1",
            "1.2.3.4",
        ] {
            assert!(!p.permits(ip(own)), "{own} permitted");
        }
        assert!(p.permits(ip("93.184.216.35")));
        // An allowed block does not open the host's own address in it; allowing that one
        // address does.
        p.allow("93.184.216.0/24".parse().unwrap());
        assert!(!p.permits(ip("93.184.216.34")));
        assert!(!p.permits(ip("::ffff:93.184.216.34")));
        assert!(p.permits(ip("93.184.216.35")));
        p.allow("93.184.216.34/32".parse().unwrap());
        assert!(p.permits(ip("93.184.216.34")));
    }

    #[test]
    fn allow_wins_but_own_listeners_stay_unreachable() {
        let mut p = PeerPolicy::default();
        p.add_own("127.0.0.1:3478".parse().unwrap());
        assert!(!p.permits(ip("127.0.0.1")));
        p.allow_loopback();
        assert!(p.permits(ip("127.0.0.1")));
        assert!(p.permits(ip("::ffff:127.0.0.1")));
        assert!(p.permits(ip("::1")));
        assert!(p.may_send_to("127.0.0.1:3480".parse().unwrap()));
        assert!(!p.may_send_to("127.0.0.1:3478".parse().unwrap()));
        assert!(!p.may_send_to("[::ffff:127.0.0.1]:3478".parse().unwrap()));
        let mut w = PeerPolicy::default();
        w.add_own("0.0.0.0:3478".parse().unwrap());
        w.add_own_ip("93.184.216.34".parse().unwrap());
        assert!(!w.may_send_to("127.0.0.1:3478".parse().unwrap()));
        assert!(!w.may_send_to("93.184.216.34:3478".parse().unwrap()));
        assert!(
            w.may_send_to("1.1.1.1:3478".parse().unwrap()),
            "another host's 3478"
        );
        p.deny("1.1.1.0/24".parse().unwrap());
        assert!(!p.permits(ip("1.1.1.1")));
        p.allow("1.1.1.1/32".parse().unwrap());
        assert!(p.permits(ip("1.1.1.1")));
    }

    #[test]
    fn an_allowed_private_block_is_permitted() {
        let mut p = PeerPolicy::default();
        p.allow("192.168.10.0/24".parse().unwrap());
        p.allow("fd12::/16".parse().unwrap());
        assert!(p.permits(ip("192.168.10.20")));
        assert!(!p.permits(ip("192.168.11.20")));
        assert!(p.permits(ip("fd12::1")));
        assert!(!p.permits(ip("fd13::1")));
    }

    fn policies() -> Vec<PeerPolicy> {
        let mut own = PeerPolicy::default();
        own.add_own("0.0.0.0:3478".parse().unwrap());
        own.add_own_ip(ip("93.184.216.34"));
        let mut operator = PeerPolicy::default();
        operator.allow("10.0.0.0/8".parse().unwrap());
        operator.allow_loopback();
        operator.deny("8.8.8.0/24".parse().unwrap());
        vec![PeerPolicy::default(), own, operator]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Issue 13 item 7: no IPv6 spelling reaches an IPv4 address the policy denies.
        #[test]
        fn an_ipv4_address_denied_is_denied_in_every_embedded_form(
            bits in any::<u32>(),
            special in prop::sample::select(DEFAULT_DENIED.iter().filter(|c| !c.contains(':')).copied().collect::<Vec<_>>()),
            host in any::<u32>(),
            use_special in any::<bool>(),
            suffix in any::<u64>(),
        ) {
            // Half the cases start inside a denied block, so that both verdicts are common.
            let v4 = if use_special {
                let block: Cidr = special.parse().unwrap();
                let IpAddr::V4(net) = block.network() else { unreachable!() };
                let host_mask = u32::MAX.checked_shr(u32::from(block.prefix_len())).unwrap_or(0);
                Ipv4Addr::from(u32::from(net) | (host & host_mask))
            } else {
                Ipv4Addr::from(bits)
            };
            for p in policies() {
                if p.permits(IpAddr::V4(v4)) {
                    continue;
                }
                for (form, v6) in embedded_forms(v4, suffix) {
                    prop_assert!(!p.permits(v6), "{} ({}) of denied {} permitted", v6, form, v4);
                }
            }
        }
    }
}
