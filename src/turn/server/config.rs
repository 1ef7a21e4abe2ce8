//! The settings of a TURN server core.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::RngCore;

use super::auth::Credentials;
use super::external::ExternalAddresses;
use super::policy::PeerPolicy;

/// Settings of a TURN server core.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// RFC 8489 §9.2: the realm of long-term credentials.
    pub realm: String,
    /// SOFTWARE in responses, if any.
    pub software: Option<String>,
    /// RFC 8489 §10: where a draining server sends clients that Allocate (300 with
    /// ALTERNATE-SERVER); without it they get 403.
    pub alternate_server: Option<SocketAddr>,
    /// Where keys come from.
    pub credentials: Credentials,
    /// Key of the stateless nonces; share it between the threads of one server.
    pub nonce_secret: [u8; 32],
    /// How long a nonce is valid (600 s).
    pub nonce_lifetime: Duration,
    /// Offer SHA-256 through PASSWORD-ALGORITHMS and USERHASH (RFC 8489 §9.2.1).
    pub password_algorithms: bool,
    /// Lifetime when the client asks for none (600 s, RFC 8656 §7.2).
    pub default_lifetime: Duration,
    /// Longest lifetime granted (3600 s).
    pub max_lifetime: Duration,
    /// RFC 8656 §9: 300 s.
    pub permission_lifetime: Duration,
    /// RFC 8656 §11: 600 s.
    pub channel_lifetime: Duration,
    /// IPv4 address relays bind to, if IPv4 allocations are offered.
    pub relay_ipv4: Option<IpAddr>,
    /// IPv6 address relays bind to, if IPv6 allocations are offered.
    pub relay_ipv6: Option<IpAddr>,
    /// Addresses advertised in XOR-RELAYED-ADDRESS instead of the relay addresses
    /// (behind NAT): coturn's `external-ip=PUBLIC[/PRIVATE]`, one rule for every relay.
    /// The public addresses are the server's own: never peers.
    pub external: ExternalAddresses,
    /// Lowest relay port.
    pub min_port: u16,
    /// Highest relay port.
    pub max_port: u16,
    /// Which peers relays may reach.
    pub policy: PeerPolicy,
    /// Permissions per allocation.
    pub max_permissions: usize,
    /// Channels per allocation.
    pub max_channels: usize,
    /// Relayed payload bytes a second per allocation, each way (a burst of one second's
    /// worth); beyond it data is dropped. 0 is no limit.
    pub max_bps: u64,
    /// Error responses a second to requests that did not authenticate, per source IP,
    /// over UDP (TCP and TLS sources are not spoofable); beyond it they are dropped.
    /// 0 is no limit.
    pub unauth_rate: u32,
    /// The instant `unix_time_at_epoch` was read: lets the core tell Unix time from
    /// `now` for TURN REST API expiry without reading a clock.
    pub epoch: Instant,
    /// Seconds since the Unix epoch at `epoch`.
    pub unix_time_at_epoch: u64,
}

impl ServerConfig {
    /// Safe defaults: realm `floe`, relays on `relay_ipv4`, no credentials (every
    /// Allocate is refused until some are added), peers in private ranges denied.
    pub fn new(relay_ipv4: IpAddr, epoch: Instant, unix_time_at_epoch: u64) -> Self {
        let mut nonce_secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut nonce_secret);
        ServerConfig {
            realm: "floe".into(),
            software: Some(concat!("floe ", env!("CARGO_PKG_VERSION")).into()),
            alternate_server: None,
            credentials: Credentials::default(),
            nonce_secret,
            nonce_lifetime: Duration::from_secs(600),
            password_algorithms: true,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            permission_lifetime: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(600),
            relay_ipv4: Some(relay_ipv4),
            relay_ipv6: None,
            external: ExternalAddresses::new(),
            min_port: 49152,
            max_port: 65535,
            policy: PeerPolicy::default(),
            max_permissions: 64,
            max_channels: 64,
            max_bps: 0,
            unauth_rate: 20,
            epoch,
            unix_time_at_epoch,
        }
    }
}
