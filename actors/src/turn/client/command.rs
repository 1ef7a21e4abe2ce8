//! `floe turn`: a TURN client on the command line, as `turnutils_uclient` is to coturn,
//! driving one [`TurnClient`] actor.
//!
//! It allocates (RFC 8656 §7), prints what the server answered, and with `--peer` creates a
//! permission (§10) and binds a channel (§12) to the peer; with `--send TEXT` it sends TEXT
//! through the channel and prints what the peer sends back. With `--hold SECONDS` it keeps
//! the allocation, which the actor refreshes (§8), for that long or (0) until SIGINT or
//! SIGTERM. In every case it then deletes the allocation (a Refresh with LIFETIME 0, §8.3).
//!
//! stdout, one fact a line, `KEY VALUE...` (`awk '$1 == "relayed" { print $2 }'`):
//!
//! ```text
//! relayed 127.0.0.1:49731          XOR-RELAYED-ADDRESS (one line each when dual-stack)
//! mapped 127.0.0.1:41234           XOR-MAPPED-ADDRESS: this host as the server saw it
//! lifetime 600                     LIFETIME granted, in seconds
//! permission 127.0.0.1             CreatePermission succeeded
//! channel 16384 127.0.0.1:3480     ChannelBind succeeded: number (0x4000 = 16384) and peer
//! data 127.0.0.1:3480 hello        data from a peer (control characters escaped)
//! refreshed 600                    an automatic refresh while holding
//! deleted                          the server confirmed the deletion
//! ```
//!
//! With `--json` the same facts are JSON objects, one a line, in INTEROP.md's style:
//! `{"event":"allocated","relayed":["..."],"mapped":"...","lifetime":600}`,
//! `{"event":"permission","peer":"..."}`, `{"event":"channel","channel":16384,"peer":"..."}`,
//! `{"event":"data","peer":"...","data":"..."}`, `{"event":"refreshed","lifetime":600}`,
//! `{"event":"deleted"}`.
//!
//! Errors are one line on stderr, `floe turn: SERVER: what happened`. Exit status: 0 on
//! success (a signal while holding included), 1 when the server refused, did not answer, or
//! the peer's answer did not come within `--timeout`, 2 for bad arguments.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use floe::stun::Method;
use floe::transmit::Transport;
use serde_json::json;
use tokio::time::Instant;

use super::{
    ClientEvent, TlsOptions, TlsRoots, TurnClient, TurnClientConfig, TurnClientEvent,
    TurnClientHandle,
};
use crate::cli::TurnArgs;
use crate::events::EventStream;
use crate::logging::init_logging;
use crate::shutdown::{ShutdownSignal, ShutdownSignals};

/// Bounds a wait for the server beyond the core's own transaction timeout (39.5 s with the
/// default RTO, RFC 8489 §6.2.1), so that nothing waits forever.
const SERVER_BACKSTOP: Duration = Duration::from_secs(120);
/// The default of `--timeout`: how long the peer has to answer `--send`.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the flags ask for, resolved and checked.
#[derive(Debug)]
pub struct Plan {
    /// The client's configuration.
    pub config: TurnClientConfig,
    /// The peer of `--peer`.
    pub peer: Option<SocketAddr>,
    /// `--send`.
    pub send: Option<String>,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--hold`: `Some(None)` holds until a signal.
    pub hold: Option<Option<Duration>>,
    /// `--json`.
    pub json: bool,
}

fn resolve(what: &str, text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("--{what} {text}: {e}"))?
        .next()
        .ok_or_else(|| format!("--{what} {text}: no address"))
}

/// The HOST of `HOST:PORT` when it is a name rather than an IP address.
fn host_name(server: &str) -> Option<String> {
    let (host, _port) = server.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty() && host.parse::<IpAddr>().is_err()).then(|| host.to_owned())
}

impl Plan {
    /// Resolves the server and the peer and reads the CA file.
    pub fn from_args(args: &TurnArgs) -> Result<Plan, String> {
        let server = resolve("server", &args.server)?;
        let mut config = TurnClientConfig::new(server, &args.user, &args.password);
        if args.tcp {
            config = config.with_transport(Transport::Tcp);
        }
        if args.tls {
            let roots = if let Some(path) = &args.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
                TlsRoots::Pem(pem)
            } else if args.insecure {
                TlsRoots::InsecureAcceptAnyCertificate
            } else {
                TlsRoots::Native
            };
            config = config.with_tls(TlsOptions {
                server_name: args.tls_name.clone().or_else(|| host_name(&args.server)),
                roots,
            });
        }
        if let Some(s) = args.lifetime {
            config.session.lifetime = Duration::from_secs(s.into());
        }
        if let Some(ms) = args.rto {
            config.session.transaction.rto = Duration::from_millis(ms);
        }
        let peer = args
            .peer
            .as_deref()
            .map(|p| resolve("peer", p))
            .transpose()?;
        Ok(Plan {
            config,
            peer,
            send: args.send.clone(),
            timeout: args.timeout.map_or(PEER_TIMEOUT, Duration::from_secs),
            hold: args.hold.map(|s| (s > 0).then(|| Duration::from_secs(s))),
            json: args.json,
        })
    }
}

/// Runs `floe turn`.
pub fn run(args: &TurnArgs) -> ExitCode {
    if let Err(e) = init_logging(args.log.as_deref().unwrap_or("warn")) {
        eprintln!("floe turn: {e}");
        return ExitCode::from(2);
    }
    let plan = match Plan::from_args(args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("floe turn: {e}");
            return ExitCode::from(2);
        }
    };
    match actix_rt::System::new().block_on(session(plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floe turn: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why a step ended early.
enum Stop {
    /// The step failed: the error line.
    Failed(String),
    /// SIGINT or SIGTERM.
    Signal(ShutdownSignal),
    /// The deadline of the wait passed.
    Deadline,
}

/// What the session has seen, for the exit status after the deletion.
#[derive(Default)]
struct Seen {
    allocated: bool,
    /// The allocation is gone without a deletion (expired, 437, connection lost).
    gone: bool,
    /// Everything asked for is done; only the hold was left.
    holding: bool,
}

/// The whole session: the steps, then the deletion whatever happened.
async fn session(plan: Plan) -> Result<(), String> {
    let mut signals = ShutdownSignals::new().map_err(|e| e.to_string())?;
    // Its errors name the server already.
    let client = TurnClient::connect(plan.config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let events = client.events();
    let mut session = Session {
        client,
        events: Some(events),
        out: Output { json: plan.json },
        seen: Seen::default(),
    };
    let result = session.steps(&plan, &mut signals).await;
    let deleted = session.close(&mut signals).await;
    let server = plan.config.server();
    match (result, deleted) {
        (Ok(()), Ok(())) => Ok(()),
        // A signal is how a hold ends.
        (Err(Stop::Signal(_)), Ok(())) if session.seen.holding => Ok(()),
        (Err(Stop::Signal(_)), Err(e)) if session.seen.holding => Err(format!("{server}: {e}")),
        (Err(Stop::Signal(s)), _) => Err(format!("{server}: interrupted by {s}")),
        (Err(Stop::Failed(e)), _) | (Ok(()), Err(e)) => Err(format!("{server}: {e}")),
        (Err(Stop::Deadline), _) => Err(format!("{server}: timed out")),
    }
}

struct Session {
    client: TurnClientHandle,
    events: Option<EventStream<TurnClientEvent>>,
    out: Output,
    seen: Seen,
}

/// A wait for the server to answer `request`: its deadline, and the error when it passes.
fn server_wait(request: &str) -> (Option<Instant>, impl Fn(Stop) -> Stop + '_) {
    let deadline = Instant::now() + SERVER_BACKSTOP;
    let on_deadline = move |stop| match stop {
        Stop::Deadline => Stop::Failed(format!(
            "{request} failed: no answer within {} s",
            SERVER_BACKSTOP.as_secs()
        )),
        other => other,
    };
    (Some(deadline), on_deadline)
}

impl Session {
    async fn steps(&mut self, plan: &Plan, signals: &mut ShutdownSignals) -> Result<(), Stop> {
        let failed = |e: super::TurnClientError| Stop::Failed(e.to_string());
        // RFC 8656 §7.1, §7.3.
        self.client.allocate().await.map_err(failed)?;
        let (deadline, late) = server_wait("Allocate");
        let (relayed, mapped, lifetime) = self
            .wait(signals, deadline, |e| match e {
                ClientEvent::Allocated {
                    relayed,
                    mapped,
                    lifetime,
                } => Some((relayed.clone(), *mapped, *lifetime)),
                _ => None,
            })
            .await
            .map_err(late)?;
        self.seen.allocated = true;
        self.out.allocated(&relayed, mapped, lifetime);

        if let Some(peer) = plan.peer {
            // RFC 8656 §10.1: a permission for the peer's IP.
            self.client
                .create_permission(vec![peer.ip()])
                .await
                .map_err(failed)?;
            let (deadline, late) = server_wait("CreatePermission");
            self.wait(signals, deadline, |e| {
                matches!(e, ClientEvent::PermissionCreated { peers } if peers.contains(&peer.ip()))
                    .then_some(())
            })
            .await
            .map_err(late)?;
            self.out.permission(peer.ip());
            // RFC 8656 §12.1: a channel to the peer; data goes through it once bound.
            self.client.channel_bind(peer).await.map_err(failed)?;
            let (deadline, late) = server_wait("ChannelBind");
            let channel = self
                .wait(signals, deadline, |e| match e {
                    ClientEvent::ChannelBound { peer: p, channel } if *p == peer => Some(*channel),
                    _ => None,
                })
                .await
                .map_err(late)?;
            self.out.channel(channel, peer);

            if let Some(text) = &plan.send {
                // RFC 8656 §12.5: ChannelData to the server, relayed to the peer as UDP.
                self.client
                    .send_to(peer, text.clone().into_bytes())
                    .await
                    .map_err(failed)?;
                let deadline = Instant::now() + plan.timeout;
                let data = self
                    .wait(signals, Some(deadline), |e| match e {
                        ClientEvent::Data { peer: p, data } if *p == peer => Some(data.clone()),
                        _ => None,
                    })
                    .await
                    .map_err(|stop| match stop {
                        Stop::Deadline => Stop::Failed(format!(
                            "no data came back from {peer} within {} s \
                             (is the peer an echo, and does the server relay to it?)",
                            plan.timeout.as_secs()
                        )),
                        other => other,
                    })?;
                self.out.data(peer, &data);
            }
        }

        let Some(hold) = plan.hold else {
            return Ok(());
        };
        // RFC 8656 §8, §9, §12: meanwhile the actor refreshes the allocation, the
        // permission and the channel.
        self.seen.holding = true;
        let deadline = hold.map(|d| Instant::now() + d);
        match self.wait(signals, deadline, |_| None::<()>).await {
            Err(Stop::Deadline) => Ok(()),
            other => other,
        }
    }

    /// Waits until `pick` accepts a session event, printing data and refreshes meanwhile.
    /// A failed request, a lost allocation or connection, a signal, or `deadline` ends the
    /// wait early.
    async fn wait<T>(
        &mut self,
        signals: &mut ShutdownSignals,
        deadline: Option<Instant>,
        mut pick: impl FnMut(&ClientEvent) -> Option<T>,
    ) -> Result<T, Stop> {
        let events = self.events.as_mut().expect("subscribed until close");
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        loop {
            let event = tokio::select! {
                e = events.recv() => e,
                s = signals.recv() => return Err(Stop::Signal(s)),
                () = &mut expired => return Err(Stop::Deadline),
            };
            let event = match event {
                Some(TurnClientEvent::Session(e)) => e,
                Some(TurnClientEvent::ConnectionLost { reason }) => {
                    self.seen.gone = true;
                    return Err(Stop::Failed(format!("connection lost: {reason}")));
                }
                Some(TurnClientEvent::Closed) | None => {
                    self.seen.gone = true;
                    return Err(Stop::Failed("the TURN client stopped".into()));
                }
            };
            if let Some(t) = pick(&event) {
                return Ok(t);
            }
            match event {
                ClientEvent::Data { peer, data } => self.out.data(peer, &data),
                ClientEvent::Refreshed { lifetime } => self.out.refreshed(lifetime),
                ClientEvent::Error {
                    request,
                    code,
                    reason,
                } => return Err(Stop::Failed(describe_error(request, code, &reason))),
                ClientEvent::AllocationExpired => {
                    self.seen.gone = true;
                    return Err(Stop::Failed(
                        "the allocation expired or the server dropped it (437)".into(),
                    ));
                }
                _ => {}
            }
        }
    }

    /// RFC 8656 §8.3: deletes the allocation (Refresh with LIFETIME 0) and stops the client.
    /// Ok once the server confirmed the deletion or there was nothing to delete. Another
    /// signal meanwhile gives up waiting for the server.
    async fn close(&mut self, signals: &mut ShutdownSignals) -> Result<(), String> {
        let closed = tokio::select! {
            r = tokio::time::timeout(SERVER_BACKSTOP, self.client.close()) => r.is_ok(),
            s = signals.recv() => return Err(format!("deleting the allocation: interrupted by {s}")),
        };
        let mut events = self.events.take().expect("subscribed");
        if !closed {
            return Err("deleting the allocation: no answer".into());
        }
        // Everything the client published before Closed is queued already.
        let mut outcome = Err("the allocation was not deleted".to_owned());
        while let Some(event) = events.recv().await {
            match event {
                TurnClientEvent::Session(ClientEvent::Deleted) => {
                    self.out.deleted();
                    outcome = Ok(());
                }
                TurnClientEvent::Session(ClientEvent::Error {
                    request,
                    code,
                    reason,
                }) if request == Method::REFRESH => {
                    outcome = Err(describe_error(request, code, &reason));
                }
                TurnClientEvent::Session(ClientEvent::AllocationExpired)
                | TurnClientEvent::ConnectionLost { .. } => self.seen.gone = true,
                TurnClientEvent::Closed => break,
                _ => {}
            }
        }
        if !self.seen.allocated || self.seen.gone {
            return Ok(());
        }
        outcome.map_err(|e| format!("deleting the allocation: {e}"))
    }
}

/// One line for a failed request, with a hint for the codes a user can act on.
fn describe_error(request: Method, code: Option<u16>, reason: &str) -> String {
    let hint = match code {
        Some(401) => " (wrong user or password?)",
        Some(403) => " (the server does not relay to this peer)",
        Some(486) => " (this user has too many allocations)",
        Some(508) => " (the server has no capacity left)",
        _ => "",
    };
    match code {
        Some(code) => format!("{request:?} failed: {code} {reason}{hint}"),
        None => format!("{request:?} failed: {reason}"),
    }
}

/// Prints facts on stdout, as `KEY VALUE` lines or JSON lines.
struct Output {
    json: bool,
}

impl Output {
    fn allocated(&self, relayed: &[SocketAddr], mapped: Option<SocketAddr>, lifetime: Duration) {
        if self.json {
            let mut v = json!({
                "event": "allocated",
                "relayed": relayed.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "lifetime": lifetime.as_secs(),
            });
            if let Some(m) = mapped {
                v["mapped"] = json!(m.to_string());
            }
            println!("{v}");
            return;
        }
        for r in relayed {
            println!("relayed {r}");
        }
        if let Some(m) = mapped {
            println!("mapped {m}");
        }
        println!("lifetime {}", lifetime.as_secs());
    }

    fn permission(&self, peer: IpAddr) {
        if self.json {
            println!(
                "{}",
                json!({"event": "permission", "peer": peer.to_string()})
            );
        } else {
            println!("permission {peer}");
        }
    }

    fn channel(&self, channel: u16, peer: SocketAddr) {
        if self.json {
            let v = json!({"event": "channel", "channel": channel, "peer": peer.to_string()});
            println!("{v}");
        } else {
            println!("channel {channel} {peer}");
        }
    }

    fn data(&self, peer: SocketAddr, data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        if self.json {
            let v = json!({"event": "data", "peer": peer.to_string(), "data": text});
            println!("{v}");
        } else {
            println!("data {peer} {}", escape(&text));
        }
    }

    fn refreshed(&self, lifetime: Duration) {
        if self.json {
            println!(
                "{}",
                json!({"event": "refreshed", "lifetime": lifetime.as_secs()})
            );
        } else {
            println!("refreshed {}", lifetime.as_secs());
        }
    }

    fn deleted(&self) {
        if self.json {
            println!("{}", json!({"event": "deleted"}));
        } else {
            println!("deleted");
        }
    }
}

/// `text` on one line: backslashes and control characters escaped as Rust does.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' || c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<TurnArgs, clap::Error> {
        let argv = ["floe", "turn"].iter().chain(args).copied();
        match Cli::try_parse_from(argv)?.command {
            Command::Turn(a) => Ok(a),
            other => panic!("not `floe turn`: {other:?}"),
        }
    }

    const BASE: [&str; 3] = ["--server=127.0.0.1:3478", "--user=bob", "--password=secret"];

    fn with(extra: &[&'static str]) -> Vec<&'static str> {
        BASE.iter().chain(extra).copied().collect()
    }

    #[test]
    fn the_flags_map_onto_the_plan() {
        let plan = Plan::from_args(&parse(&BASE).unwrap()).unwrap();
        assert_eq!(plan.config.server(), "127.0.0.1:3478".parse().unwrap());
        assert_eq!(plan.config.transport(), Transport::Udp);
        assert_eq!(plan.config.session.username, "bob");
        assert_eq!(plan.config.session.password, "secret");
        assert_eq!(plan.config.session.lifetime, Duration::from_secs(600));
        assert!(plan.peer.is_none() && plan.send.is_none() && plan.hold.is_none());
        assert_eq!(plan.timeout, PEER_TIMEOUT);
        assert!(!plan.json);

        let args = parse(&with(&[
            "--tcp",
            "--peer=127.0.0.1:3480",
            "--send=hi",
            "--timeout=3",
            "--hold=0",
            "--lifetime=60",
            "--rto=20",
            "--json",
        ]))
        .unwrap();
        let plan = Plan::from_args(&args).unwrap();
        assert_eq!(plan.config.transport(), Transport::Tcp);
        assert_eq!(plan.peer, Some("127.0.0.1:3480".parse().unwrap()));
        assert_eq!(plan.send.as_deref(), Some("hi"));
        assert_eq!(plan.timeout, Duration::from_secs(3));
        assert_eq!(plan.hold, Some(None), "0 holds until a signal");
        assert_eq!(plan.config.session.lifetime, Duration::from_secs(60));
        assert_eq!(
            plan.config.session.transaction.rto,
            Duration::from_millis(20)
        );
        assert!(plan.json);
        let plan = Plan::from_args(&parse(&with(&["--hold=5"])).unwrap()).unwrap();
        assert_eq!(plan.hold, Some(Some(Duration::from_secs(5))));
    }

    #[test]
    fn tls_verifies_the_host_name_or_the_tls_name() {
        let args = parse(&[
            "--server=localhost:5349",
            "--user=u",
            "--password=p",
            "--tls",
            "--insecure",
        ])
        .unwrap();
        let plan = Plan::from_args(&args).unwrap();
        assert_eq!(plan.config.transport(), Transport::Tls);
        assert_eq!(plan.config.tls.server_name.as_deref(), Some("localhost"));
        assert!(matches!(
            plan.config.tls.roots,
            TlsRoots::InsecureAcceptAnyCertificate
        ));
        let plan =
            Plan::from_args(&parse(&with(&["--tls", "--tls-name=turn.example.org"])).unwrap())
                .unwrap();
        assert_eq!(
            plan.config.tls.server_name.as_deref(),
            Some("turn.example.org")
        );
        assert!(matches!(plan.config.tls.roots, TlsRoots::Native));
        let plan = Plan::from_args(&parse(&with(&["--tls"])).unwrap()).unwrap();
        assert_eq!(
            plan.config.tls.server_name, None,
            "an IP is verified as such"
        );
        assert_eq!(host_name("[::1]:3478"), None);
        assert_eq!(
            host_name("turn.example.org:3478").as_deref(),
            Some("turn.example.org")
        );
    }

    #[test]
    fn inconsistent_flags_are_refused() {
        assert!(
            parse(&["--user=bob", "--password=secret"]).is_err(),
            "no server"
        );
        assert!(parse(&with(&["--tcp", "--tls"])).is_err());
        assert!(parse(&with(&["--send=hi"])).is_err(), "--send needs --peer");
        assert!(parse(&with(&["--peer=127.0.0.1:1", "--timeout=3"])).is_err());
        assert!(
            parse(&with(&["--insecure"])).is_err(),
            "--insecure needs --tls"
        );
        assert!(parse(&with(&["--tls", "--insecure", "--ca-file=ca.pem"])).is_err());
        assert!(parse(&with(&["--lifetime=0"])).is_err());
        let err = Plan::from_args(&parse(&with(&["--peer=nowhere"])).unwrap()).unwrap_err();
        assert!(err.contains("--peer nowhere"), "{err}");
        let err =
            Plan::from_args(&parse(&with(&["--tls", "--ca-file=/nonexistent/ca.pem"])).unwrap())
                .unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn errors_say_what_to_check() {
        let e = describe_error(Method::ALLOCATE, Some(401), "Unauthorized");
        assert_eq!(
            e,
            "Allocate failed: 401 Unauthorized (wrong user or password?)"
        );
        let e = describe_error(Method::ALLOCATE, None, "timed out");
        assert_eq!(e, "Allocate failed: timed out");
    }

    #[test]
    fn data_is_printed_on_one_line() {
        assert_eq!(escape("hello world"), "hello world");
        assert_eq!(escape("a\nb\\c\u{0}"), "a\\nb\\\\c\\u{0}");
    }
}
