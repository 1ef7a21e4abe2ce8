//! `ServeConfig`: every setting of `floe serve`, from TOML, from flags, or built in code.
//!
//! TOML keys are the flag names: `listen`, `realm`, `user`, `auth-secret`, `secret-grace`, `relay-ip`,
//! `external-ip`, `external-ip-stun`, `min-port`, `max-port`, `allow-loopback-peers`, `allow-peer`, `deny-peer`,
//! `user-quota`, `total-quota`, `max-permissions`, `max-channels`, `max-bps`, `total-bps`,
//! `unauth-rate`, `max-lifetime`, `threads`, `rx-coalesce-us`, `max-tcp-per-ip`,
//! `max-tcp-connections`, `tcp-message-timeout`, `tcp-write-queue`, `metrics`, `log`, `log-format`,
//! `usage-top-users`, `tls-cert`, `tls-key`, `tls-listen`, `tls-watch-interval`. Repeatable flags
//! are arrays (`external-ip`, `external-ip-stun`, `tls-cert` and `tls-key` may also be one
//! string). Unknown keys are an error; missing keys take their defaults.
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

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use floe::cidr::Cidr;
use rand::distributions::{Alphanumeric, DistString};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::logging::LogFormat;

mod credentials;
mod external_ip;

pub use credentials::{Secret, UserCredential, UserCredentialError};
pub use external_ip::{Cloud, ExternalIp, ExternalIpError};

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
/// Default `secret-grace`, in seconds.
pub const DEFAULT_SECRET_GRACE: u64 = 3600;
/// Default `tls-watch-interval`, in seconds.
pub const DEFAULT_TLS_WATCH_INTERVAL: u64 = 10;
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
    /// Seconds an auth secret taken out by a reload stays valid, so that credentials
    /// minted with it keep working. Default 3600.
    pub secret_grace: u64,
    /// The IP relay sockets bind to; default: the listen address's IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_ip: Option<IpAddr>,
    /// What to advertise in XOR-RELAYED-ADDRESS behind NAT, as coturn's `external-ip`:
    /// `PUBLIC/PRIVATE` for the relays bound on PRIVATE, `PUBLIC` for every relay of its
    /// family that no mapping names (one per family), `auto` (discovered at start
    /// with a STUN Binding to `external-ip-stun` from each relay address), or `aws`,
    /// `gcp`, `azure` (the IPv4 `PUBLIC`, asked of the cloud's metadata service at start).
    #[serde(
        with = "external_ip::one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub external_ip: Vec<ExternalIp>,
    /// STUN servers (`HOST:PORT`) that `external-ip = "auto"` asks, in order; none by
    /// default, and `auto` needs one.
    #[serde(
        with = "external_ip::one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub external_ip_stun: Vec<String>,
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
    /// How log lines are written: `text` (the default) or `json`, one object per line.
    pub log_format: LogFormat,
    /// Users with a label of their own in the per-user metrics: the first this many that
    /// get an allocation; later ones count as `other`. Default 100.
    pub usage_top_users: u32,
    /// PEM certificate chains (leaf first) for TLS on port 5349, each with the key at the
    /// same position in `tls-key`. The client's SNI picks the one whose certificate's
    /// DNS names match; the first is served otherwise. In TOML an array, or one string.
    #[serde(with = "path_list", skip_serializing_if = "Vec::is_empty")]
    pub tls_cert: Vec<PathBuf>,
    /// PEM private keys for TLS, one per `tls-cert`, in the same order.
    #[serde(with = "path_list", skip_serializing_if = "Vec::is_empty")]
    pub tls_key: Vec<PathBuf>,
    /// Addresses to serve TLS on; empty (the default) means each listen IP on port
    /// 5349. Only used with `tls-cert` and `tls-key`; see
    /// [`tls_listen()`](Self::tls_listen()).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_listen: Vec<SocketAddr>,
    /// Seconds between looks at the TLS files' modification time, size and inode; a
    /// change reloads the certificates (a certbot renewal). 0 turns watching off.
    /// Default 10.
    pub tls_watch_interval: u64,
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
            secret_grace: DEFAULT_SECRET_GRACE,
            relay_ip: None,
            external_ip: Vec::new(),
            external_ip_stun: Vec::new(),
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
            log_format: LogFormat::Text,
            usage_top_users: crate::metrics::DEFAULT_TOP_USERS,
            tls_cert: Vec::new(),
            tls_key: Vec::new(),
            tls_listen: Vec::new(),
            tls_watch_interval: DEFAULT_TLS_WATCH_INTERVAL,
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
    /// Not as many TLS keys as certificates.
    #[error(
        "TLS needs one --tls-key for each --tls-cert, in the same order: got {certs} \
         certificate(s) and {keys} key(s)"
    )]
    TlsPairs {
        /// The `tls-cert` files given.
        certs: usize,
        /// The `tls-key` files given.
        keys: usize,
    },
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
    /// An address that cannot be bound as a relay address.
    #[error("{setting} {ip} is not a usable unicast address")]
    UnusableAddress {
        /// `relay-ip`.
        setting: &'static str,
        /// The address given.
        ip: IpAddr,
    },
    /// `external-ip` mappings that conflict or cannot be used.
    #[error("external-ip: {0}")]
    ExternalIp(#[from] floe::turn::server::ExternalAddressError),
    /// `external-ip auto` without a STUN server to ask.
    #[error("external-ip auto needs at least one --external-ip-stun HOST:PORT (a STUN server that sees the relay address from outside; floe picks none for you)")]
    ExternalIpAutoWithoutStun,
    /// More than one of `auto`, `aws`, `gcp`, `azure`.
    #[error("external-ip: {0} and {1} both discover the public address; give one of them")]
    ExternalIpSources(ExternalIp, ExternalIp),
    /// A cloud (`aws`, ...) with an IPv4 `PUBLIC` (no `/PRIVATE`) that it would replace.
    #[error("external-ip: {0} gives the IPv4 address every relay is advertised as, and so does {1}; give one of them (a PUBLIC/PRIVATE mapping may go with {0})")]
    ExternalIpCloudWithDefault(Cloud, IpAddr),
    /// `external-ip-stun` without `external-ip auto`, or not `HOST:PORT`.
    #[error("external-ip-stun `{0}`: {1}")]
    ExternalIpStun(String, &'static str),
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
        if self.tls_cert.len() != self.tls_key.len() {
            return Err(ConfigError::TlsPairs {
                certs: self.tls_cert.len(),
                keys: self.tls_key.len(),
            });
        }
        if !self.tls_listen.is_empty() && self.tls_cert.is_empty() {
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
        if let Some(ip) = self.relay_ip {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(ConfigError::UnusableAddress {
                    setting: "relay-ip",
                    ip,
                });
            }
        }
        self.external_addresses()?;
        let mut discovered = self.external_ip.iter().filter(|e| e.is_discovered());
        if let (Some(a), Some(b)) = (discovered.next(), discovered.next()) {
            return Err(ConfigError::ExternalIpSources(*a, *b));
        }
        let cloud = self.external_ip.iter().find_map(|e| match e {
            ExternalIp::Cloud(c) => Some(*c),
            _ => None,
        });
        let ipv4_default = self.external_ip.iter().find_map(|e| match e {
            ExternalIp::Map(m) if m.private.is_none() && m.public.is_ipv4() => Some(m.public),
            _ => None,
        });
        if let (Some(cloud), Some(public)) = (cloud, ipv4_default) {
            return Err(ConfigError::ExternalIpCloudWithDefault(cloud, public));
        }
        let auto = self.external_ip.contains(&ExternalIp::Auto);
        if auto && self.external_ip_stun.is_empty() {
            return Err(ConfigError::ExternalIpAutoWithoutStun);
        }
        for server in &self.external_ip_stun {
            if !auto {
                return Err(ConfigError::ExternalIpStun(
                    server.clone(),
                    "only used with external-ip auto",
                ));
            }
            if !external_ip::is_host_port(server) {
                return Err(ConfigError::ExternalIpStun(server.clone(), "not HOST:PORT"));
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
            password: Secret::new(Alphanumeric.sample_string(rng, GENERATED_PASSWORD_LEN)),
        };
        self.users.push(user.clone());
        Some(user)
    }

    /// The `PUBLIC[/PRIVATE]` mappings of `external-ip` (not those discovered at start),
    /// as the core's rule.
    pub fn external_addresses(&self) -> Result<floe::turn::server::ExternalAddresses, ConfigError> {
        let mut ext = floe::turn::server::ExternalAddresses::new();
        for e in &self.external_ip {
            if let ExternalIp::Map(m) = e {
                ext.insert(m.public, m.private)?;
            }
        }
        Ok(ext)
    }

    /// The relay port range.
    pub fn port_range(&self) -> RangeInclusive<u16> {
        self.min_port..=self.max_port
    }

    /// `max-lifetime` as a duration.
    pub fn max_lifetime(&self) -> Duration {
        Duration::from_secs(self.max_lifetime.into())
    }

    /// The TLS certificate and key files, paired in order; the first pair is the default.
    pub fn tls_files(&self) -> Vec<crate::tls::TlsFiles> {
        self.tls_cert
            .iter()
            .zip(&self.tls_key)
            .map(|(cert, key)| crate::tls::TlsFiles::new(cert.clone(), key.clone()))
            .collect()
    }

    /// `tls-watch-interval` as a duration; `None` when watching is off.
    pub fn tls_watch_interval(&self) -> Option<Duration> {
        (self.tls_watch_interval > 0).then(|| Duration::from_secs(self.tls_watch_interval))
    }

    /// Where TLS is served when a certificate and key are configured: the `tls-listen`
    /// addresses if any are given, else each listen IP on port 5349. Empty without
    /// a certificate and key.
    pub fn tls_listen(&self) -> Vec<SocketAddr> {
        if self.tls_cert.is_empty() || self.tls_key.is_empty() {
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

/// A list of paths, also written as one string (`tls-cert = "/etc/floe/cert.pem"`).
mod path_list {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }

    pub(super) fn serialize<S: Serializer>(list: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        list.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(path) => vec![path],
            OneOrMany::Many(paths) => paths,
        })
    }
}

#[cfg(test)]
mod tests;
