//! External (public) addresses: behind NAT, the relayed address a client is told
//! (XOR-RELAYED-ADDRESS, RFC 8656 §7.3) is not the one the relay socket is bound to.
//!
//! The rule is coturn's `external-ip=PUBLIC[/PRIVATE]`: a mapping with a private address
//! applies to the relays bound on that address; one without applies to every relay of its
//! address family that no mapping names. A relay that no mapping covers is advertised as
//! it is bound. XOR-MAPPED-ADDRESS is not touched: it is what the server saw.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// One `PUBLIC[/PRIVATE]` mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExternalMapping {
    /// The address advertised.
    pub public: IpAddr,
    /// The relay address it stands for; `None`: every relay address of `public`'s family
    /// that no other mapping names.
    pub private: Option<IpAddr>,
}

impl fmt::Display for ExternalMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.private {
            Some(private) => write!(f, "{}/{private}", self.public),
            None => write!(f, "{}", self.public),
        }
    }
}

/// Why a mapping cannot join an [`ExternalAddresses`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExternalAddressError {
    /// The public and private addresses are of different families: an IPv4 relay must be
    /// advertised as IPv4 (RFC 8656 §7.3, the family the client asked for).
    #[error("external address {0}: the public and private addresses must be of the same family")]
    FamilyMismatch(ExternalMapping),
    /// The unspecified address or a multicast one.
    #[error("external address {0}: {1} is not a usable unicast address")]
    Unusable(ExternalMapping, IpAddr),
    /// Two mappings for the same private address.
    #[error("external address {0}: private address {1} is mapped twice")]
    DuplicatePrivate(ExternalMapping, IpAddr),
    /// Two mappings without a private address for the same family.
    #[error("external address {0}: only one mapping without /PRIVATE per address family ({1})")]
    DuplicateDefault(ExternalMapping, &'static str),
}

/// Which address is advertised for which relayed address: a small list of
/// [`ExternalMapping`]s, at most one per private address and one default per family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalAddresses {
    mappings: Vec<ExternalMapping>,
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

impl ExternalAddresses {
    /// No mappings: every relay is advertised as it is bound.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `public` for relays bound on `private`, or for every relay of its family
    /// that no mapping names when `private` is `None`.
    pub fn insert(
        &mut self,
        public: IpAddr,
        private: Option<IpAddr>,
    ) -> Result<(), ExternalAddressError> {
        let m = ExternalMapping { public, private };
        for ip in [Some(public), private].into_iter().flatten() {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(ExternalAddressError::Unusable(m, ip));
            }
        }
        match private {
            Some(p) if p.is_ipv4() != public.is_ipv4() => {
                Err(ExternalAddressError::FamilyMismatch(m))
            }
            Some(p) if self.mappings.iter().any(|o| o.private == Some(p)) => {
                Err(ExternalAddressError::DuplicatePrivate(m, p))
            }
            None if self
                .mappings
                .iter()
                .any(|o| o.private.is_none() && o.public.is_ipv4() == public.is_ipv4()) =>
            {
                Err(ExternalAddressError::DuplicateDefault(m, family(public)))
            }
            _ => {
                self.mappings.push(m);
                Ok(())
            }
        }
    }

    /// The mappings, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &ExternalMapping> {
        self.mappings.iter()
    }

    /// Whether there is no mapping.
    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// Every public address: the server's own, so never a peer (RFC 8656 §21.3).
    pub fn public_ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.mappings.iter().map(|m| m.public)
    }

    /// The public IP for a relay bound on `relay`, if a mapping covers it: the one that
    /// names `relay`, else the default of its family.
    pub fn public_for(&self, relay: IpAddr) -> Option<IpAddr> {
        let named = self.mappings.iter().find(|m| m.private == Some(relay));
        named
            .or_else(|| {
                self.mappings
                    .iter()
                    .find(|m| m.private.is_none() && m.public.is_ipv4() == relay.is_ipv4())
            })
            .map(|m| m.public)
    }

    /// RFC 8656 §7.3: the XOR-RELAYED-ADDRESS for a relay bound to `relay` (same port).
    pub fn advertised(&self, relay: SocketAddr) -> SocketAddr {
        self.public_for(relay.ip())
            .map_or(relay, |ip| SocketAddr::new(ip, relay.port()))
    }
}
