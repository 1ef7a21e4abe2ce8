//! Two floe ICE agents (actors) in one process, exchanging candidates through their
//! event streams: over loopback host candidates, and relay-only through floe's own
//! TURN server (UDP and TCP to it) and through coturn. Gathering is loopback only.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use floe::ice::{CandidateKind, IceConfig, IceError, IceEvent as CoreEvent, IceRole};
use floe_actors::config::{ServeConfig, UserCredential};
use floe_actors::ice::{
    AgentConfig, Candidate, CandidateErrorKind, Description, GatherConfig, IceAgent,
    IceAgentHandle, IceEvent, TurnServerConfig,
};
use floe_actors::metrics::Metrics;
use floe_actors::turn::TurnServer;
use support::{require_peers, Coturn, CoturnOpts};

/// Bounds a hang; never a speed assertion.
const LIMIT: Duration = Duration::from_secs(30);

fn config(role: IceRole) -> AgentConfig {
    let mut c = AgentConfig::new(role);
    c.gather = GatherConfig::loopback_only();
    c
}

fn relay_only(role: IceRole, turn: TurnServerConfig) -> AgentConfig {
    let mut c = config(role);
    c.gather.relay_only = true;
    c.turn.push(turn);
    c
}

/// What one agent of a pair saw.
#[derive(Debug, Default)]
struct Seen {
    events: Vec<IceEvent>,
    received: Vec<String>,
    /// The role its description gave once the remote description was set, before
    /// any check.
    role_before_checks: Option<IceRole>,
}

impl Seen {
    fn nominated(&self) -> Vec<(CandidateKind, CandidateKind)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                IceEvent::Core {
                    event: CoreEvent::PairNominated { local, remote },
                    ..
                } => Some((local.kind(), remote.kind())),
                _ => None,
            })
            .collect()
    }

    fn has(&self, f: impl Fn(&IceEvent) -> bool) -> bool {
        self.events.iter().any(f)
    }
}

/// Gathers on both, crosses descriptions and candidates as they come (trickle),
/// starts both, and once each is connected sends `"from <name>"`; returns when each
/// has received the other's text, or at [`LIMIT`] (then the assertions say why).
async fn pair(a: AgentConfig, b: AgentConfig) -> (Seen, Seen) {
    pair_with(a, b, false).await
}

/// [`pair`], with `a` told that `b` is a lite agent when `b_lite`.
async fn pair_with(a: AgentConfig, b: AgentConfig, b_lite: bool) -> (Seen, Seen) {
    if let Ok(filter) = std::env::var("FLOE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let a = IceAgent::spawn(a);
    let b = IceAgent::spawn(b);
    let (mut ea, mut eb) = (a.events(), b.events());
    a.gather();
    b.gather();
    let (da, db) = (a.local_description().await, b.local_description().await);
    if b_lite {
        a.set_remote_lite(db.credentials.ufrag, db.credentials.pwd, Vec::new());
    } else {
        a.set_remote(db.credentials.ufrag, db.credentials.pwd, Vec::new());
    }
    b.set_remote(da.credentials.ufrag, da.credentials.pwd, Vec::new());
    let (mut sa, mut sb) = (Seen::default(), Seen::default());
    sa.role_before_checks = Some(a.local_description().await.role);
    sb.role_before_checks = Some(b.local_description().await.role);
    a.start();
    b.start();
    let deadline = tokio::time::Instant::now() + LIMIT;
    fn on_event(
        e: &IceEvent,
        me: &IceAgentHandle,
        other: &IceAgentHandle,
        seen: &mut Seen,
        name: &str,
    ) {
        match e {
            IceEvent::Candidate { candidate: c, .. } => other.add_remote_candidate(c.clone()),
            IceEvent::GatheringComplete => other.end_of_remote_candidates(),
            IceEvent::Core {
                event: CoreEvent::Connected,
                ..
            } => {
                let me = me.clone();
                let text = format!("from {name}");
                actix_rt::spawn(async move {
                    me.send(text).await.expect("sends once connected");
                });
            }
            IceEvent::Data { data: d, .. } => {
                seen.received.push(String::from_utf8_lossy(d).into_owned())
            }
            _ => {}
        }
        seen.events.push(e.clone());
    }
    while sa.received.is_empty() || sb.received.is_empty() {
        tokio::select! {
            Some(e) = ea.recv() => on_event(&e, &a, &b, &mut sa, "a"),
            Some(e) = eb.recv() => on_event(&e, &b, &a, &mut sb, "b"),
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    a.stop();
    b.stop();
    (sa, sb)
}

fn assert_connected(a: &Seen, b: &Seen, kind: CandidateKind) {
    let report = format!("a: {a:#?}\nb: {b:#?}");
    for (seen, other) in [(a, "from b"), (b, "from a")] {
        let nominated = seen.nominated();
        assert!(!nominated.is_empty(), "no PairNominated\n{report}");
        assert!(
            nominated.iter().all(|(l, _)| *l == kind),
            "nominated a pair not of {kind:?}\n{report}"
        );
        assert!(
            seen.has(|e| matches!(
                e,
                IceEvent::Core {
                    event: CoreEvent::Connected,
                    ..
                }
            )),
            "{report}"
        );
        assert!(
            seen.has(|e| matches!(e, IceEvent::GatheringComplete)),
            "{report}"
        );
        assert!(
            !seen.has(|e| matches!(
                e,
                IceEvent::Core {
                    event: CoreEvent::Failed,
                    ..
                }
            )),
            "{report}"
        );
        assert!(
            seen.received.iter().any(|t| t == other),
            "{other:?} not received\n{report}"
        );
        for e in &seen.events {
            if let IceEvent::Candidate { candidate: c, .. } = e {
                assert_eq!(c.kind(), kind, "signalled {c}\n{report}");
                assert!(c.addr().ip().is_loopback(), "gathered off loopback: {c}");
            }
        }
    }
}

#[actix_rt::test]
async fn two_agents_connect_over_loopback_host_candidates() {
    let (a, b) = pair(config(IceRole::Controlling), config(IceRole::Controlled)).await;
    assert_connected(&a, &b, CandidateKind::Host);
}

#[actix_rt::test]
async fn a_role_conflict_is_resolved_between_two_controlling_agents() {
    let (a, b) = pair(config(IceRole::Controlling), config(IceRole::Controlling)).await;
    assert_connected(&a, &b, CandidateKind::Host);
    let switched = [&a, &b]
        .iter()
        .filter(|s| {
            s.has(|e| {
                matches!(
                    e,
                    IceEvent::Core {
                        event: CoreEvent::RoleChanged(IceRole::Controlled),
                        ..
                    }
                )
            })
        })
        .count();
    assert_eq!(switched, 1, "exactly one agent switches\n{a:#?}\n{b:#?}");
}

fn floe_server_config() -> ServeConfig {
    let mut c = ServeConfig::default();
    // A port of the tests' own range: with port 0 the server binds UDP first and then
    // TCP on the same number, which an outgoing TCP connection may hold already.
    c.listen = vec![SocketAddr::from(([127, 0, 0, 1], support::free_port()))];
    c.users = vec!["bob:secret".parse::<UserCredential>().unwrap()];
    c.allow_loopback_peers = true;
    c.threads = 1;
    c
}

async fn floe_server() -> (floe_actors::turn::ServerHandle, SocketAddr) {
    let server = TurnServer::start(&floe_server_config(), Metrics::new())
        .await
        .expect("floe's TURN server starts");
    let addr = server.local_addrs()[0];
    (server, addr)
}

#[actix_rt::test]
async fn two_agents_connect_relay_only_through_floes_turn_server() {
    let (server, addr) = floe_server().await;
    let turn = TurnServerConfig::udp(addr, "bob", "secret");
    let (a, b) = pair(
        relay_only(IceRole::Controlling, turn.clone()),
        relay_only(IceRole::Controlled, turn),
    )
    .await;
    assert_connected(&a, &b, CandidateKind::Relayed);
    server.shutdown().await;
}

#[actix_rt::test]
async fn two_agents_connect_relay_only_over_tcp_to_floes_turn_server() {
    let (server, addr) = floe_server().await;
    let turn = TurnServerConfig::udp(addr, "bob", "secret").over_tcp();
    let (a, b) = pair(
        relay_only(IceRole::Controlling, turn.clone()),
        relay_only(IceRole::Controlled, turn),
    )
    .await;
    assert_connected(&a, &b, CandidateKind::Relayed);
    server.shutdown().await;
}

#[actix_rt::test]
async fn two_agents_connect_relay_only_through_coturn() {
    if !require_peers(&["turnserver"]) {
        return;
    }
    let mut opts = CoturnOpts::default();
    if std::env::var("FLOE_TEST_LOG").is_ok() {
        opts.extra_args.push("-V".into());
    }
    let coturn = Coturn::start(opts);
    let turn = TurnServerConfig::udp(coturn.addr(), "bob", "secret");
    let (a, b) = pair(
        relay_only(IceRole::Controlling, turn.clone()),
        relay_only(IceRole::Controlled, turn),
    )
    .await;
    // A rare failure (see the commit log) has not been reproduced under traces: keep
    // coturn's log of any failing run, not only of traced ones.
    if std::env::var("FLOE_TEST_LOG").is_ok() || a.received.is_empty() || b.received.is_empty() {
        eprintln!("--- coturn log\n{}", coturn.log());
    }
    assert_connected(&a, &b, CandidateKind::Relayed);
}

/// Gathers alone and returns its events up to GatheringComplete.
async fn gather_only(config: AgentConfig) -> Vec<IceEvent> {
    let agent = IceAgent::spawn(config);
    let mut events = agent.events();
    agent.gather();
    let mut seen = Vec::new();
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        match tokio::time::timeout(LIMIT, events.recv()).await {
            Ok(Some(e)) => {
                let done = e == IceEvent::GatheringComplete;
                seen.push(e);
                if done {
                    break;
                }
            }
            _ => break,
        }
    }
    agent.stop();
    seen
}

#[actix_rt::test]
async fn a_wrong_turn_password_is_a_candidate_error_and_gathering_still_completes() {
    let (server, addr) = floe_server().await;
    let mut c = config(IceRole::Controlling);
    c.turn.push(TurnServerConfig::udp(addr, "bob", "wrong"));
    c.stun.push(addr);
    let events = gather_only(c).await;
    let error = events.iter().find_map(|e| match e {
        IceEvent::CandidateError {
            server, kind, code, ..
        } => Some((*server, *kind, *code)),
        _ => None,
    });
    assert_eq!(
        error,
        Some((addr, CandidateErrorKind::AuthFailed, Some(401))),
        "{events:#?}"
    );
    assert!(events.iter().any(
        |e| matches!(e, IceEvent::Candidate { candidate: c, .. } if c.kind() == CandidateKind::Host)
    ));
    assert_eq!(
        events.last(),
        Some(&IceEvent::GatheringComplete),
        "{events:#?}"
    );
    server.shutdown().await;
}

#[actix_rt::test]
async fn an_unreachable_stun_server_is_a_candidate_error() {
    // A bound UDP socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let mut c = config(IceRole::Controlling);
    c.stun.push(addr);
    c.gather.server_timeout = Duration::from_secs(2);
    let events = gather_only(c).await;
    assert!(
        events.iter().any(|e| matches!(e, IceEvent::CandidateError { server, kind: CandidateErrorKind::Unreachable, .. } if *server == addr)),
        "{events:#?}"
    );
    assert_eq!(
        events.last(),
        Some(&IceEvent::GatheringComplete),
        "{events:#?}"
    );
}

/// Waits until `pred` holds for an event of `events` (recorded in `seen`), or panics at
/// [`LIMIT`] with what was seen.
async fn wait_for(
    events: &mut floe_actors::events::EventStream<IceEvent>,
    seen: &mut Vec<IceEvent>,
    what: &str,
    pred: impl Fn(&IceEvent) -> bool,
) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        tokio::select! {
            Some(e) = events.recv() => {
                seen.push(e.clone());
                if pred(&e) {
                    return;
                }
            }
            _ = tokio::time::sleep_until(deadline) => panic!("no {what}: {seen:#?}"),
        }
    }
}

fn is_data(text: &'static str) -> impl Fn(&IceEvent) -> bool {
    move |e| matches!(e, IceEvent::Data { data: d, .. } if d.as_ref() == text.as_bytes())
}

/// Two agents that gathered fully, exchanged everything and are connected, with what
/// they signalled (so that it can be signalled again after a restart).
struct Connected {
    a: IceAgentHandle,
    b: IceAgentHandle,
    ea: floe_actors::events::EventStream<IceEvent>,
    eb: floe_actors::events::EventStream<IceEvent>,
    sa: Vec<IceEvent>,
    sb: Vec<IceEvent>,
    da: Description,
    db: Description,
    ca: Vec<Candidate>,
    cb: Vec<Candidate>,
}

fn connected(e: &IceEvent) -> bool {
    matches!(
        e,
        IceEvent::Core {
            event: CoreEvent::Connected,
            ..
        }
    )
}

async fn connect_two(config_a: AgentConfig, config_b: AgentConfig) -> Connected {
    if let Ok(filter) = std::env::var("FLOE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let a = IceAgent::spawn(config_a);
    let b = IceAgent::spawn(config_b);
    let (mut ea, mut eb) = (a.events(), b.events());
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    a.gather();
    b.gather();
    let (da, db) = (a.local_description().await, b.local_description().await);
    // Gather fully first, so the candidates can be signalled again after the restart.
    wait_for(&mut ea, &mut sa, "GatheringComplete", |e| {
        matches!(e, IceEvent::GatheringComplete)
    })
    .await;
    wait_for(&mut eb, &mut sb, "GatheringComplete", |e| {
        matches!(e, IceEvent::GatheringComplete)
    })
    .await;
    let candidates = |seen: &[IceEvent]| -> Vec<_> {
        seen.iter()
            .filter_map(|e| match e {
                IceEvent::Candidate { candidate: c, .. } => Some(c.clone()),
                _ => None,
            })
            .collect()
    };
    let (ca, cb) = (candidates(&sa), candidates(&sb));
    assert!(!ca.is_empty() && !cb.is_empty(), "{sa:#?}\n{sb:#?}");
    a.set_remote(
        db.credentials.ufrag.clone(),
        db.credentials.pwd.clone(),
        cb.clone(),
    );
    b.set_remote(
        da.credentials.ufrag.clone(),
        da.credentials.pwd.clone(),
        ca.clone(),
    );
    a.start();
    b.start();
    wait_for(&mut ea, &mut sa, "Connected (a)", connected).await;
    wait_for(&mut eb, &mut sb, "Connected (b)", connected).await;
    Connected {
        a,
        b,
        ea,
        eb,
        sa,
        sb,
        da,
        db,
        ca,
        cb,
    }
}

#[actix_rt::test]
async fn an_ice_restart_keeps_data_on_the_old_pair_until_the_new_one_is_selected() {
    let Connected {
        a,
        b,
        mut ea,
        mut eb,
        mut sa,
        mut sb,
        da,
        db,
        ca,
        cb,
    } = connect_two(config(IceRole::Controlling), config(IceRole::Controlled)).await;
    a.send("before").await.expect("a sends");
    wait_for(&mut eb, &mut sb, "\"before\" at b", is_data("before")).await;

    // RFC 8445 §9: both sides restart (the peer on seeing new credentials) ...
    let (ra, rb) = (a.restart().await, b.restart().await);
    assert_ne!(ra.credentials, da.credentials);
    assert_ne!(rb.credentials, db.credentials);
    // The candidates are kept: the restart answers the same ones to signal again.
    assert_eq!(ra.candidates, ca);
    assert_eq!(rb.candidates, cb);
    sa.clear();
    sb.clear();
    // ... and until the new checklists select, the old pair carries data both ways.
    a.send("during a")
        .await
        .expect("a sends during the restart");
    b.send("during b")
        .await
        .expect("b sends during the restart");
    wait_for(&mut eb, &mut sb, "\"during a\" at b", is_data("during a")).await;
    wait_for(&mut ea, &mut sa, "\"during b\" at a", is_data("during b")).await;
    assert!(!sa.iter().chain(&sb).any(connected), "{sa:#?}\n{sb:#?}");

    // The new credentials are signalled; fresh checks select a pair again.
    a.set_remote(rb.credentials.ufrag.clone(), rb.credentials.pwd.clone(), cb);
    b.set_remote(ra.credentials.ufrag.clone(), ra.credentials.pwd.clone(), ca);
    a.end_of_remote_candidates();
    b.end_of_remote_candidates();
    wait_for(
        &mut ea,
        &mut sa,
        "Connected after the restart (a)",
        connected,
    )
    .await;
    wait_for(
        &mut eb,
        &mut sb,
        "Connected after the restart (b)",
        connected,
    )
    .await;
    for seen in [&sa, &sb] {
        assert!(
            seen.iter().any(|e| matches!(
                e,
                IceEvent::Core {
                    event: CoreEvent::PairNominated { .. },
                    ..
                }
            )),
            "no new nomination: {seen:#?}"
        );
        assert!(
            !seen.iter().any(|e| matches!(
                e,
                IceEvent::Core {
                    event: CoreEvent::Failed,
                    ..
                }
            )),
            "{seen:#?}"
        );
    }
    a.send("after").await.expect("a sends after the restart");
    b.send("after").await.expect("b sends after the restart");
    wait_for(&mut eb, &mut sb, "\"after\" at b", is_data("after")).await;
    wait_for(&mut ea, &mut sa, "\"after\" at a", is_data("after")).await;
    a.stop();
    b.stop();
}

#[actix_rt::test]
async fn a_full_agent_told_its_peer_is_lite_controls_it() {
    // A starts controlled; the remote description's ice-lite makes it controlling
    // (RFC 8445 §6.1.1) before any check, and the lite agent follows.
    let mut lite = config(IceRole::Controlled);
    lite.ice = IceConfig::lite();
    let (a, b) = pair_with(config(IceRole::Controlled), lite, true).await;
    assert_connected(&a, &b, CandidateKind::Host);
    let report = format!("a: {a:#?}\nb: {b:#?}");
    assert_eq!(a.role_before_checks, Some(IceRole::Controlling), "{report}");
    assert_eq!(b.role_before_checks, Some(IceRole::Controlled), "{report}");
    assert!(
        a.has(|e| matches!(
            e,
            IceEvent::Core {
                event: CoreEvent::RoleChanged(IceRole::Controlling),
                ..
            }
        )),
        "{report}"
    );
    assert!(
        !b.has(|e| matches!(
            e,
            IceEvent::Core {
                event: CoreEvent::RoleChanged(_),
                ..
            }
        )),
        "a lite agent never changes role\n{report}"
    );
}

#[actix_rt::test]
async fn when_the_peer_stops_answering_consent_expires_and_the_agent_fails() {
    // RFC 7675 §5.1 with short timers: a consent check about every 300 ms, consent
    // lost 4 s after the last answer (instead of 5 s and 30 s), which a stalled test
    // thread does not outlast before "before" is sent.
    let quick = |role| {
        let mut c = config(role);
        c.ice.consent_interval = Some(Duration::from_millis(300));
        c.ice.consent_timeout = Duration::from_secs(4);
        c
    };
    let Connected {
        a,
        b,
        mut ea,
        mut eb,
        mut sa,
        mut sb,
        ..
    } = connect_two(quick(IceRole::Controlling), quick(IceRole::Controlled)).await;
    a.send("before").await.expect("a sends");
    wait_for(&mut eb, &mut sb, "\"before\" at b", is_data("before")).await;

    // B goes away without a word: its sockets close and nothing answers A's checks.
    b.stop();
    sa.clear();
    wait_for(&mut ea, &mut sa, "Disconnected", |e| {
        matches!(
            e,
            IceEvent::Core {
                event: CoreEvent::Disconnected,
                ..
            }
        )
    })
    .await;
    wait_for(&mut ea, &mut sa, "Failed", |e| {
        matches!(
            e,
            IceEvent::Core {
                event: CoreEvent::Failed,
                ..
            }
        )
    })
    .await;
    assert!(
        sa.iter().any(|e| matches!(
            e,
            IceEvent::Core {
                event: CoreEvent::ConsentLost { .. },
                ..
            }
        )),
        "{sa:#?}"
    );
    // RFC 7675 §5.1: no more data once consent is lost.
    assert_eq!(a.send("after").await, Err(IceError::ConsentLost));
    a.stop();
}

/// Waits until `done` holds for everything `events` gave so far (recorded in `seen`).
async fn wait_until(
    events: &mut floe_actors::events::EventStream<IceEvent>,
    seen: &mut Vec<IceEvent>,
    what: &str,
    done: impl Fn(&[IceEvent]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !done(seen) {
        tokio::select! {
            Some(e) = events.recv() => seen.push(e),
            _ = tokio::time::sleep_until(deadline) => panic!("no {what}: {seen:#?}"),
        }
    }
}

/// RFC 8445 §5.3 and §6.1.2: one agent, two data streams (each with its own ufrag and
/// pwd and checklist) of two components (RTP and RTCP): every (stream, component) is
/// nominated and carries its own data; events and messages name the stream.
#[actix_rt::test]
async fn two_streams_of_two_components_connect_each_with_its_own_credentials() {
    let av = |role| {
        let mut c = config(role);
        c.streams = 2;
        c.components = 2;
        c
    };
    let (a, b) = (
        IceAgent::spawn(av(IceRole::Controlling)),
        IceAgent::spawn(av(IceRole::Controlled)),
    );
    let (mut ea, mut eb) = (a.events(), b.events());
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    a.gather();
    b.gather();
    let gathered = |seen: &[IceEvent]| seen.contains(&IceEvent::GatheringComplete);
    wait_until(&mut ea, &mut sa, "GatheringComplete (a)", gathered).await;
    wait_until(&mut eb, &mut sb, "GatheringComplete (b)", gathered).await;
    let (da, db) = (a.local_description().await, b.local_description().await);
    for (d, seen) in [(&da, &sa), (&db, &sb)] {
        assert_eq!(d.streams.len(), 2);
        assert_eq!(d.credentials, d.streams[0].credentials);
        assert_ne!(d.streams[0].credentials, d.streams[1].credentials);
        for (s, sd) in d.streams.iter().enumerate() {
            let mut components: Vec<u16> = sd.candidates.iter().map(|c| c.component()).collect();
            components.sort_unstable();
            components.dedup();
            assert_eq!(components, [1, 2], "stream {s}: {:?}", sd.candidates);
            // Each was an event naming its stream.
            for c in &sd.candidates {
                assert!(seen.contains(&IceEvent::Candidate {
                    stream: s,
                    candidate: c.clone()
                }));
            }
        }
    }
    for (from, to) in [(&da, &b), (&db, &a)] {
        for (s, sd) in from.streams.iter().enumerate() {
            let c = &sd.credentials;
            to.set_remote_of(s, c.ufrag.clone(), c.pwd.clone(), sd.candidates.clone());
            to.end_of_remote_candidates_of(s);
        }
    }
    a.start();
    b.start();
    let all_nominated = |seen: &[IceEvent]| {
        (0..2).all(|s| {
            (1..=2).all(|c| {
                seen.iter().any(|e| {
                    matches!(e, IceEvent::Core { stream, event: CoreEvent::PairNominated { local, .. } }
                        if *stream == s && local.component() == c)
                })
            })
        }) && (0..2).all(|s| {
            seen.iter()
                .any(|e| e.stream() == Some(s) && connected(e))
        })
    };
    wait_until(
        &mut ea,
        &mut sa,
        "every stream and component (a)",
        all_nominated,
    )
    .await;
    wait_until(
        &mut eb,
        &mut sb,
        "every stream and component (b)",
        all_nominated,
    )
    .await;
    for s in 0..2 {
        for c in 1..=2u16 {
            a.send_on(s, c, format!("{s}/{c}"))
                .await
                .expect("a sends on every stream and component");
        }
    }
    let all_data = |seen: &[IceEvent]| {
        (0..2).all(|s| {
            (1..=2u16).all(|c| {
                let text = format!("{s}/{c}");
                seen.iter().any(|e| {
                    matches!(e, IceEvent::Data { stream, component, data }
                        if *stream == s && *component == c && data.as_ref() == text.as_bytes())
                })
            })
        })
    };
    wait_until(
        &mut eb,
        &mut sb,
        "data on every stream and component",
        all_data,
    )
    .await;
    assert_eq!(
        a.send_on(2, 1, "no such stream").await,
        Err(IceError::NotConnected)
    );
    assert!(
        !sa.iter().chain(&sb).any(|e| matches!(
            e,
            IceEvent::Core {
                event: CoreEvent::Failed,
                ..
            }
        )),
        "{sa:#?}\n{sb:#?}"
    );
    a.stop();
    b.stop();
}
