//! What a state machine asks its driver to send.

use std::net::SocketAddr;

use bytes::Bytes;

/// The transport a message travels over between a client and a server or agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// UDP: unreliable; requests are retransmitted (RFC 8489 §6.2.1).
    #[default]
    Udp,
    /// TCP: reliable and framed (RFC 8489 §6.2.2, RFC 8656 §12.5).
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// TCP and TLS are reliable: no retransmissions, ChannelData is padded to 4 bytes.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// One datagram (or framed stream message) to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The local address to send from (a listener, a relay, or a host candidate).
    pub source: SocketAddr,
    /// Where to send it.
    pub destination: SocketAddr,
    /// Over which transport.
    pub transport: Transport,
    /// The bytes.
    pub payload: Bytes,
}
