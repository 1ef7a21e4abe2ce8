//! `ServeConfig`: every setting of `floe serve`, from TOML, from flags, or built in code.
//!
//! TOML keys are the flag names: `listen`, `realm`, `user`, `auth-secret`, `relay-ip`,
//! `external-ip`, `min-port`, `max-port`, `allow-loopback-peers`, `allow-peer`, `deny-peer`,
//! `user-quota`, `total-quota`, `max-permissions`, `max-channels`, `max-bps`, `total-bps`,
//! `unauth-rate`, `max-lifetime`, `threads`, `rx-coalesce-us`, `max-tcp-per-ip`,
//! `max-tcp-connections`, `tcp-message-timeout`, `tcp-write-queue`, `metrics`, `log`, `tls-cert`,
//! `tls-key`, `tls-listen`. Repeatable flags are arrays. Unknown keys are an error; missing keys take
//! their defaults.
//!
//! ```toml
//! listen = ["0.0.0.0:3478", "[::]:3478"]
//! realm = "example.org"
//! user = ["alice:wonderland"]
//! auth-secret = ["rotate-me-2024", "rotate-me-2025"]
//! relay-ip = "203.0.113.7"
//! deny-peer = ["198.51.100.0/24"]
//! metrics = "127.0.0.1:9641"
//! ```
//!
//! The admin API ([`admin`](crate::admin)) has the keys `admin`, `admin-token`, `alternate-server` and
//! `drain-timeout`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use floe::cidr::Cidr;
use rand::distributions::{Alphanumeric, DistString};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

/// STUN and TURN over UDP and TCP (RFC 8489 §9).
pub const DEFAULT_PORT: u16 = 3478;
/// STUN and TURN over TLS (RFC 8489 §9).
pub const DEFAULT_TLS_PORT: u16 = 5349;
/// Length of the password generated when no credentials are configured.
pub const GENERATED_PASSWORD_LEN: usize = 24;
/// Default `max-tcp-per-ip`: room for the clients behind one NAT, not for a flood.
pub const DEFAULT_MAX_TCP_PER_IP: u32 = 64;
/// Default `max-tcp-connections`.
pub const DEFAULT_MAX_TCP_CONNECTIONS: u32 = 4096;
/// Default `tcp-message-timeout`, in seconds.
pub const DEFAULT_TCP_MESSAGE_TIMEOUT: u32 = 30;
/// Default `tcp-write-queue`, in bytes.
pub const DEFAULT_TCP_WRITE_QUEUE: u32 = 256 * 1024;
/// The smallest `tcp-write-queue`: one message of the largest size (RFC 8489 §5).
pub const MIN_TCP_WRITE_QUEUE: u32 = floe::framing::MAX_FRAME_LEN as u32;

/// Settings of the STUN/TURN server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct ServeConfig {
    /// Addresses to serve on, each over UDP and TCP. Default `0.0.0.0:3478`. IPv6
    /// addresses are IPv6-only: list `0.0.0.0:3478` and `[::]:3478` for both families.
    pub listen: Vec<SocketAddr>,
    /// The REALM of long-term credentials (RFC 8489 §9.2). Default `floe`.
    pub realm: String,
    /// Static users (`--user NAME:PASS`).
    #[serde(rename = "user")]
    pub users: Vec<UserCredential>,
    /// Shared secrets of the TURN REST API, coturn's `use-auth-secret`; several at once
    /// allow rotation.
    #[serde(rename = "auth-secret")]
    pub auth_secrets: Vec<Secret>,
    /// The IP relay sockets bind to; default: the listen address's IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_ip: Option<IpAddr>,
    /// The public IP to advertise in XOR-RELAYED-ADDRESS when behind 1:1 NAT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_ip: Option<IpAddr>,
    /// Lowest relay port. Default 49152.
    pub min_port: u16,
    /// Highest relay port. Default 65535.
    pub max_port: u16,
    /// Allow peers on loopback addresses (for tests); denied by default.
    pub allow_loopback_peers: bool,
    /// Peer addresses allowed even though a default or `deny-peer` rule denies them.
    #[serde(rename = "allow-peer", with = "cidr_list")]
    pub allow_peers: Vec<Cidr>,
    /// Peer addresses denied in addition to the defaults.
    #[serde(rename = "deny-peer", with = "cidr_list")]
    pub deny_peers: Vec<Cidr>,
    /// Most allocations per user; 0 for no limit.
    pub user_quota: u32,
    /// Most allocations in total; 0 for no limit.
    pub total_quota: u32,
    /// Most permissions (peer IPs) per allocation (508 beyond). Default 64.
    pub max_permissions: u32,
    /// Most channels per allocation (508 beyond). Default 64.
    pub max_channels: u32,
    /// Relayed payload bytes a second per allocation, each way; beyond it data is
    /// dropped. 0 (the default) for no limit.
    pub max_bps: u64,
    /// Relayed payload bytes a second for the whole server, each way, shared evenly by
    /// its threads; beyond it data is dropped. 0 (the default) for no limit.
    pub total_bps: u64,
    /// Error responses a second to unauthenticated requests, per source IP, over UDP;
    /// beyond it they are dropped. Each thread holds an even share. 0 for no limit.
    /// Default 20.
    pub unauth_rate: u32,
    /// Longest allocation lifetime a client may ask for, in seconds. Default 3600.
    pub max_lifetime: u32,
    /// Worker threads, one SO_REUSEPORT listener each. Default: the number of cores.
    pub threads: usize,
    /// Microseconds a busy worker thread pauses after a wake-up that brought a few
    /// datagrams, so the next one finds a batch (receive coalescing); 0 turns it off.
    /// Default 200.
    pub rx_coalesce_us: u32,
    /// Most TCP and TLS connections one source holds open (an IPv4 address, an IPv6 /64);
    /// more are closed on accept. Default 64.
    pub max_tcp_per_ip: u32,
    /// Most TCP and TLS connections open in all; more are closed on accept. Default 4096,
    /// lowered at start to half the open-file limit when that is lower.
    pub max_tcp_connections: u32,
    /// Seconds a TCP or TLS client has to complete a message: its first from connecting,
    /// any other from its first byte; then the connection is closed. Default 30.
    pub tcp_message_timeout: u32,
    /// Bytes queued for one TCP or TLS client at most; what comes beyond is dropped, as
    /// over UDP. Default 262144 (256 KiB).
    pub tcp_write_queue: u32,
    /// Where to serve Prometheus metrics (`GET /metrics`); off by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SocketAddr>,
    /// Where to serve the admin HTTP API (`/healthz`, `/readyz`, `/metrics`,
    /// `/sessions`, `/drain`); off by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<SocketAddr>,
    /// Bearer token the admin API asks for (`Authorization: Bearer TOKEN`) on every
    /// path but `/healthz` and `/readyz`; none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<Secret>,
    /// Where a draining server sends clients that Allocate (300 Try Alternate with
    /// ALTERNATE-SERVER, RFC 8489 §10); without it they get 403.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternate_server: Option<SocketAddr>,
    /// Seconds a drain (`POST /drain`, SIGTERM) waits for the allocations to end before
    /// the server deletes the rest and exits. Default 3600.
    pub drain_timeout: u64,
    /// A `tracing` filter: a level (`info`) or directives (`floe=debug,actix=warn`).
    pub log: String,
    /// PEM certificate chain for TLS on port 5349; needs `tls-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS; needs `tls-cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Addresses to serve TLS on; empty (the default) means each listen IP on port
    /// 5349. Only used with `tls-cert` and `tls-key`; see
    /// [`tls_listen()`](Self::tls_listen()).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_listen: Vec<SocketAddr>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: vec![SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                DEFAULT_PORT,
            )],
            realm: "floe".to_owned(),
            users: Vec::new(),
            auth_secrets: Vec::new(),
            relay_ip: None,
            external_ip: None,
            min_port: 49152,
            max_port: 65535,
            allow_loopback_peers: false,
            allow_peers: Vec::new(),
            deny_peers: Vec::new(),
            user_quota: 0,
            total_quota: 0,
            max_permissions: 64,
            max_channels: 64,
            max_bps: 0,
            total_bps: 0,
            unauth_rate: 20,
            max_lifetime: 3600,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            rx_coalesce_us: 200,
            max_tcp_per_ip: DEFAULT_MAX_TCP_PER_IP,
            max_tcp_connections: DEFAULT_MAX_TCP_CONNECTIONS,
            tcp_message_timeout: DEFAULT_TCP_MESSAGE_TIMEOUT,
            tcp_write_queue: DEFAULT_TCP_WRITE_QUEUE,
            metrics: None,
            admin: None,
            admin_token: None,
            alternate_server: None,
            drain_timeout: 3600,
            log: "info".to_owned(),
            tls_cert: None,
            tls_key: None,
            tls_listen: Vec::new(),
        }
    }
}

/// Why a configuration could not be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("invalid config{}: {source}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Parse {
        /// The file, if the text came from one.
        path: Option<PathBuf>,
        /// What TOML found wrong, with line and column.
        source: Box<toml::de::Error>,
    },
    /// The configuration could not be written as TOML.
    #[error("cannot write the config as TOML: {0}")]
    Serialize(#[from] toml::ser::Error),
    /// No listen address.
    #[error("no listen address: give at least one `--listen ADDR:PORT`")]
    NoListen,
    /// The realm is empty or too long.
    #[error("the realm must be 1 to 127 characters (RFC 8489 §14.9), got {0} characters")]
    Realm(usize),
    /// The relay port range is empty or starts at 0.
    #[error("relay ports: min-port ({min}) must be at least 1 and not above max-port ({max})")]
    PortRange {
        /// `min-port`.
        min: u16,
        /// `max-port`.
        max: u16,
    },
    /// `threads` is 0.
    #[error("threads must be at least 1")]
    Threads,
    /// `max-lifetime` is 0.
    #[error("max-lifetime must be at least 1 second")]
    MaxLifetime,
    /// A limit below its smallest sensible value.
    #[error("{setting} must be at least {min}, got {value}")]
    TooSmall {
        /// The setting.
        setting: &'static str,
        /// Its smallest allowed value.
        min: u32,
        /// The value given.
        value: u32,
    },
    /// Only one of the TLS certificate and key was given.
    #[error("TLS needs both --tls-cert and --tls-key")]
    TlsIncomplete,
    /// TLS listen addresses without a certificate and key.
    #[error("--tls-listen needs --tls-cert and --tls-key")]
    TlsListenWithoutCertificate,
    /// The same user name twice.
    #[error("user `{0}` is configured twice")]
    DuplicateUser(String),
    /// An empty TURN REST API secret.
    #[error("an auth secret is empty")]
    EmptySecret,
    /// An empty admin token.
    #[error("the admin token is empty")]
    EmptyAdminToken,
    /// An address that cannot be advertised or bound as a relay address.
    #[error("{setting} {ip} is not a usable unicast address")]
    UnusableAddress {
        /// `relay-ip` or `external-ip`.
        setting: &'static str,
        /// The address given.
        ip: IpAddr,
    },
    /// The log filter does not parse.
    #[error("invalid log filter `{filter}`: {reason}")]
    LogFilter {
        /// The filter given.
        filter: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ServeConfig {
    /// Parses TOML text (unknown keys are an error; missing keys take defaults).
    /// Does not validate: call [`validate`](Self::validate).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: None,
            source: Box::new(e),
        })
    }

    /// Reads and parses a TOML file. Does not validate.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: Some(path.to_owned()),
            source: Box::new(e),
        })
    }

    /// The configuration as TOML, secrets included.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        Ok(toml::to_string(self)?)
    }

    /// Checks the settings fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.is_empty() {
            return Err(ConfigError::NoListen);
        }
        let realm_chars = self.realm.chars().count();
        if realm_chars == 0 || realm_chars > 127 {
            return Err(ConfigError::Realm(realm_chars));
        }
        if self.min_port == 0 || self.min_port > self.max_port {
            return Err(ConfigError::PortRange {
                min: self.min_port,
                max: self.max_port,
            });
        }
        if self.threads == 0 {
            return Err(ConfigError::Threads);
        }
        if self.max_lifetime == 0 {
            return Err(ConfigError::MaxLifetime);
        }
        for (setting, value, min) in [
            ("max-permissions", self.max_permissions, 1),
            ("max-channels", self.max_channels, 1),
            ("max-tcp-per-ip", self.max_tcp_per_ip, 1),
            ("max-tcp-connections", self.max_tcp_connections, 1),
            ("tcp-message-timeout", self.tcp_message_timeout, 1),
            ("tcp-write-queue", self.tcp_write_queue, MIN_TCP_WRITE_QUEUE),
        ] {
            if value < min {
                return Err(ConfigError::TooSmall {
                    setting,
                    min,
                    value,
                });
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::TlsIncomplete);
        }
        if !self.tls_listen.is_empty() && self.tls_cert.is_none() {
            return Err(ConfigError::TlsListenWithoutCertificate);
        }
        for (i, user) in self.users.iter().enumerate() {
            if self.users[..i].iter().any(|u| u.name == user.name) {
                return Err(ConfigError::DuplicateUser(user.name.clone()));
            }
        }
        if self.auth_secrets.iter().any(|s| s.expose().is_empty()) {
            return Err(ConfigError::EmptySecret);
        }
        if self
            .admin_token
            .as_ref()
            .is_some_and(|t| t.expose().is_empty())
        {
            return Err(ConfigError::EmptyAdminToken);
        }
        for (setting, ip) in [
            ("relay-ip", self.relay_ip),
            ("external-ip", self.external_ip),
        ] {
            if let Some(ip) = ip {
                if ip.is_unspecified() || ip.is_multicast() {
                    return Err(ConfigError::UnusableAddress { setting, ip });
                }
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log).map_err(|e| ConfigError::LogFilter {
            filter: self.log.clone(),
            reason: e.to_string(),
        })?;
        Ok(())
    }

    /// Whether users or REST API secrets are configured.
    pub fn has_credentials(&self) -> bool {
        !self.users.is_empty() || !self.auth_secrets.is_empty()
    }

    /// When no credentials are configured, adds a random user with a 24-character
    /// password from the OS CSPRNG and returns it, for the caller to print once.
    pub fn ensure_credentials(&mut self) -> Option<UserCredential> {
        self.ensure_credentials_with(&mut rand::rngs::OsRng)
    }

    /// [`ensure_credentials`](Self::ensure_credentials) with a given CSPRNG.
    pub fn ensure_credentials_with<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
    ) -> Option<UserCredential> {
        if self.has_credentials() {
            return None;
        }
        let user = UserCredential {
            name: format!("floe-{}", Alphanumeric.sample_string(rng, 8)),
            password: Secret(Alphanumeric.sample_string(rng, GENERATED_PASSWORD_LEN)),
        };
        self.users.push(user.clone());
        Some(user)
    }

    /// The relay port range.
    pub fn port_range(&self) -> RangeInclusive<u16> {
        self.min_port..=self.max_port
    }

    /// `max-lifetime` as a duration.
    pub fn max_lifetime(&self) -> Duration {
        Duration::from_secs(self.max_lifetime.into())
    }

    /// Where TLS is served when a certificate and key are configured: the `tls-listen`
    /// addresses if any are given, else each listen IP on port 5349. Empty without
    /// a certificate and key.
    pub fn tls_listen(&self) -> Vec<SocketAddr> {
        if self.tls_cert.is_none() || self.tls_key.is_none() {
            return Vec::new();
        }
        if !self.tls_listen.is_empty() {
            let mut addrs: Vec<SocketAddr> = Vec::with_capacity(self.tls_listen.len());
            for a in &self.tls_listen {
                if !addrs.contains(a) {
                    addrs.push(*a);
                }
            }
            return addrs;
        }
        let mut addrs: Vec<SocketAddr> = Vec::with_capacity(self.listen.len());
        for a in &self.listen {
            let tls = SocketAddr::new(a.ip(), DEFAULT_TLS_PORT);
            if !addrs.contains(&tls) {
                addrs.push(tls);
            }
        }
        addrs
    }
}

/// A string that is not shown by `Debug` (passwords, shared secrets).
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// A static user, written `NAME:PASS` (the name has no colon; the password may).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserCredential {
    /// The USERNAME (RFC 8489 §14.3).
    pub name: String,
    /// The password the long-term key is made from (RFC 8489 §9.2.2).
    pub password: Secret,
}

/// Why a `NAME:PASS` user does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserCredentialError {
    /// No colon between name and password.
    #[error("expected NAME:PASS, found no `:`")]
    MissingColon,
    /// Nothing before the colon.
    #[error("the user name before `:` is empty")]
    EmptyName,
    /// Nothing after the colon.
    #[error("the password after `:` is empty")]
    EmptyPassword,
    /// Longer than USERNAME allows (RFC 8489 §14.3: less than 509 bytes).
    #[error("the user name is {0} bytes; at most 508 are allowed")]
    NameTooLong(usize),
}

impl FromStr for UserCredential {
    type Err = UserCredentialError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, password) = s.split_once(':').ok_or(UserCredentialError::MissingColon)?;
        if name.is_empty() {
            return Err(UserCredentialError::EmptyName);
        }
        if name.len() > 508 {
            return Err(UserCredentialError::NameTooLong(name.len()));
        }
        if password.is_empty() {
            return Err(UserCredentialError::EmptyPassword);
        }
        Ok(UserCredential {
            name: name.to_owned(),
            password: Secret(password.to_owned()),
        })
    }
}

impl TryFrom<String> for UserCredential {
    type Error = UserCredentialError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<UserCredential> for String {
    fn from(u: UserCredential) -> String {
        format!("{}:{}", u.name, u.password.0)
    }
}

impl fmt::Debug for UserCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:***", self.name)
    }
}

/// `Vec<Cidr>` as an array of strings like `"10.0.0.0/8"`.
mod cidr_list {
    use floe::cidr::Cidr;
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(list: &[Cidr], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|c| c.to_string()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| de::Error::custom(format_args!("`{s}`: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_issue() {
        let c = ServeConfig::default();
        assert_eq!(c.listen, vec!["0.0.0.0:3478".parse().unwrap()]);
        assert_eq!(c.realm, "floe");
        assert_eq!(c.port_range(), 49152..=65535);
        assert_eq!(c.max_lifetime(), Duration::from_secs(3600));
        assert!(c.threads >= 1);
        assert!(!c.allow_loopback_peers);
        assert!(c.metrics.is_none());
        assert!(c.tls_listen().is_empty());
        // Issue 13: limits on by default where they cost a legitimate client nothing.
        assert_eq!((c.max_permissions, c.max_channels), (64, 64));
        assert_eq!((c.max_bps, c.total_bps), (0, 0));
        assert_eq!(c.unauth_rate, 20);
        assert_eq!(
            (
                c.max_tcp_per_ip,
                c.max_tcp_connections,
                c.tcp_message_timeout,
                c.tcp_write_queue
            ),
            (64, 4096, 30, 256 * 1024)
        );
        c.validate().unwrap();
    }

    #[test]
    fn empty_toml_is_the_default() {
        assert_eq!(
            ServeConfig::from_toml_str("").unwrap(),
            ServeConfig::default()
        );
    }

    #[test]
    fn every_setting_loads_from_toml() {
        let c = ServeConfig::from_toml_str(
            r#"
            listen = ["127.0.0.1:3478", "[::1]:3478"]
            realm = "example.org"
            user = ["alice:wonder:land", "bob:builder"]
            auth-secret = ["s1", "s2"]
            relay-ip = "127.0.0.1"
            external-ip = "203.0.113.7"
            min-port = 50000
            max-port = 50100
            allow-loopback-peers = true
            allow-peer = ["10.1.0.0/16"]
            deny-peer = ["198.51.100.0/24", "2001:db8::/32"]
            user-quota = 10
            total-quota = 1000
            max-permissions = 32
            max-channels = 16
            max-bps = 250000
            total-bps = 100000000
            unauth-rate = 50
            max-lifetime = 1800
            threads = 2
            max-tcp-per-ip = 8
            max-tcp-connections = 100
            tcp-message-timeout = 5
            tcp-write-queue = 1048576
            metrics = "127.0.0.1:9641"
            admin = "127.0.0.1:9642"
            admin-token = "t0k"
            alternate-server = "198.51.100.2:3478"
            drain-timeout = 120
            log = "floe=debug,info"
            tls-cert = "/etc/floe/cert.pem"
            tls-key = "/etc/floe/key.pem"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.users[0].name, "alice");
        assert_eq!(c.users[0].password.expose(), "wonder:land");
        assert_eq!(c.auth_secrets[1].expose(), "s2");
        assert_eq!(c.port_range(), 50000..=50100);
        assert!(c.allow_loopback_peers);
        assert_eq!(c.allow_peers, vec!["10.1.0.0/16".parse().unwrap()]);
        assert_eq!(c.deny_peers[1].to_string(), "2001:db8::/32");
        assert_eq!(
            (c.user_quota, c.total_quota, c.max_lifetime),
            (10, 1000, 1800)
        );
        assert_eq!(
            (c.max_permissions, c.max_channels, c.unauth_rate),
            (32, 16, 50)
        );
        assert_eq!((c.max_bps, c.total_bps), (250_000, 100_000_000));
        assert_eq!(c.threads, 2);
        assert_eq!(
            (
                c.max_tcp_per_ip,
                c.max_tcp_connections,
                c.tcp_message_timeout,
                c.tcp_write_queue
            ),
            (8, 100, 5, 1 << 20)
        );
        assert_eq!(c.metrics, Some("127.0.0.1:9641".parse().unwrap()));
        assert_eq!(c.admin, Some("127.0.0.1:9642".parse().unwrap()));
        assert_eq!(c.admin_token.as_ref().map(Secret::expose), Some("t0k"));
        assert_eq!(
            c.alternate_server,
            Some("198.51.100.2:3478".parse().unwrap())
        );
        assert_eq!(c.drain_timeout, 120);
        let empty_token = ServeConfig::from_toml_str("admin-token = \"\"").unwrap();
        assert!(matches!(
            empty_token.validate(),
            Err(ConfigError::EmptyAdminToken)
        ));
        assert_eq!(
            c.tls_listen(),
            vec![
                "127.0.0.1:5349".parse::<SocketAddr>().unwrap(),
                "[::1]:5349".parse().unwrap()
            ]
        );
        let with_port = ServeConfig::from_toml_str(
            "tls-cert = \"c.pem\"\ntls-key = \"k.pem\"\ntls-listen = [\"127.0.0.1:15349\"]\n",
        )
        .unwrap();
        with_port.validate().unwrap();
        assert_eq!(
            with_port.tls_listen(),
            vec!["127.0.0.1:15349".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            ServeConfig::from_toml_str(&with_port.to_toml().unwrap()).unwrap(),
            with_port
        );

        // And back again.
        let text = c.to_toml().unwrap();
        assert_eq!(ServeConfig::from_toml_str(&text).unwrap(), c);
    }

    #[test]
    fn toml_errors_are_clear() {
        let err = ServeConfig::from_toml_str("lissten = []").unwrap_err();
        assert!(err.to_string().contains("lissten"), "{err}");
        let err = ServeConfig::from_toml_str("deny-peer = [\"10.0.0.0/40\"]").unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/40"), "{err}");
        let err = ServeConfig::from_toml_str("user = [\"nocolon\"]").unwrap_err();
        assert!(err.to_string().contains("NAME:PASS"), "{err}");
        let err = ServeConfig::from_file(Path::new("/nonexistent/floe.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn validation_catches_mistakes() {
        let bad = |f: fn(&mut ServeConfig)| {
            let mut c = ServeConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(matches!(
            bad(|c| (c.min_port, c.max_port) = (60000, 50000)),
            ConfigError::PortRange {
                min: 60000,
                max: 50000
            }
        ));
        assert!(matches!(
            bad(|c| c.min_port = 0),
            ConfigError::PortRange { .. }
        ));
        assert!(matches!(bad(|c| c.listen.clear()), ConfigError::NoListen));
        assert!(matches!(bad(|c| c.realm.clear()), ConfigError::Realm(0)));
        assert!(matches!(bad(|c| c.threads = 0), ConfigError::Threads));
        assert!(matches!(
            bad(|c| c.max_lifetime = 0),
            ConfigError::MaxLifetime
        ));
        for (f, name) in [
            (
                (|c: &mut ServeConfig| c.max_tcp_per_ip = 0) as fn(&mut ServeConfig),
                "max-tcp-per-ip",
            ),
            (|c| c.max_permissions = 0, "max-permissions"),
            (|c| c.max_channels = 0, "max-channels"),
            (|c| c.max_tcp_connections = 0, "max-tcp-connections"),
            (|c| c.tcp_message_timeout = 0, "tcp-message-timeout"),
            (|c| c.tcp_write_queue = 0, "tcp-write-queue"),
            (|c| c.tcp_write_queue = 65_536, "tcp-write-queue"),
        ] {
            let err = bad(f);
            assert!(
                matches!(err, ConfigError::TooSmall { setting, .. } if setting == name),
                "{err}"
            );
            assert!(err.to_string().starts_with(name), "{err}");
        }
        let smallest = ServeConfig {
            tcp_write_queue: MIN_TCP_WRITE_QUEUE,
            ..ServeConfig::default()
        };
        smallest.validate().unwrap();
        assert!(matches!(
            bad(|c| c.tls_cert = Some("c.pem".into())),
            ConfigError::TlsIncomplete
        ));
        assert!(matches!(
            bad(|c| c.tls_listen = vec!["127.0.0.1:5349".parse().unwrap()]),
            ConfigError::TlsListenWithoutCertificate
        ));
        assert!(matches!(
            bad(|c| c.users = vec!["a:1".parse().unwrap(), "a:2".parse().unwrap()]),
            ConfigError::DuplicateUser(_)
        ));
        assert!(matches!(
            bad(|c| c.auth_secrets = vec![Secret::new("")]),
            ConfigError::EmptySecret
        ));
        assert!(matches!(
            bad(|c| c.relay_ip = Some("0.0.0.0".parse().unwrap())),
            ConfigError::UnusableAddress { .. }
        ));
        assert!(matches!(
            bad(|c| c.log = "floe=loud=yes".into()),
            ConfigError::LogFilter { .. }
        ));
    }

    #[test]
    fn users_parse_as_name_colon_password() {
        let u: UserCredential = "alice:p:w".parse().unwrap();
        assert_eq!((u.name.as_str(), u.password.expose()), ("alice", "p:w"));
        assert_eq!(
            "alice".parse::<UserCredential>(),
            Err(UserCredentialError::MissingColon)
        );
        assert_eq!(
            ":pw".parse::<UserCredential>(),
            Err(UserCredentialError::EmptyName)
        );
        assert_eq!(
            "alice:".parse::<UserCredential>(),
            Err(UserCredentialError::EmptyPassword)
        );
        // Debug output never shows secrets.
        assert_eq!(format!("{u:?}"), "alice:***");
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }

    #[test]
    fn credentials_are_generated_only_when_none_are_configured() {
        let mut c = ServeConfig::default();
        let user = c.ensure_credentials().expect("generated");
        assert_eq!(user.password.expose().len(), GENERATED_PASSWORD_LEN);
        assert!(user
            .password
            .expose()
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric()));
        assert!(user.name.starts_with("floe-"));
        assert_eq!(c.users, vec![user.clone()]);
        c.validate().unwrap();
        // Once there are credentials, nothing more is generated.
        assert!(c.ensure_credentials().is_none());

        let mut other = ServeConfig::default();
        let second = other.ensure_credentials().unwrap();
        assert_ne!(second.password, user.password);

        let mut with_secret = ServeConfig {
            auth_secrets: vec![Secret::new("s")],
            ..ServeConfig::default()
        };
        assert!(with_secret.ensure_credentials().is_none());
        assert!(with_secret.users.is_empty());
    }
}
