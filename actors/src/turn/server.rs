//! `TurnServer`: starts one Arbiter per thread, each with an [`AllocationSupervisor`]
//! and its own SO_REUSEPORT listeners (UDP and TCP, and TLS when a certificate is
//! configured), and gathers their events.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr, Arbiter, Context, Handler, Message, ResponseFuture};
use floe::turn::server::{self as core, Authenticator, RestApiSecrets, StaticUsers};
use rand::RngCore;

use super::binder::ParkedRelays;
use super::quota::Quotas;
use super::sessions::{Session, SessionFilter};
use super::supervisor::{
    AllocationSupervisor, BoundShard, InjectFault, OperatorRequest, Reconfigure, ShardAnswer,
    ShutdownShard, StartShard,
};
use super::tcp_limits::{ConnectionCaps, TcpLimits};
use super::{EventSink, Fault, TurnEvent};
use crate::config::ServeConfig;
use crate::events::{EventStream, Subscribe, SubscribeChannel, Subscribers};
use crate::metrics::Metrics;
use crate::tls::{LoadedTls, SharedTls};

/// The IPv4 address relays use when none is configured: the listen address if it is
/// specific, else the source address the kernel would route public traffic from
/// (found with an unconnected-socket `connect`, which sends nothing), else loopback.
pub(crate) fn default_relay_ip(listen: &[SocketAddr]) -> IpAddr {
    if let Some(a) = listen
        .iter()
        .find(|a| a.is_ipv4() && !a.ip().is_unspecified())
    {
        return a.ip();
    }
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| {
            s.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The IPv4 and IPv6 addresses relays bind to: `relay-ip` (or [`default_relay_ip`]) for
/// its family, and for IPv6 when `relay-ip` is IPv4, the first specific IPv6 listen
/// address. One address per family.
pub(crate) fn relay_ips(config: &ServeConfig) -> (Option<IpAddr>, Option<IpAddr>) {
    let relay_ip = config
        .relay_ip
        .unwrap_or_else(|| default_relay_ip(&config.listen));
    if relay_ip.is_ipv6() {
        return (None, Some(relay_ip));
    }
    let v6 = config
        .listen
        .iter()
        .find(|a| a.is_ipv6() && !a.ip().is_unspecified())
        .map(|a| a.ip());
    (Some(relay_ip), v6)
}

/// Maps the operator's configuration onto the core's. Quotas are not the core's:
/// [`TurnServer::start`] counts them across its Arbiters.
pub fn core_config(config: &ServeConfig) -> core::ServerConfig {
    core_config_with(config, None)
}

/// As [`core_config`], with the application's own credential lookup asked after the
/// static users and REST API secrets (`credentials.custom`).
pub fn core_config_with(
    config: &ServeConfig,
    authenticator: Option<Arc<dyn Authenticator>>,
) -> core::ServerConfig {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (relay_ipv4, relay_ipv6) = relay_ips(config);
    let relay_ip = relay_ipv4.or(relay_ipv6).expect("one relay IP at least");
    let mut c = core::ServerConfig::new(relay_ip, Instant::now(), unix);
    (c.relay_ipv4, c.relay_ipv6) = (relay_ipv4, relay_ipv6);
    // Validated; `auto` is discovered before the server starts (`crate::external_ip`)
    // and reaches here as mappings.
    c.external = config.external_addresses().unwrap_or_default();
    c.realm = config.realm.clone();
    c.alternate_server = config.alternate_server;
    let mut users = StaticUsers::new();
    for u in &config.users {
        users.insert(u.name.clone(), u.password.expose().to_owned());
    }
    c.credentials.users = users;
    c.credentials.rest_secrets =
        RestApiSecrets::new(config.auth_secrets.iter().map(|s| s.expose().to_owned()));
    c.credentials.custom = authenticator;
    c.min_port = config.min_port;
    c.max_port = config.max_port;
    c.max_permissions = config.max_permissions as usize;
    c.max_channels = config.max_channels as usize;
    c.max_bps = config.max_bps;
    // Each thread's core limits on its own, and the kernel spreads a source's ports over
    // the threads: each gets its share of the per-IP rate.
    c.unauth_rate = config
        .unauth_rate
        .div_ceil(u32::try_from(config.threads.max(1)).unwrap_or(u32::MAX));
    c.max_lifetime = Duration::from_secs(u64::from(config.max_lifetime.max(1)));
    c.default_lifetime = c.default_lifetime.min(c.max_lifetime);
    if config.allow_loopback_peers {
        c.policy.allow_loopback();
    }
    for cidr in &config.allow_peers {
        c.policy.allow(*cidr);
    }
    for cidr in &config.deny_peers {
        c.policy.deny(*cidr);
    }
    let listeners: Vec<SocketAddr> = config
        .listen
        .iter()
        .chain(&config.tls_listen())
        .copied()
        .collect();
    for l in &listeners {
        c.policy.add_own(*l);
    }
    // RFC 8656 §21.3: no relaying to the server itself, through any of its addresses.
    for ip in crate::host_addrs::own_addresses(&listeners)
        .into_iter()
        .chain([relay_ipv4, relay_ipv6].into_iter().flatten())
        .chain(c.external.public_ips().collect::<Vec<_>>())
    {
        c.policy.add_own_ip(ip);
    }
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    c.nonce_secret = secret;
    c
}

/// Each Arbiter's even share of `total-bps`, at least a byte a second when limited.
fn total_bps_share(config: &ServeConfig) -> u64 {
    match config.total_bps {
        0 => 0,
        total => (total / config.threads.max(1) as u64).max(1),
    }
}

/// The TURN server: one Arbiter and supervisor per thread.
pub struct TurnServer {
    supervisors: Vec<Addr<AllocationSupervisor>>,
    arbiters: Vec<Arbiter>,
    subscribers: Subscribers<TurnEvent>,
    /// Set once anyone subscribes; until then the Arbiters send no events.
    wanted: Arc<AtomicBool>,
}

/// A running server.
#[derive(Clone)]
pub struct ServerHandle {
    addr: Addr<TurnServer>,
    local_addrs: Vec<SocketAddr>,
    tls_local_addrs: Vec<SocketAddr>,
    metrics: Metrics,
    wanted: Arc<AtomicBool>,
    quotas: Arc<Quotas>,
    tls: Option<SharedTls>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Register {
    supervisors: Vec<Addr<AllocationSupervisor>>,
    arbiters: Vec<Arbiter>,
}

/// Deletes every allocation, stops the listeners and Arbiters; returns how many
/// allocations were deleted.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct Shutdown;

#[derive(Message)]
#[rtype(result = "bool")]
struct Inject(SocketAddr, Fault);

/// An operator's request, for every Arbiter (or the one a session id names).
#[derive(Message)]
#[rtype(result = "Vec<ShardAnswer>")]
struct Operator(OperatorRequest);

impl TurnServer {
    /// Starts the server on the running actix System with `config.threads` Arbiters.
    /// With `tls-cert` and `tls-key`, each Arbiter also serves TLS on
    /// [`ServeConfig::tls_listen()`], and the TLS files are watched every
    /// `tls-watch-interval` seconds (see [`SharedTls::watch`]).
    pub async fn start(config: &ServeConfig, metrics: Metrics) -> Result<ServerHandle, String> {
        Self::start_with(config, metrics, |_| {}).await
    }

    /// As [`start`](Self::start), with the application's own credential lookup (the
    /// seed's `OnSTUNRequestAuthorization`): asked for the key of every authenticated
    /// request, after the static users and REST API secrets of `config`.
    pub async fn start_with_authenticator(
        config: &ServeConfig,
        metrics: Metrics,
        authenticator: Arc<dyn Authenticator>,
    ) -> Result<ServerHandle, String> {
        Self::start_with(config, metrics, move |c| {
            c.credentials.custom = Some(authenticator)
        })
        .await
    }

    /// As [`start`](Self::start), letting `tune` adjust the core's settings first
    /// (lifetimes shorter than the flags allow, an authenticator, ...).
    pub async fn start_with(
        config: &ServeConfig,
        metrics: Metrics,
        tune: impl FnOnce(&mut core::ServerConfig),
    ) -> Result<ServerHandle, String> {
        if let Some(e) = config.external_ip.iter().find(|e| e.is_discovered()) {
            return Err(format!(
                "external-ip {e} is not resolved: start with the configuration \
                 `floe_actors::external_ip::resolve` returns"
            ));
        }
        let mut tls = config.tls_listen();
        let tls_acceptor = if tls.is_empty() {
            None
        } else {
            let loaded = LoadedTls::load(&config.tls_files()).map_err(|e| e.to_string())?;
            let shared = SharedTls::new(loaded);
            if let Some(every) = config.tls_watch_interval() {
                shared.watch(every, metrics.clone());
            }
            Some(shared)
        };
        let mut core = core_config(config);
        tune(&mut core);
        let wanted = Arc::new(AtomicBool::new(false));
        let server = TurnServer {
            supervisors: Vec::new(),
            arbiters: Vec::new(),
            subscribers: Subscribers::default(),
            wanted: wanted.clone(),
        }
        .start();
        let mut listen = config.listen.clone();
        let mut supervisors = Vec::new();
        let mut arbiters = Vec::new();
        // Shared by the Arbiters: an Allocate may reach any of them.
        let parked = ParkedRelays::default();
        let quotas = Arc::new(Quotas::new(config.user_quota, config.total_quota));
        let tcp_limits = TcpLimits::from_config(config);
        let tcp_caps = ConnectionCaps::new(&tcp_limits, metrics.clone());
        for _ in 0..config.threads.max(1) {
            let arbiter = Arbiter::new();
            let (c, m, p, q) = (
                core.clone(),
                metrics.clone(),
                parked.clone(),
                quotas.clone(),
            );
            let r = EventSink::new(server.clone().recipient(), wanted.clone());
            let thread = supervisors.len();
            let sup = AllocationSupervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                AllocationSupervisor::new(c, m, r, q, p, thread)
            });
            // The first Arbiter picks the ports (port 0 in tests); the others share them.
            let bound: BoundShard = sup
                .send(StartShard {
                    listen: listen.clone(),
                    tls: tls.clone(),
                    tls_acceptor: tls_acceptor.clone(),
                    coalesce: Duration::from_micros(config.rx_coalesce_us.into()),
                    total_bps_share: total_bps_share(config),
                    tcp_limits,
                    tcp_caps: tcp_caps.clone(),
                })
                .await
                .map_err(|e| e.to_string())??;
            (listen, tls) = (bound.listen, bound.tls);
            supervisors.push(sup);
            arbiters.push(arbiter);
        }
        server
            .send(Register {
                supervisors,
                arbiters,
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(ServerHandle {
            addr: server,
            local_addrs: listen,
            tls_local_addrs: tls,
            metrics,
            wanted,
            quotas,
            tls: tls_acceptor,
        })
    }
}

impl ServerHandle {
    /// The listening addresses (UDP and TCP on each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The TLS listening addresses; empty when TLS is not configured.
    pub fn tls_local_addrs(&self) -> &[SocketAddr] {
        &self.tls_local_addrs
    }

    /// The server actor.
    pub fn addr(&self) -> &Addr<TurnServer> {
        &self.addr
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The server's events as a stream.
    pub fn events(&self) -> EventStream<TurnEvent> {
        let (stream, subscribe) = EventStream::new();
        // Before the message: events of allocations made from now on are kept for it.
        self.wanted.store(true, Ordering::Relaxed);
        self.addr.do_send(subscribe);
        stream
    }

    /// Injects a fault into the allocation relaying on `relayed` (drills and tests).
    pub async fn inject_fault(&self, relayed: SocketAddr, fault: Fault) -> bool {
        self.addr
            .send(Inject(relayed, fault))
            .await
            .unwrap_or(false)
    }

    /// The allocations of every worker thread, those of `user` only if given, in the
    /// order of their ids.
    pub async fn sessions(&self, user: Option<&str>) -> Vec<Session> {
        let answers = self.operator(OperatorRequest::Sessions(user.map(str::to_owned)));
        let mut all = Vec::new();
        for a in answers.await {
            if let ShardAnswer::Sessions(s) = a {
                all.extend(s);
            }
        }
        all.sort_by_key(|s| (s.id.thread, s.id.allocation));
        all
    }

    /// Ends the allocations `filter` picks, now: their clients' next requests get 437;
    /// subscribers get [`TurnEvent::EndedByOperator`] then `Deleted`, and the metric
    /// `floe_allocations_ended_by_operator_total` counts them. Returns how many.
    pub async fn end_sessions(&self, filter: SessionFilter) -> usize {
        count(self.operator(OperatorRequest::End(filter)).await)
    }

    /// Starts draining (`true`: new Allocates are refused with 403, or 300 with
    /// ALTERNATE-SERVER when `alternate-server` is set; existing allocations carry on)
    /// or ends it. Returns how many allocations exist.
    pub async fn set_draining(&self, draining: bool) -> usize {
        count(self.operator(OperatorRequest::Drain(draining)).await)
    }

    /// How many allocations exist.
    pub async fn allocation_count(&self) -> usize {
        count(self.operator(OperatorRequest::Count).await)
    }

    /// A reload: takes on the users, auth secrets (one taken out stays valid for
    /// `secret-grace` seconds), peer policy, quotas and limits of `config`, and re-reads
    /// the TLS certificates and keys when TLS is on. Settings fixed at start (addresses,
    /// ports, threads ...) are read from `config` too, so give it those of the running
    /// server; lifetimes tuned through [`TurnServer::start_with`] become `config`'s.
    /// Allocations carry on. On an error (the TLS files) nothing changes. Returns how
    /// many allocations exist.
    pub async fn reconfigure(&self, config: &ServeConfig) -> Result<usize, String> {
        let tls = match &self.tls {
            Some(_) if !config.tls_cert.is_empty() => {
                Some(LoadedTls::load(&config.tls_files()).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let mut core = core::Reconfiguration::from_config(&core_config(config));
        core.secret_grace = Duration::from_secs(config.secret_grace);
        self.quotas
            .set_limits(config.user_quota, config.total_quota);
        let request = Reconfigure {
            core,
            total_bps_share: total_bps_share(config),
        };
        let n = count(
            self.operator(OperatorRequest::Reconfigure(Box::new(request)))
                .await,
        );
        if let (Some(shared), Some(loaded)) = (&self.tls, tls) {
            shared.replace(loaded);
        }
        Ok(n)
    }

    async fn operator(&self, request: OperatorRequest) -> Vec<ShardAnswer> {
        self.addr.send(Operator(request)).await.unwrap_or_default()
    }

    /// Stops the server: allocations are deleted cleanly; returns how many.
    pub async fn shutdown(&self) -> usize {
        self.addr.send(Shutdown).await.unwrap_or(0)
    }
}

impl Actor for TurnServer {
    type Context = Context<Self>;
}

impl Handler<Register> for TurnServer {
    type Result = ();

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) {
        self.supervisors = msg.supervisors;
        self.arbiters = msg.arbiters;
    }
}

impl Handler<TurnEvent> for TurnServer {
    type Result = ();

    fn handle(&mut self, event: TurnEvent, _: &mut Context<Self>) {
        self.subscribers.publish(event);
    }
}

impl Handler<Subscribe<TurnEvent>> for TurnServer {
    type Result = ();

    fn handle(&mut self, msg: Subscribe<TurnEvent>, _: &mut Context<Self>) {
        self.wanted.store(true, Ordering::Relaxed);
        self.subscribers.add(msg.0);
    }
}

impl Handler<SubscribeChannel<TurnEvent>> for TurnServer {
    type Result = ();

    fn handle(&mut self, msg: SubscribeChannel<TurnEvent>, _: &mut Context<Self>) {
        self.wanted.store(true, Ordering::Relaxed);
        self.subscribers.add_channel(msg.0);
    }
}

impl Handler<Inject> for TurnServer {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, Inject(relayed, fault): Inject, _: &mut Context<Self>) -> Self::Result {
        let sups = self.supervisors.clone();
        Box::pin(async move {
            for s in sups {
                if s.send(InjectFault { relayed, fault })
                    .await
                    .unwrap_or(false)
                {
                    return true;
                }
            }
            false
        })
    }
}

fn count(answers: Vec<ShardAnswer>) -> usize {
    answers
        .into_iter()
        .map(|a| match a {
            ShardAnswer::Count(n) => n,
            ShardAnswer::Sessions(s) => s.len(),
        })
        .sum()
}

impl Handler<Operator> for TurnServer {
    type Result = ResponseFuture<Vec<ShardAnswer>>;

    /// Asks each Arbiter in turn; a session id goes only to the Arbiter it names.
    fn handle(&mut self, Operator(request): Operator, _: &mut Context<Self>) -> Self::Result {
        let sups: Vec<Addr<AllocationSupervisor>> = match &request {
            OperatorRequest::End(SessionFilter::Id(id)) => self
                .supervisors
                .get(id.thread)
                .cloned()
                .into_iter()
                .collect(),
            _ => self.supervisors.clone(),
        };
        Box::pin(async move {
            let mut answers = Vec::with_capacity(sups.len());
            for s in sups {
                if let Ok(a) = s.send(request.clone()).await {
                    answers.push(a);
                }
            }
            answers
        })
    }
}

impl Handler<Shutdown> for TurnServer {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        let sups = std::mem::take(&mut self.supervisors);
        let arbiters = std::mem::take(&mut self.arbiters);
        Box::pin(async move {
            let mut n = 0;
            for s in sups {
                n += s.send(ShutdownShard).await.unwrap_or(0);
            }
            // Let the Deleted events reach subscribers before the Arbiters go.
            tokio::time::sleep(Duration::from_millis(20)).await;
            for a in arbiters {
                a.stop();
            }
            n
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_addresses_are_the_servers_own_and_denied_as_peers() {
        let config = ServeConfig {
            listen: vec!["192.0.3.1:3478".parse().unwrap()],
            tls_cert: vec!["cert.pem".into()],
            tls_key: vec!["key.pem".into()],
            tls_listen: vec!["192.0.3.9:5349".parse().unwrap()],
            ..ServeConfig::default()
        };
        let c = core_config(&config);
        assert!(!c.policy.permits("192.0.3.1".parse().unwrap()));
        assert!(!c.policy.permits("192.0.3.9".parse().unwrap()));
        assert!(c.policy.permits("192.0.3.200".parse().unwrap()));
    }

    #[test]
    fn limits_reach_the_core_and_the_unauth_rate_is_shared_by_the_threads() {
        let config = ServeConfig {
            listen: vec!["192.0.3.1:3478".parse().unwrap()],
            threads: 3,
            unauth_rate: 20,
            max_permissions: 7,
            max_channels: 5,
            max_bps: 1000,
            ..ServeConfig::default()
        };
        let c = core_config(&config);
        assert_eq!(c.unauth_rate, 7, "20 a second over 3 threads, rounded up");
        assert_eq!((c.max_permissions, c.max_channels, c.max_bps), (7, 5, 1000));
        let off = core_config(&ServeConfig {
            unauth_rate: 0,
            ..config
        });
        assert_eq!(off.unauth_rate, 0);
    }
}
