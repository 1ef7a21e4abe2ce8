//! IP address blocks in CIDR notation (RFC 4632 §3.1, RFC 4291 §2.3), for peer policy.
//!
//! ```
//! use floe::cidr::Cidr;
//! let private: Cidr = "10.0.0.0/8".parse().unwrap();
//! assert!(private.contains("10.1.2.3".parse().unwrap()));
//! assert_eq!(private.to_string(), "10.0.0.0/8");
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 address block: a network address and a prefix length.
///
/// The network address is always stored with its host bits cleared, so
/// `"192.168.1.7/24"` parses to `192.168.1.0/24`. A bare address parses as a
/// single-address block (`/32` or `/128`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// Why a CIDR block could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    #[error("`{0}` is not an IP address")]
    InvalidAddress(String),
    /// The part after `/` is not a number.
    #[error("`{0}` is not a prefix length")]
    InvalidPrefix(String),
    /// The prefix is longer than the address (32 bits for IPv4, 128 for IPv6).
    #[error("prefix length {prefix_len} is longer than the {max} bits of the address")]
    PrefixTooLong {
        /// The prefix length given.
        prefix_len: u8,
        /// 32 or 128.
        max: u8,
    },
}

impl Cidr {
    /// The block of `prefix_len` leading bits of `addr`; host bits are cleared.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Self, CidrError> {
        let max = max_prefix_len(addr);
        if prefix_len > max {
            return Err(CidrError::PrefixTooLong { prefix_len, max });
        }
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix_len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix_len))),
        };
        Ok(Cidr {
            network,
            prefix_len,
        })
    }

    /// The block that holds only `addr` (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        Cidr {
            network: addr,
            prefix_len: max_prefix_len(addr),
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The number of leading bits that are fixed.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` lies in this block.
    ///
    /// Addresses of the other family never match, with one exception: an
    /// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) is checked
    /// against an IPv4 block as the IPv4 address it carries. Other forms
    /// (IPv4-translated, IPv4-compatible, NAT64, 6to4) are normalised by the peer
    /// policy ([`crate::turn::server::policy::policy_ip`]) before it asks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_v4(self.prefix_len) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_v6(self.prefix_len) == u128::from(net)
            }
            (IpAddr::V4(_), IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(v4) => self.contains(IpAddr::V4(v4)),
                None => false,
            },
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

fn max_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask_v4(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

fn mask_v6(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Parses `ADDR/PREFIX` or a bare `ADDR`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::InvalidAddress(addr.to_owned()))?;
        match prefix {
            None => Ok(Cidr::host(addr)),
            Some(p) => {
                let prefix_len: u8 = p
                    .parse()
                    .map_err(|_| CidrError::InvalidPrefix(p.to_owned()))?;
                Cidr::new(addr, prefix_len)
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl From<IpAddr> for Cidr {
    fn from(addr: IpAddr) -> Self {
        Cidr::host(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays_ipv4_blocks() {
        let c = cidr("10.0.0.0/8");
        assert_eq!(c.network(), ip("10.0.0.0"));
        assert_eq!(c.prefix_len(), 8);
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert_eq!(cidr("192.168.1.7/24").to_string(), "192.168.1.0/24");
        assert_eq!(cidr("1.2.3.4").to_string(), "1.2.3.4/32");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
    }

    #[test]
    fn parses_and_displays_ipv6_blocks() {
        assert_eq!(cidr("fe80::1/10").to_string(), "fe80::/10");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert_eq!(cidr("64:ff9b::/96").to_string(), "64:ff9b::/96");
        assert_eq!(cidr("::/0").to_string(), "::/0");
    }

    #[test]
    fn contains_checks_the_prefix_bits() {
        let c = cidr("172.16.0.0/12");
        assert!(c.contains(ip("172.16.0.1")));
        assert!(c.contains(ip("172.31.255.255")));
        assert!(!c.contains(ip("172.32.0.0")));
        assert!(!c.contains(ip("172.15.255.255")));
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(cidr("1.2.3.4/32").contains(ip("1.2.3.4")));
        assert!(!cidr("1.2.3.4/32").contains(ip("1.2.3.5")));

        let v6 = cidr("fc00::/7");
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn families_do_not_mix_except_ipv4_mapped() {
        assert!(!cidr("::/0").contains(ip("127.0.0.1")));
        assert!(cidr("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert!(!cidr("127.0.0.0/8").contains(ip("::127.0.0.1")));
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong {
                prefix_len: 33,
                max: 32
            })
        );
        assert!(matches!(
            "::/129".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong { max: 128, .. })
        ));
        assert!(matches!(
            "10.0.0/8".parse::<Cidr>(),
            Err(CidrError::InvalidAddress(_))
        ));
        assert!(matches!(
            "10.0.0.0/x".parse::<Cidr>(),
            Err(CidrError::InvalidPrefix(_))
        ));
        assert!(matches!(
            "10.0.0.0/".parse::<Cidr>(),
            Err(CidrError::InvalidPrefix(_))
        ));
        assert!(matches!(
            "".parse::<Cidr>(),
            Err(CidrError::InvalidAddress(_))
        ));
    }
}
