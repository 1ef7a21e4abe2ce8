//! The configuration of one client session.

use std::net::SocketAddr;
use std::time::Duration;

use crate::stun::attribute::AddressFamily;
use crate::stun::transaction::TransactionConfig;
use crate::transmit::Transport;

/// The configuration of one client session (RFC 8656 §7.1 for the Allocate parameters).
/// Its `Debug` output leaves the password out.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The TURN (or STUN) server. A 300 Try Alternate replaces it for the session.
    pub server: SocketAddr,
    /// The local address of the socket the driver sends from (`Transmit::source`).
    pub local: SocketAddr,
    /// UDP, TCP or TLS to the server (RFC 8656 §3.1). Requests are retransmitted only
    /// over UDP (RFC 8489 §6.2.1); ChannelData is padded over TCP and TLS (§12.5).
    pub transport: Transport,
    /// The long-term credential username (RFC 8489 §9.2).
    pub username: String,
    /// The long-term credential password (RFC 8489 §9.2).
    pub password: String,
    /// RFC 8489 §14.14: SOFTWARE sent in requests, if any.
    pub software: Option<String>,
    /// RFC 8656 §7.1: the allocation lifetime asked for (600 s by default).
    pub lifetime: Duration,
    /// RFC 8656 §7.1: REQUESTED-ADDRESS-FAMILY (IPv4 when `None`, the server's default).
    pub requested_family: Option<AddressFamily>,
    /// RFC 8656 §7.1: ADDITIONAL-ADDRESS-FAMILY for a dual-stack allocation. The RFC only
    /// allows IPv6 here, and not together with `requested_family`; the server answers 400
    /// otherwise.
    pub additional_family: Option<AddressFamily>,
    /// RFC 8489 §6.2: retransmission timers.
    pub transaction: TransactionConfig,
    /// RFC 8489 §14.7: append FINGERPRINT to requests (on by default).
    pub fingerprint: bool,
    /// RFC 8489 §10: how many 300 Try Alternate redirects to follow (3 by default).
    pub max_redirects: u32,
    /// RFC 8489 §9.2.5: how many times one request is re-sent after a 438 Stale Nonce
    /// (once by default).
    pub max_stale_nonce_retries: u32,
}

impl ClientConfig {
    /// A configuration with safe defaults: UDP, 600 s lifetime, RFC 8489 timers.
    pub fn new(
        server: SocketAddr,
        local: SocketAddr,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        ClientConfig {
            server,
            local,
            transport: Transport::Udp,
            username: username.into(),
            password: password.into(),
            software: None,
            lifetime: Duration::from_secs(600),
            requested_family: None,
            additional_family: None,
            transaction: TransactionConfig::default(),
            fingerprint: true,
            max_redirects: 3,
            max_stale_nonce_retries: 1,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("local", &self.local)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("software", &self.software)
            .field("lifetime", &self.lifetime)
            .field("requested_family", &self.requested_family)
            .field("additional_family", &self.additional_family)
            .field("transaction", &self.transaction)
            .field("fingerprint", &self.fingerprint)
            .field("max_redirects", &self.max_redirects)
            .field("max_stale_nonce_retries", &self.max_stale_nonce_retries)
            .finish()
    }
}
