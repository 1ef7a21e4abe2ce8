//! Live reload of `floe serve` (SIGHUP, `POST /reload`): the `--config` file is read
//! again, the command-line flags are laid over it as at start, and what may change
//! while running reaches every worker thread ([`ServerHandle::reconfigure`]).
//!
//! - Reloaded: users, auth secrets (one taken out stays valid `secret-grace` seconds),
//!   `secret-grace`, the peer policy (`allow-loopback-peers`, `allow-peer`, `deny-peer`),
//!   quotas and caps (`user-quota`, `total-quota`, `max-permissions`, `max-channels`,
//!   `max-bps`, `total-bps`, `unauth-rate`, `max-lifetime`), and the TLS certificates and
//!   keys, read again from their files (new connections get the new certificates). The
//!   TLS files are also watched between reloads (`tls-watch-interval`, see
//!   [`tls`](crate::tls)).
//! - Fixed at start ([`FIXED`]): a new value is logged as a warning and the old one kept.
//! - A file that does not parse or validate, or TLS files that do not load, are rejected:
//!   the running config stays and the error is logged and returned.
//!
//! Allocations carry on: new limits apply to new requests. A user taken out gets 401 on
//! its next authenticated request (a Refresh, a CreatePermission), so its allocations
//! relay until they expire, as coturn's do.

use std::sync::Arc;

use serde::Serialize;

use crate::cli::ServeArgs;
use crate::config::{ConfigError, ServeConfig, UserCredential};
use crate::metrics::Metrics;
use crate::turn::ServerHandle;

/// Settings a reload cannot change (sockets, threads, the realm every key is made
/// with, what the process was started with).
pub const FIXED: [&str; 25] = [
    "listen",
    "realm",
    "relay-ip",
    "external-ip",
    "external-ip-stun",
    "min-port",
    "max-port",
    "threads",
    "rx-coalesce-us",
    "max-tcp-per-ip",
    "max-tcp-connections",
    "tcp-message-timeout",
    "tcp-write-queue",
    "metrics",
    "admin",
    "admin-token",
    "alternate-server",
    "drain-timeout",
    "log",
    "log-format",
    "usage-top-users",
    "tls-listen",
    "tls-watch-interval",
    "tls-cert",
    "tls-key",
];

type Load = dyn Fn() -> Result<ServeConfig, ConfigError> + Send + Sync;

/// Where a reload reads the configuration from.
pub struct ConfigSource {
    load: Box<Load>,
    generated: Option<UserCredential>,
}

impl ConfigSource {
    /// The `--config` file with the flags over it, validated, as at start. `generated`
    /// is the user made up at start for want of credentials: it stays while the
    /// configuration still gives none.
    pub fn from_args(args: ServeArgs, generated: Option<UserCredential>) -> Self {
        Self::new(move || args.load(), generated)
    }

    /// Configurations from `load` (which validates them).
    pub fn new(
        load: impl Fn() -> Result<ServeConfig, ConfigError> + Send + Sync + 'static,
        generated: Option<UserCredential>,
    ) -> Self {
        ConfigSource {
            load: Box::new(load),
            generated,
        }
    }

    fn load(&self) -> Result<ServeConfig, ConfigError> {
        let mut config = (self.load)()?;
        if let (false, Some(user)) = (config.has_credentials(), &self.generated) {
            config.users.push(user.clone());
        }
        Ok(config)
    }
}

/// `running` with the reloadable settings of `new`, and the [`FIXED`] settings whose
/// value differs in `new` (kept as they run).
pub fn merge(running: &ServeConfig, new: &ServeConfig) -> (ServeConfig, Vec<&'static str>) {
    let mut kept = Vec::new();
    macro_rules! fixed {
        ($($field:ident => $name:literal),* $(,)?) => {
            $(if running.$field != new.$field { kept.push($name); })*
        };
    }
    fixed!(
        listen => "listen", realm => "realm", relay_ip => "relay-ip",
        external_ip => "external-ip", external_ip_stun => "external-ip-stun", min_port => "min-port", max_port => "max-port",
        threads => "threads", rx_coalesce_us => "rx-coalesce-us",
        max_tcp_per_ip => "max-tcp-per-ip", max_tcp_connections => "max-tcp-connections",
        tcp_message_timeout => "tcp-message-timeout", tcp_write_queue => "tcp-write-queue",
        metrics => "metrics", admin => "admin", admin_token => "admin-token",
        alternate_server => "alternate-server", drain_timeout => "drain-timeout",
        log => "log", log_format => "log-format", usage_top_users => "usage-top-users",
        tls_listen => "tls-listen",
        tls_watch_interval => "tls-watch-interval",
    );
    let mut next = running.clone();
    next.users.clone_from(&new.users);
    next.auth_secrets.clone_from(&new.auth_secrets);
    next.secret_grace = new.secret_grace;
    next.allow_loopback_peers = new.allow_loopback_peers;
    next.allow_peers.clone_from(&new.allow_peers);
    next.deny_peers.clone_from(&new.deny_peers);
    next.user_quota = new.user_quota;
    next.total_quota = new.total_quota;
    next.max_permissions = new.max_permissions;
    next.max_channels = new.max_channels;
    next.max_bps = new.max_bps;
    next.total_bps = new.total_bps;
    next.unauth_rate = new.unauth_rate;
    next.max_lifetime = new.max_lifetime;
    // New certificate files, when TLS is on and stays on; its listeners are fixed.
    if !running.tls_cert.is_empty() && !new.tls_cert.is_empty() {
        next.tls_cert.clone_from(&new.tls_cert);
        next.tls_key.clone_from(&new.tls_key);
    } else if running.tls_cert != new.tls_cert || running.tls_key != new.tls_key {
        kept.extend(["tls-cert", "tls-key"]);
    }
    (next, kept)
}

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// Allocations that carry on.
    pub allocations: usize,
    /// Settings whose new value was not taken: they cannot change while running.
    pub kept: Vec<&'static str>,
}

/// Why a reload was rejected; the running configuration stays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file could not be read, parsed or validated.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration could not be applied (the TLS files do not load).
    #[error("{0}")]
    Apply(String),
}

/// Reloads a running server; clones share it, and reloads run one at a time.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    source: ConfigSource,
    server: ServerHandle,
    metrics: Metrics,
    running: tokio::sync::Mutex<ServeConfig>,
}

impl Reloader {
    /// A reloader for `server`, which runs with `running`.
    pub fn new(
        source: ConfigSource,
        server: ServerHandle,
        metrics: Metrics,
        running: ServeConfig,
    ) -> Self {
        Reloader {
            inner: Arc::new(Inner {
                source,
                server,
                metrics,
                running: tokio::sync::Mutex::new(running),
            }),
        }
    }

    /// Reads the configuration again and applies it; counts the outcome in
    /// `floe_config_reloads_total` and logs it.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let mut running = self.inner.running.lock().await;
        let result = self.apply(&mut running).await;
        self.inner.metrics.config_reload(result.is_ok());
        match &result {
            Ok(r) => tracing::info!(allocations = r.allocations, "configuration reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "configuration reload rejected; the running one stays")
            }
        }
        result
    }

    async fn apply(&self, running: &mut ServeConfig) -> Result<ReloadReport, ReloadError> {
        let loaded = self.inner.source.load()?;
        let (next, kept) = merge(running, &loaded);
        for setting in &kept {
            tracing::warn!(
                setting,
                "cannot change while running: keeping the old value (restart to change it)"
            );
        }
        if !next.has_credentials() {
            tracing::warn!("no user or auth secret configured: TURN requests will get 401");
        }
        let allocations = self
            .inner
            .server
            .reconfigure(&next)
            .await
            .map_err(ReloadError::Apply)?;
        *running = next;
        Ok(ReloadReport { allocations, kept })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(text: &str) -> ServeConfig {
        let c = ServeConfig::from_toml_str(text).unwrap();
        c.validate().unwrap();
        c
    }

    #[test]
    fn reloadable_settings_are_taken_and_fixed_ones_kept_and_named() {
        let running =
            toml("listen = [\"127.0.0.1:3478\"]\nuser = [\"a:1\"]\nthreads = 2\nuser-quota = 5\n");
        let new = toml(
            "listen = [\"127.0.0.1:4000\"]\nuser = [\"b:2\"]\nthreads = 3\nuser-quota = 1\n\
             auth-secret = [\"s\"]\nsecret-grace = 60\ndeny-peer = [\"192.0.2.0/24\"]\n\
             max-bps = 1000\nrealm = \"other\"\n",
        );
        let (next, kept) = merge(&running, &new);
        assert_eq!(kept, ["listen", "realm", "threads"]);
        assert_eq!(next.listen, running.listen);
        assert_eq!((next.threads, next.realm.as_str()), (2, "floe"));
        assert_eq!(next.users, new.users);
        assert_eq!(next.auth_secrets, new.auth_secrets);
        assert_eq!(
            (next.secret_grace, next.user_quota, next.max_bps),
            (60, 1, 1000)
        );
        assert_eq!(next.deny_peers, new.deny_peers);
        let (same, kept) = merge(&running, &running);
        assert_eq!((same, kept.len()), (running, 0));
    }

    #[test]
    fn tls_files_reload_only_while_tls_is_on() {
        let off = toml("");
        let on = toml("tls-cert = \"a.pem\"\ntls-key = \"a.key\"\n");
        let moved = toml("tls-cert = \"b.pem\"\ntls-key = \"b.key\"\n");
        let (next, kept) = merge(&on, &moved);
        assert!(kept.is_empty());
        assert_eq!(next.tls_cert, moved.tls_cert);
        let (next, kept) = merge(&off, &on);
        assert_eq!(
            (kept, next.tls_cert),
            (vec!["tls-cert", "tls-key"], Vec::new())
        );
        let (next, kept) = merge(&on, &off);
        assert_eq!(
            (kept, next.tls_cert),
            (vec!["tls-cert", "tls-key"], on.tls_cert)
        );
    }

    #[test]
    fn the_generated_user_stays_while_no_credentials_are_given() {
        let user: UserCredential = "floe-x:pw".parse().unwrap();
        let source = ConfigSource::new(|| Ok(ServeConfig::default()), Some(user.clone()));
        assert_eq!(source.load().unwrap().users, vec![user.clone()]);
        let source = ConfigSource::new(|| Ok(toml("user = [\"a:1\"]")), Some(user));
        assert_eq!(source.load().unwrap().users[0].name, "a");
    }
}
