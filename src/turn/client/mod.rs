//! The TURN client core (RFC 8656), sans-IO: one session with one TURN (or STUN) server.
//!
//! [`Client`] drives Binding (RFC 8489 §6), Allocate, Refresh, CreatePermission and
//! ChannelBind (RFC 8656 §7-§12) with the long-term credential mechanism (RFC 8489 §9.2),
//! and moves application data through Send/Data indications and ChannelData. It never
//! reads a clock nor touches a socket:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use floe::turn::client::{ClientConfig, Client};
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! let config = ClientConfig::new(
//!     "192.0.2.1:3478".parse().unwrap(), // the server
//!     "0.0.0.0:40000".parse().unwrap(),  // the local socket
//!     "user",
//!     "pass",
//! );
//! let mut client = Client::new(config, StdRng::seed_from_u64(1));
//! let now = Instant::now();
//! client.allocate(now).unwrap();
//! let t = client.poll_transmit().unwrap(); // send t.payload to t.destination
//! assert_eq!(t.destination, "192.0.2.1:3478".parse().unwrap());
//! // feed what the server answers to `handle_input`, call `handle_timeout` at
//! // `poll_timeout()`, and read `poll_event()` until it is empty.
//! assert_eq!(client.poll_timeout(), Some(now + Duration::from_millis(500)));
//! ```

mod auth;
mod config;
mod event;
mod request;
mod response;
mod session;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::{Duration, Instant};

pub use config::ClientConfig;
pub use event::{ClientError, ClientEvent, ClientState};
pub use session::Client;

/// RFC 8656 §9: a permission lasts 300 s.
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Permissions are re-created after 4 minutes, a minute before they expire.
const PERMISSION_REFRESH: Duration = Duration::from_secs(240);
/// RFC 8656 §12: a channel binding lasts 600 s.
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// Channels are re-bound after 9 minutes, a minute before they expire.
const CHANNEL_REFRESH: Duration = Duration::from_secs(540);
/// RFC 8489 §6.2.1: a cached RTO is stale after 10 minutes without a transaction.
const RTO_CACHE: Duration = Duration::from_secs(600);
/// Peers per CreatePermission request, so the request stays well inside one datagram.
const MAX_PEERS_PER_REQUEST: usize = 32;

/// `t + d`, saturating far in the future instead of panicking on overflow.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(t)
}

/// RFC 8656 §8 suggests refreshing "roughly 1 minute before it expires": floe refreshes
/// 60 s before expiry, or at half the lifetime when that is 2 minutes or less.
fn refresh_delay(lifetime: Duration) -> Duration {
    if lifetime > Duration::from_secs(120) {
        lifetime - Duration::from_secs(60)
    } else {
        lifetime / 2
    }
}

fn lifetime_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}
