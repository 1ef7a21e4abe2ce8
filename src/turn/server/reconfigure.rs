//! Live reconfiguration: the credentials, peer policy and limits a running server core
//! takes on without losing its allocations.
//!
//! New values apply to the requests that come after: a user taken out gets 401 on its
//! next authenticated request (its allocations relay until they expire, as coturn's do);
//! a lower cap or lifetime applies to the next CreatePermission, ChannelBind, Allocate or
//! Refresh; `max_bps` to allocations made from then on; a new peer policy to the next
//! permission (installed permissions run out at their own pace).

use std::time::{Duration, Instant};

use super::auth::{NonceIssuer, RestApiSecrets, StaticUsers};
use super::policy::PeerPolicy;
use super::{Server, ServerConfig};
use crate::stun::credentials::{userhash, SecurityFeatures};

/// The settings of a [`Server`] that may change while it runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Reconfiguration {
    /// Static users, replacing the current ones.
    pub users: StaticUsers,
    /// TURN REST API secrets, replacing the current ones; see `secret_grace`.
    pub rest_secrets: RestApiSecrets,
    /// How long a REST API secret that `rest_secrets` no longer has stays valid, so that
    /// credentials minted with it keep working.
    pub secret_grace: Duration,
    /// The peer policy; the server's own addresses stay denied whatever it says.
    pub policy: PeerPolicy,
    /// Permissions per allocation.
    pub max_permissions: usize,
    /// Channels per allocation.
    pub max_channels: usize,
    /// Relayed bytes a second per allocation, each way, for allocations made from now.
    pub max_bps: u64,
    /// Error responses a second to unauthenticated requests, per source IP.
    pub unauth_rate: u32,
    /// Lifetime when the client asks for none.
    pub default_lifetime: Duration,
    /// Longest lifetime granted.
    pub max_lifetime: Duration,
}

/// The default [`Reconfiguration::secret_grace`]: an hour, about as long as TURN REST
/// credentials are commonly minted for.
pub const DEFAULT_SECRET_GRACE: Duration = Duration::from_secs(3600);

impl Reconfiguration {
    /// The reloadable values of `config`, with the default grace.
    pub fn from_config(config: &ServerConfig) -> Self {
        Reconfiguration {
            users: config.credentials.users.clone(),
            rest_secrets: config.credentials.rest_secrets.clone(),
            secret_grace: DEFAULT_SECRET_GRACE,
            policy: config.policy.clone(),
            max_permissions: config.max_permissions,
            max_channels: config.max_channels,
            max_bps: config.max_bps,
            unauth_rate: config.unauth_rate,
            default_lifetime: config.default_lifetime,
            max_lifetime: config.max_lifetime,
        }
    }

    /// The values `server` runs with now: change some, then [`Server::reconfigure`].
    pub fn of(server: &Server) -> Self {
        Self::from_config(&server.config)
    }
}

impl Server {
    /// Takes on new credentials, peer policy and limits at `now`. Allocations, nonces
    /// and the application's own authenticator carry on.
    pub fn reconfigure(&mut self, now: Instant, r: Reconfiguration) {
        let unix_time = self.config.unix_time_at_epoch
            + now.saturating_duration_since(self.config.epoch).as_secs();
        let c = &mut self.config;
        c.credentials.rest_secrets =
            c.credentials
                .rest_secrets
                .rotate(r.rest_secrets, unix_time, r.secret_grace);
        let anonymity_before = !c.credentials.users.is_empty();
        c.credentials.users = r.users;
        let mut policy = r.policy;
        policy.keep_own_of(&c.policy);
        c.policy = policy;
        c.max_permissions = r.max_permissions.max(1);
        c.max_channels = r.max_channels.max(1);
        c.max_bps = r.max_bps;
        c.unauth_rate = r.unauth_rate;
        c.max_lifetime = r.max_lifetime.max(Duration::from_secs(1));
        c.default_lifetime = r.default_lifetime.min(c.max_lifetime);
        self.unauth.set_rate(c.unauth_rate);
        self.userhashes = c
            .credentials
            .users
            .names()
            .filter_map(|u| Some((userhash(u, &c.realm).ok()?, u.to_owned())))
            .collect();
        // USERHASH is offered only with static users: when that changes, so do the
        // nonces' feature bits (an outstanding nonce then gets 438 and a fresh one).
        let anonymity = !c.credentials.users.is_empty();
        if c.password_algorithms && anonymity != anonymity_before {
            self.nonces = NonceIssuer::new(
                c.nonce_secret,
                c.epoch,
                c.nonce_lifetime,
                Some(SecurityFeatures {
                    password_algorithms: true,
                    username_anonymity: anonymity,
                }),
            );
        }
    }
}
