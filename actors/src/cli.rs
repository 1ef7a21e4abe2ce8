//! The `floe` command line (clap derive). Each subcommand is one variant of [`Command`]
//! with its own `Args` struct; `floe serve` maps onto [`ServeConfig`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use floe::cidr::Cidr;

use crate::config::{ConfigError, ExternalIp, Secret, ServeConfig, UserCredential};
use crate::logging::LogFormat;

/// floe: STUN, TURN and ICE.
#[derive(Debug, Parser)]
#[command(name = "floe", version, about, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `floe`. Add one as a variant holding its own `Args` struct.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run: the size does not matter
pub enum Command {
    /// Serve STUN and TURN (RFC 8489, RFC 8656) over UDP and TCP, and TLS when configured.
    Serve(ServeArgs),
    /// Ask a STUN server for this host's reflexive address (RFC 8489 Binding) and print it.
    Stun(StunArgs),
    /// Run one ICE agent (RFC 8445) speaking INTEROP.md's JSON lines on stdin and stdout.
    Ice(IceArgs),
    /// Allocate on a TURN server (RFC 8656), print the relayed address, optionally relay
    /// TEXT to a peer and back, hold the allocation, then delete it.
    Turn(TurnArgs),
}

/// `floe stun HOST:PORT`: one Binding transaction, retransmitted over UDP as RFC 8489
/// §6.2.1 says (7 sends, 39.5 s in all with the default RTO) before giving up.
#[derive(Debug, Clone, Args)]
pub struct StunArgs {
    /// The STUN server (a name or an IP, and a port)
    #[arg(value_name = "HOST:PORT")]
    pub server: String,
    /// Use TCP instead of UDP
    #[arg(long)]
    pub tcp: bool,
    /// Initial retransmission timeout in milliseconds (RFC 8489 §6.2.1) [default: 500]
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub rto: Option<u64>,
}

impl StunArgs {
    /// The client configuration: the first address `server` resolves to, the transport
    /// and the timers.
    pub fn client_config(&self) -> Result<crate::turn::TurnClientConfig, String> {
        use std::net::ToSocketAddrs;
        let server = self
            .server
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.server))?
            .next()
            .ok_or_else(|| format!("{} has no address", self.server))?;
        let mut config = crate::turn::TurnClientConfig::stun(server);
        if self.tcp {
            config.session.transport = floe::Transport::Tcp;
        }
        if let Some(ms) = self.rto {
            config.session.transaction.rto = std::time::Duration::from_millis(ms);
        }
        Ok(config)
    }
}

/// `floe serve`. Flags override the `--config` file; a repeatable flag given at least
/// once replaces the file's list rather than adding to it.
#[derive(Debug, Clone, Default, Args)]
#[command(next_line_help = false)]
pub struct ServeArgs {
    /// Address to serve on over UDP and TCP (repeatable; IPv6 ones are IPv6-only) [default: 0.0.0.0:3478]
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,
    /// Realm of the long-term credentials [default: floe]
    #[arg(long, value_name = "R")]
    pub realm: Option<String>,
    /// Static user (repeatable). Without users or secrets a random one is generated
    #[arg(long = "user", value_name = "NAME:PASS")]
    pub users: Vec<UserCredential>,
    /// Shared secret of the TURN REST API, as coturn's use-auth-secret (repeatable)
    #[arg(long = "auth-secret", value_name = "S")]
    pub auth_secrets: Vec<Secret>,
    /// Seconds an auth secret taken out by a reload stays valid [default: 3600]
    #[arg(long, value_name = "S")]
    pub secret_grace: Option<u64>,
    /// IP the relay sockets bind to [default: the listen IP]
    #[arg(long, value_name = "IP")]
    pub relay_ip: Option<IpAddr>,
    /// Advertise PUBLIC for relays on PRIVATE, or on every relay IP of its family without /PRIVATE (repeatable, one per family or PRIVATE); auto: ask --external-ip-stun at start; aws, gcp, azure: ask the cloud's metadata service for the public IPv4 at start
    #[arg(
        long = "external-ip",
        value_name = "PUBLIC[/PRIVATE]|auto|aws|gcp|azure"
    )]
    pub external_ip: Vec<ExternalIp>,
    /// STUN server that --external-ip auto asks from each relay address (repeatable; none by default)
    #[arg(long = "external-ip-stun", value_name = "HOST:PORT")]
    pub external_ip_stun: Vec<String>,
    /// Lowest relay port [default: 49152]
    #[arg(long, value_name = "N")]
    pub min_port: Option<u16>,
    /// Highest relay port [default: 65535]
    #[arg(long, value_name = "N")]
    pub max_port: Option<u16>,
    /// Allow relaying to loopback peers (for tests)
    #[arg(long)]
    pub allow_loopback_peers: bool,
    /// Allow peers in this block even if denied by default (repeatable)
    #[arg(long = "allow-peer", value_name = "CIDR")]
    pub allow_peers: Vec<Cidr>,
    /// Deny peers in this block (repeatable)
    #[arg(long = "deny-peer", value_name = "CIDR")]
    pub deny_peers: Vec<Cidr>,
    /// Most allocations per user, 0 for no limit [default: 0]
    #[arg(long, value_name = "N")]
    pub user_quota: Option<u32>,
    /// Most allocations in total, 0 for no limit [default: 0]
    #[arg(long, value_name = "N")]
    pub total_quota: Option<u32>,
    /// Most permissions (peer IPs) per allocation, 508 beyond [default: 64]
    #[arg(long, value_name = "N")]
    pub max_permissions: Option<u32>,
    /// Most channels per allocation, 508 beyond [default: 64]
    #[arg(long, value_name = "N")]
    pub max_channels: Option<u32>,
    /// Relayed bytes a second per allocation, each way; excess dropped; 0 = no limit [default: 0]
    #[arg(long, value_name = "B")]
    pub max_bps: Option<u64>,
    /// Relayed bytes a second for the server, each way, shared by its threads; excess dropped; 0 = no limit [default: 0]
    #[arg(long, value_name = "B")]
    pub total_bps: Option<u64>,
    /// Error responses a second to unauthenticated UDP requests per source IP; excess dropped; 0 = no limit [default: 20]
    #[arg(long, value_name = "N")]
    pub unauth_rate: Option<u32>,
    /// Longest allocation lifetime in seconds [default: 3600]
    #[arg(long, value_name = "S")]
    pub max_lifetime: Option<u32>,
    /// Worker threads, one listener each [default: number of cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Pause of a busy worker after a wake-up with a few datagrams, so the next finds a batch; 0 = off [default: 200]
    #[arg(long, value_name = "US")]
    pub rx_coalesce_us: Option<u32>,
    /// Most TCP and TLS connections from one IPv4 address or IPv6 /64; more are closed on accept [default: 64]
    #[arg(long, value_name = "N")]
    pub max_tcp_per_ip: Option<u32>,
    /// Most TCP and TLS connections in all; more are closed on accept [default: 4096, at most half of ulimit -n]
    #[arg(long, value_name = "N")]
    pub max_tcp_connections: Option<u32>,
    /// Seconds a TCP or TLS client has to complete a message (its first from connecting) before it is closed [default: 30]
    #[arg(long, value_name = "S")]
    pub tcp_message_timeout: Option<u32>,
    /// Bytes queued for one TCP or TLS client at most; beyond, data is dropped as over UDP [default: 262144]
    #[arg(long, value_name = "BYTES")]
    pub tcp_write_queue: Option<u32>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Serve the admin HTTP API (/healthz, /readyz, /metrics, /sessions, /drain, /reload) on ADDR:PORT
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin: Option<SocketAddr>,
    /// Bearer token the admin API requires (all paths but /healthz and /readyz)
    #[arg(long, value_name = "TOKEN")]
    pub admin_token: Option<Secret>,
    /// While draining, send allocating clients here (300 Try Alternate) instead of 403
    #[arg(long, value_name = "ADDR:PORT")]
    pub alternate_server: Option<SocketAddr>,
    /// Seconds a drain waits for allocations to end before deleting the rest [default: 3600]
    #[arg(long, value_name = "S")]
    pub drain_timeout: Option<u64>,
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log: Option<String>,
    /// How log lines are written: text, or json (one object per line) [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Users with their own label in the per-user metrics (the first N to allocate; the rest count as other) [default: 100]
    #[arg(long, value_name = "N")]
    pub usage_top_users: Option<u32>,
    /// TOML file with any of these settings; flags override it
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// PEM certificate chain for TLS on port 5349 (repeatable, paired in order with --tls-key; chosen by SNI, the first by default)
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Vec<PathBuf>,
    /// PEM private key for TLS (repeatable, one per --tls-cert, in the same order)
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Vec<PathBuf>,
    /// Address to serve TLS on (repeatable) [default: each listen IP on port 5349]
    #[arg(long = "tls-listen", value_name = "ADDR:PORT", requires = "tls_cert")]
    pub tls_listen: Vec<SocketAddr>,
    /// Seconds between checks of the TLS files for changes, which reload them; 0 turns it off [default: 10]
    #[arg(long, value_name = "S")]
    pub tls_watch_interval: Option<u64>,
}

impl ServeArgs {
    /// The configuration: the `--config` file (or the defaults), overridden by the flags,
    /// validated. Credentials are not generated here: see
    /// [`ServeConfig::ensure_credentials`].
    pub fn load(&self) -> Result<ServeConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => ServeConfig::from_file(path)?,
            None => ServeConfig::default(),
        };
        self.apply(&mut config);
        config.validate()?;
        Ok(config)
    }

    /// Writes every flag that was given over `config`.
    pub fn apply(&self, config: &mut ServeConfig) {
        fn replace<T: Clone>(target: &mut Vec<T>, given: &[T]) {
            if !given.is_empty() {
                *target = given.to_vec();
            }
        }
        fn set<T: Clone>(target: &mut T, given: &Option<T>) {
            if let Some(v) = given {
                *target = v.clone();
            }
        }
        fn set_opt<T: Clone>(target: &mut Option<T>, given: &Option<T>) {
            if given.is_some() {
                target.clone_from(given);
            }
        }
        replace(&mut config.listen, &self.listen);
        set(&mut config.realm, &self.realm);
        replace(&mut config.users, &self.users);
        replace(&mut config.auth_secrets, &self.auth_secrets);
        set(&mut config.secret_grace, &self.secret_grace);
        set_opt(&mut config.relay_ip, &self.relay_ip);
        replace(&mut config.external_ip, &self.external_ip);
        replace(&mut config.external_ip_stun, &self.external_ip_stun);
        set(&mut config.min_port, &self.min_port);
        set(&mut config.max_port, &self.max_port);
        config.allow_loopback_peers |= self.allow_loopback_peers;
        replace(&mut config.allow_peers, &self.allow_peers);
        replace(&mut config.deny_peers, &self.deny_peers);
        set(&mut config.user_quota, &self.user_quota);
        set(&mut config.total_quota, &self.total_quota);
        set(&mut config.max_permissions, &self.max_permissions);
        set(&mut config.max_channels, &self.max_channels);
        set(&mut config.max_bps, &self.max_bps);
        set(&mut config.total_bps, &self.total_bps);
        set(&mut config.unauth_rate, &self.unauth_rate);
        set(&mut config.max_lifetime, &self.max_lifetime);
        set(&mut config.threads, &self.threads);
        set(&mut config.rx_coalesce_us, &self.rx_coalesce_us);
        set(&mut config.max_tcp_per_ip, &self.max_tcp_per_ip);
        set(&mut config.max_tcp_connections, &self.max_tcp_connections);
        set(&mut config.tcp_message_timeout, &self.tcp_message_timeout);
        set(&mut config.tcp_write_queue, &self.tcp_write_queue);
        set_opt(&mut config.metrics, &self.metrics);
        set_opt(&mut config.admin, &self.admin);
        set_opt(&mut config.admin_token, &self.admin_token);
        set_opt(&mut config.alternate_server, &self.alternate_server);
        set(&mut config.drain_timeout, &self.drain_timeout);
        set(&mut config.log, &self.log);
        set(&mut config.log_format, &self.log_format);
        set(&mut config.usage_top_users, &self.usage_top_users);
        replace(&mut config.tls_cert, &self.tls_cert);
        replace(&mut config.tls_key, &self.tls_key);
        replace(&mut config.tls_listen, &self.tls_listen);
        set(&mut config.tls_watch_interval, &self.tls_watch_interval);
    }
}

/// `floe ice`: one ICE agent whose description, candidates and events are JSON lines
/// (INTEROP.md): its own on stdout, the remote's read from stdin as they come.
#[derive(Debug, Clone, Default, Args)]
#[command(group(ArgGroup::new("role").required(true).args(["controlling", "controlled"])))]
pub struct IceArgs {
    /// Start in the controlling role (nominates the pair)
    #[arg(long)]
    pub controlling: bool,
    /// Start in the controlled role
    #[arg(long)]
    pub controlled: bool,
    /// STUN server for a server-reflexive candidate (repeatable)
    #[arg(long = "stun", value_name = "HOST:PORT")]
    pub stun: Vec<String>,
    /// TURN server for a relayed candidate
    #[arg(long, value_name = "HOST:PORT", requires_all = ["user", "password"])]
    pub turn: Option<String>,
    /// TURN username
    #[arg(long, value_name = "U", requires = "turn")]
    pub user: Option<String>,
    /// TURN password
    #[arg(long, value_name = "P", requires = "turn")]
    pub password: Option<String>,
    /// Reach the TURN server over TCP instead of UDP
    #[arg(long, requires = "turn")]
    pub turn_tcp: bool,
    /// Signal and use relayed candidates only
    #[arg(long, requires = "turn")]
    pub relay_only: bool,
    /// Gather host candidates on loopback addresses only (tests, one-machine labs)
    #[arg(long)]
    pub loopback: bool,
    /// Signal IPv4 host candidates as mDNS UUID.local names and answer for them, as
    /// browsers do (remote .local candidates are resolved either way)
    #[arg(long)]
    pub mdns: bool,
    /// RFC 6544: also gather TCP host candidates (passive and active), ranked below UDP
    #[arg(long)]
    pub tcp: bool,
    /// RFC 6544: TCP host candidates only (every candidate `tcp` with a `tcptype`)
    #[arg(long, conflicts_with_all = ["tcp", "relay_only", "turn", "stun", "mdns"])]
    pub tcp_only: bool,
    /// Send TEXT once connected; exit 0 once it has both sent and received
    #[arg(long, value_name = "TEXT")]
    pub send: Option<String>,
    /// Give up (exit 1) after this many seconds [default: 30]
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// Ta, the pacing of new checks, in milliseconds [default: 50]
    #[arg(long, value_name = "MS")]
    pub ta: Option<u64>,
    /// When controlling, nominate aggressively (USE-CANDIDATE on every check, RFC 5245,
    /// as libnice does) instead of RFC 8445's regular nomination
    #[arg(long)]
    pub aggressive_nomination: bool,
    /// Offer renomination (draft-thatcher-ice-renomination-01): the credentials line
    /// says `"renomination":true`; with a peer that says so too, the controlling side
    /// nominates again when a better pair becomes valid or the selected one goes
    #[arg(long)]
    pub renomination: bool,
    /// Watch the host's addresses every SECONDS (continual gathering, as libwebrtc's
    /// GATHER_CONTINUALLY): a new address trickles new candidates, a gone one removes
    /// its candidates; end-of-candidates is then never signalled
    #[arg(long, value_name = "SECONDS")]
    pub continual_gathering: Option<f64>,
    /// Restart ICE once (RFC 8445 §9), this many seconds after connecting: new
    /// credentials on a new credentials line, the candidates again
    #[arg(long, value_name = "SECONDS")]
    pub restart_after: Option<f64>,
    /// Data streams, each with its own credentials line (`"stream": N`) and checklist
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub streams: u16,
    /// Components of each stream (2: RTP and RTCP)
    #[arg(long, value_name = "M", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub components: u16,
    /// RFC 7675: seconds between consent checks [default: 5]
    #[arg(long, value_name = "SECONDS")]
    pub consent_interval: Option<f64>,
    /// RFC 7675 §5.1: consent is lost after this many seconds without a response [default: 30]
    #[arg(long, value_name = "SECONDS")]
    pub consent_timeout: Option<f64>,
    /// Log filter for stderr [default: warn]
    #[arg(long, value_name = "LEVEL")]
    pub log: Option<String>,
}

/// `floe turn`: a TURN client on the command line, as `turnutils_uclient` is to coturn
/// (see [`crate::turn::client::command`]).
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("transport").args(["tcp", "tls"])))]
pub struct TurnArgs {
    /// The TURN server (a name or an IP, and a port)
    #[arg(long, value_name = "HOST:PORT")]
    pub server: String,
    /// TURN username (long-term credentials)
    #[arg(long, value_name = "U")]
    pub user: String,
    /// TURN password
    #[arg(long, value_name = "P")]
    pub password: String,
    /// Reach the server over TCP instead of UDP
    #[arg(long)]
    pub tcp: bool,
    /// Reach the server over TLS (RFC 8656 §3.1), verified against the system's CAs
    #[arg(long)]
    pub tls: bool,
    /// Name to verify the certificate against, sent as SNI [default: HOST of --server if a name, else its IP]
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub tls_name: Option<String>,
    /// Trust the CA certificates in this PEM file instead of the system's
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls",
        conflicts_with = "insecure"
    )]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate: the server is NOT authenticated (self-signed test servers only)
    #[arg(long, requires = "tls")]
    pub insecure: bool,
    /// Peer to create a permission and bind a channel to (RFC 8656 §9, §12)
    #[arg(long, value_name = "ADDR:PORT")]
    pub peer: Option<String>,
    /// Send TEXT to the peer through the channel and print what comes back
    #[arg(long, value_name = "TEXT", requires = "peer")]
    pub send: Option<String>,
    /// Seconds to wait for the peer's answer to --send [default: 10]
    #[arg(long, value_name = "SECONDS", requires = "send", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Keep the allocation (refreshed) this many seconds, 0 = until SIGINT or SIGTERM; then delete it
    #[arg(long, value_name = "SECONDS")]
    pub hold: Option<u64>,
    /// Allocation lifetime to ask for, in seconds (RFC 8656 §7.1) [default: 600]
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    pub lifetime: Option<u32>,
    /// Initial retransmission timeout over UDP in milliseconds (RFC 8489 §6.2.1) [default: 500]
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub rto: Option<u64>,
    /// Print one JSON object a line instead of `KEY VALUE` lines
    #[arg(long)]
    pub json: bool,
    /// Log filter for stderr [default: warn]
    #[arg(long, value_name = "LEVEL")]
    pub log: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv = ["floe", "serve"].iter().chain(args).copied();
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(a) => Ok(a),
            other => panic!("not `floe serve`: {other:?}"),
        }
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_has_exactly_the_flags_of_the_issue() {
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").unwrap();
        let mut flags: Vec<_> = serve
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| *l != "help" && *l != "version")
            .collect();
        flags.sort_unstable();
        let mut want = vec![
            "listen",
            "realm",
            "user",
            "auth-secret",
            "secret-grace",
            "relay-ip",
            "external-ip",
            "external-ip-stun",
            "min-port",
            "max-port",
            "allow-loopback-peers",
            "allow-peer",
            "deny-peer",
            "user-quota",
            "total-quota",
            "max-permissions",
            "max-channels",
            "max-bps",
            "total-bps",
            "unauth-rate",
            "max-lifetime",
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
            "config",
            "tls-cert",
            "tls-key",
            "tls-listen",
            "tls-watch-interval",
        ];
        want.sort_unstable();
        assert_eq!(flags, want);
    }

    fn ice(args: &[&str]) -> Result<IceArgs, clap::Error> {
        let argv = ["floe", "ice"].iter().chain(args).copied();
        match Cli::try_parse_from(argv)?.command {
            Command::Ice(a) => Ok(a),
            other => panic!("not ice: {other:?}"),
        }
    }

    #[test]
    fn ice_has_the_flags_of_the_issue() {
        let cmd = Cli::command();
        let ice = cmd.find_subcommand("ice").unwrap();
        let flags: Vec<_> = ice.get_arguments().filter_map(|a| a.get_long()).collect();
        for flag in [
            "controlling",
            "controlled",
            "stun",
            "turn",
            "user",
            "password",
            "relay-only",
            "loopback",
            "send",
            "restart-after",
            "streams",
            "components",
            "tcp",
            "tcp-only",
        ] {
            assert!(flags.contains(&flag), "--{flag} missing from {flags:?}");
        }
    }

    #[test]
    fn ice_needs_exactly_one_role_and_turn_credentials() {
        assert!(ice(&["--loopback"]).is_err());
        assert!(ice(&["--controlling", "--controlled"]).is_err());
        assert!(ice(&["--controlled", "--turn", "127.0.0.1:3478"]).is_err());
        assert!(ice(&["--controlled", "--relay-only"]).is_err());
        let a = ice(&[
            "--controlled",
            "--turn=127.0.0.1:3478",
            "--user=bob",
            "--password=secret",
            "--relay-only",
            "--loopback",
            "--send=hi",
        ])
        .unwrap();
        assert!(a.controlled && a.relay_only && a.loopback);
        assert_eq!(a.send.as_deref(), Some("hi"));
        assert_eq!(a.timeout, 30);
    }

    #[test]
    fn no_flags_give_the_defaults() {
        let config = serve(&[]).unwrap().load().unwrap();
        assert_eq!(config, ServeConfig::default());
    }

    #[test]
    fn every_flag_maps_onto_the_config() {
        let config = serve(&[
            "--listen=127.0.0.1:3478",
            "--listen=[::1]:3478",
            "--realm=example.org",
            "--user=alice:pw",
            "--user=bob:pw2",
            "--auth-secret=s1",
            "--secret-grace=60",
            "--relay-ip=127.0.0.1",
            "--external-ip=203.0.113.7",
            "--external-ip=2001:db8:ff::7/2001:db8::7",
            "--min-port=40000",
            "--max-port=40100",
            "--allow-loopback-peers",
            "--allow-peer=10.0.0.0/8",
            "--deny-peer=203.0.113.0/24",
            "--user-quota=5",
            "--total-quota=500",
            "--max-permissions=10",
            "--max-channels=5",
            "--max-bps=64000",
            "--total-bps=10000000",
            "--unauth-rate=0",
            "--max-lifetime=900",
            "--threads=2",
            "--max-tcp-per-ip=4",
            "--max-tcp-connections=40",
            "--tcp-message-timeout=1",
            "--tcp-write-queue=131072",
            "--metrics=127.0.0.1:9641",
            "--admin=127.0.0.1:9642",
            "--admin-token=t0k",
            "--alternate-server=198.51.100.2:3478",
            "--drain-timeout=60",
            "--log=debug",
            "--log-format=json",
            "--usage-top-users=7",
            "--tls-cert=cert.pem",
            "--tls-key=key.pem",
            "--tls-listen=127.0.0.1:15349",
            "--tls-cert=other.pem",
            "--tls-key=other.key",
            "--tls-watch-interval=2",
        ])
        .unwrap()
        .load()
        .unwrap();
        assert_eq!(config.listen.len(), 2);
        assert_eq!(config.realm, "example.org");
        assert_eq!(config.users.len(), 2);
        assert_eq!(config.auth_secrets, vec![Secret::new("s1")]);
        assert_eq!(config.secret_grace, 60);
        assert_eq!(config.relay_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            config.external_ip,
            vec![
                ExternalIp::public("203.0.113.7".parse().unwrap()),
                "2001:db8:ff::7/2001:db8::7".parse().unwrap()
            ]
        );
        assert_eq!(config.port_range(), 40000..=40100);
        assert!(config.allow_loopback_peers);
        assert_eq!(config.allow_peers, vec!["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(config.deny_peers, vec!["203.0.113.0/24".parse().unwrap()]);
        assert_eq!(
            (config.user_quota, config.total_quota, config.max_lifetime),
            (5, 500, 900)
        );
        assert_eq!((config.max_permissions, config.max_channels), (10, 5));
        assert_eq!((config.max_bps, config.total_bps), (64_000, 10_000_000));
        assert_eq!(config.unauth_rate, 0);
        assert_eq!(config.threads, 2);
        assert_eq!(
            (
                config.max_tcp_per_ip,
                config.max_tcp_connections,
                config.tcp_message_timeout,
                config.tcp_write_queue
            ),
            (4, 40, 1, 131_072)
        );
        assert_eq!(config.metrics, Some("127.0.0.1:9641".parse().unwrap()));
        assert_eq!(config.admin, Some("127.0.0.1:9642".parse().unwrap()));
        assert_eq!(config.admin_token, Some(Secret::new("t0k")));
        assert_eq!(
            config.alternate_server,
            Some("198.51.100.2:3478".parse().unwrap())
        );
        assert_eq!(config.drain_timeout, 60);
        assert_eq!(config.log, "debug");
        assert_eq!(
            (config.log_format, config.usage_top_users),
            (LogFormat::Json, 7)
        );
        assert_eq!(
            config.tls_cert,
            vec![PathBuf::from("cert.pem"), "other.pem".into()]
        );
        assert_eq!(
            config.tls_key,
            vec![PathBuf::from("key.pem"), "other.key".into()]
        );
        assert_eq!(config.tls_watch_interval, 2);
        assert_eq!(
            config.tls_listen(),
            vec!["127.0.0.1:15349".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("floe-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("floe.toml");
        std::fs::write(
            &file,
            "realm = \"file\"\nuser = [\"a:1\", \"b:2\"]\nmin-port = 50000\nthreads = 3\n",
        )
        .unwrap();
        let file_arg = format!("--config={}", file.display());
        let config = serve(&[&file_arg, "--realm=flag", "--user=c:3", "--threads=1"])
            .unwrap()
            .load()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(config.realm, "flag");
        assert_eq!(
            config.users.len(),
            1,
            "a repeated flag replaces the file's list"
        );
        assert_eq!(config.users[0].name, "c");
        assert_eq!(config.min_port, 50000, "kept from the file");
        assert_eq!(config.threads, 1);
    }

    #[test]
    fn bad_values_are_rejected_with_clear_errors() {
        let err = serve(&["--user=alice"]).unwrap_err().to_string();
        assert!(err.contains("NAME:PASS"), "{err}");
        let err = serve(&["--deny-peer=10.0.0.0/99"]).unwrap_err().to_string();
        assert!(err.contains("prefix length"), "{err}");
        let err = serve(&["--listen=3478"]).unwrap_err().to_string();
        assert!(err.contains("--listen"), "{err}");
        let err = serve(&["--tls-cert=c.pem"]).unwrap_err().to_string();
        assert!(err.contains("--tls-key"), "{err}");
        let err = serve(&["--tls-listen=127.0.0.1:5349"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-cert"), "{err}");
        let err = serve(&["--min-port=60000", "--max-port=50000"])
            .unwrap()
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("min-port (60000)"), "{err}");
        let err = serve(&["--tcp-message-timeout=0"])
            .unwrap()
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tcp-message-timeout must be at least 1"),
            "{err}"
        );
        let err = serve(&["--tcp-write-queue=1000"])
            .unwrap()
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tcp-write-queue must be at least 65552"),
            "{err}"
        );
        assert!(serve(&["--max-tcp-per-ip=-1"]).is_err());
        let err = serve(&["--config=/nonexistent/floe.toml"])
            .unwrap()
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/floe.toml"), "{err}");
    }

    #[test]
    fn stun_takes_a_server_and_optional_tcp_and_rto() {
        let parse = |args: &[&str]| -> Result<StunArgs, clap::Error> {
            let argv = ["floe", "stun"].iter().chain(args).copied();
            match Cli::try_parse_from(argv)?.command {
                Command::Stun(a) => Ok(a),
                other => panic!("not `floe stun`: {other:?}"),
            }
        };
        let a = parse(&["127.0.0.1:3478"]).unwrap();
        let c = a.client_config().unwrap();
        assert_eq!(c.session.server, "127.0.0.1:3478".parse().unwrap());
        assert_eq!(c.session.transport, floe::Transport::Udp);
        assert_eq!(
            c.session.transaction.rto,
            std::time::Duration::from_millis(500)
        );
        let c = parse(&["--tcp", "--rto=20", "[::1]:3478"])
            .unwrap()
            .client_config()
            .unwrap();
        assert_eq!(c.session.server, "[::1]:3478".parse().unwrap());
        assert_eq!(c.session.transport, floe::Transport::Tcp);
        assert_eq!(
            c.session.transaction.rto,
            std::time::Duration::from_millis(20)
        );
        assert!(parse(&[]).is_err(), "the server is required");
        assert!(parse(&["127.0.0.1:3478", "--rto=0"]).is_err());
        let err = parse(&["no-port"]).unwrap().client_config().unwrap_err();
        assert!(err.contains("no-port"), "{err}");
    }
}
