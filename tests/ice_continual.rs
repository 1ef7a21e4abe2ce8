//! Continual gathering and renomination with two floe ICE agents (actors) on loopback:
//! agent A's interface list is injected (`GatherConfig::interfaces`), so an address
//! "appears" (127.0.0.2, which Linux routes on lo) and the first one "goes" without
//! touching the host's interfaces. Only 127.0.0.0/8 is used.

#[path = "support/mod.rs"]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use floe::ice::{IceError, IceEvent as CoreEvent, IceRole};
use floe_actors::events::EventStream;
use floe_actors::ice::{
    AgentConfig, GatherConfig, IceAgent, IceAgentHandle, IceEvent, InterfaceSource, SetRemote,
};
use serde_json::Value;
use support::{libnice_agent, pair_json_lines, require_peers, LineProcess};

/// Bounds a hang; never a speed assertion.
const LIMIT: Duration = Duration::from_secs(30);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn config(role: IceRole, renomination: bool) -> AgentConfig {
    let mut c = AgentConfig::new(role);
    c.gather = GatherConfig::loopback_only();
    c.gather.addresses = vec![ip("127.0.0.1"), ip("127.0.0.2")];
    c.ice.renomination = renomination;
    c
}

/// Two agents with crossed descriptions and trickled candidates; A's events come back
/// through `seen`.
struct Pair {
    a: IceAgentHandle,
    b: IceAgentHandle,
    ea: EventStream<IceEvent>,
    eb: EventStream<IceEvent>,
    seen_a: Vec<IceEvent>,
    seen_b: Vec<IceEvent>,
}

impl Pair {
    async fn start(a: AgentConfig, b: AgentConfig) -> Pair {
        if let Ok(filter) = std::env::var("FLOE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let (renom_a, renom_b) = (a.ice.renomination, b.ice.renomination);
        let (a, b) = (IceAgent::spawn(a), IceAgent::spawn(b));
        let (ea, eb) = (a.events(), b.events());
        a.gather();
        b.gather();
        let (da, db) = (a.local_description().await, b.local_description().await);
        let mut to_a = SetRemote::new(0, db.credentials.ufrag, db.credentials.pwd);
        to_a.renomination = renom_b;
        let mut to_b = SetRemote::new(0, da.credentials.ufrag, da.credentials.pwd);
        to_b.renomination = renom_a;
        a.set_remote_description(to_a);
        b.set_remote_description(to_b);
        a.start();
        b.start();
        Pair {
            a,
            b,
            ea,
            eb,
            seen_a: Vec::new(),
            seen_b: Vec::new(),
        }
    }

    /// Handles events (forwarding candidates) until `done` holds; false at [`LIMIT`].
    async fn until(&mut self, mut done: impl FnMut(&[IceEvent], &[IceEvent]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + LIMIT;
        while !done(&self.seen_a, &self.seen_b) {
            tokio::select! {
                Some(e) = self.ea.recv() => {
                    forward(&e, &self.b);
                    self.seen_a.push(e);
                }
                Some(e) = self.eb.recv() => {
                    forward(&e, &self.a);
                    self.seen_b.push(e);
                }
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
        true
    }

    fn report(&self) -> String {
        format!("a: {:#?}\nb: {:#?}", self.seen_a, self.seen_b)
    }
}

fn forward(e: &IceEvent, other: &IceAgentHandle) {
    match e {
        IceEvent::Candidate { candidate, .. } => other.add_remote_candidate(candidate.clone()),
        IceEvent::GatheringComplete => other.end_of_remote_candidates(),
        _ => {}
    }
}

/// The (local, remote) addresses of the last SelectedPairChanged.
fn selected(events: &[IceEvent]) -> Option<(SocketAddr, SocketAddr)> {
    events.iter().rev().find_map(|e| match e {
        IceEvent::Core {
            event: CoreEvent::SelectedPairChanged { local, remote },
            ..
        } => Some((local.base().unwrap_or(local.addr()), remote.addr())),
        _ => None,
    })
}

fn received(events: &[IceEvent], text: &str) -> bool {
    events
        .iter()
        .any(|e| matches!(e, IceEvent::Data { data, .. } if data.as_ref() == text.as_bytes()))
}

fn failed(events: &[IceEvent]) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            IceEvent::Core {
                event: CoreEvent::Failed,
                ..
            }
        )
    })
}

#[actix_rt::test]
async fn an_address_appears_then_the_first_goes_and_the_agents_move_to_the_new_one() {
    let addrs = Arc::new(Mutex::new(vec![ip("127.0.0.1")]));
    let mut a = config(IceRole::Controlling, true);
    let list = addrs.clone();
    a.gather.interfaces = InterfaceSource::new(move || Ok(list.lock().unwrap().clone()));
    a.gather.continual = Some(Duration::from_millis(100));
    let mut b = config(IceRole::Controlled, true);
    b.gather.addresses = vec![ip("127.0.0.1")];
    let mut p = Pair::start(a, b).await;

    let on = |want: &'static str| {
        move |events: &[IceEvent]| selected(events).is_some_and(|(l, _)| l.ip() == ip(want))
    };
    let first = on("127.0.0.1");
    assert!(
        p.until(|a, _| first(a)).await,
        "A never selected 127.0.0.1\n{}",
        p.report()
    );
    // Continual gathering never completes gathering.
    assert!(!p.seen_a.contains(&IceEvent::GatheringComplete));

    // 127.0.0.2 appears: a new host candidate, trickled to B.
    addrs.lock().unwrap().push(ip("127.0.0.2"));
    let new_candidate = |a: &[IceEvent]| {
        a.iter().any(|e| matches!(e, IceEvent::Candidate { candidate, .. } if candidate.addr().ip() == ip("127.0.0.2")))
    };
    assert!(
        p.until(|a, _| new_candidate(a)).await,
        "no candidate on 127.0.0.2\n{}",
        p.report()
    );

    // 127.0.0.1 goes: A removes its candidates and, with renomination, nominates the
    // pair on 127.0.0.2; B follows.
    addrs.lock().unwrap().retain(|a| *a != ip("127.0.0.1"));
    let moved = |a: &[IceEvent], b: &[IceEvent]| {
        selected(a).is_some_and(|(l, _)| l.ip() == ip("127.0.0.2"))
            && selected(b).is_some_and(|(_, r)| r.ip() == ip("127.0.0.2"))
    };
    assert!(
        p.until(moved).await,
        "the agents did not move\n{}",
        p.report()
    );

    // Data flows on the new pair, both ways.
    p.a.send("after the move from a").await.expect("A sends");
    p.b.send("after the move from b").await.expect("B sends");
    let both = |a: &[IceEvent], b: &[IceEvent]| {
        received(b, "after the move from a") && received(a, "after the move from b")
    };
    assert!(
        p.until(both).await,
        "no data after the move\n{}",
        p.report()
    );
    assert!(!failed(&p.seen_a) && !failed(&p.seen_b), "{}", p.report());
    p.a.stop();
    p.b.stop();
}

#[actix_rt::test]
async fn renominate_through_the_actor_needs_negotiation() {
    let mut p = Pair::start(
        config(IceRole::Controlling, true),
        config(IceRole::Controlled, false),
    )
    .await;
    let connected = |a: &[IceEvent], b: &[IceEvent]| selected(a).is_some() && selected(b).is_some();
    assert!(p.until(connected).await, "{}", p.report());
    let (local, remote) = selected(&p.seen_a).unwrap();
    let refused = p.a.renominate(0, 1, local, remote).await;
    assert!(
        matches!(refused, Err(IceError::CannotRenominate(_))),
        "{refused:?}"
    );
    p.a.stop();
    p.b.stop();
}

/// `floe ice --renomination --continual-gathering` with itself through the JSON lines:
/// the credentials lines offer renomination, no end-of-candidates line is printed, and
/// data flows.
#[test]
fn floe_ice_offers_renomination_and_gathers_continually() {
    let floe = |role: &str, send: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_floe"));
        cmd.args(["ice", role, "--loopback", "--send", send]).args([
            "--renomination",
            "--continual-gathering",
            "0.5",
        ]);
        LineProcess::spawn(role, cmd).expect("floe ice starts")
    };
    let (mut a, mut b) = (
        floe("--controlling", "from-a"),
        floe("--controlled", "from-b"),
    );
    let outcome = pair_json_lines(&mut a, &mut b, LIMIT);
    let report = format!("{outcome:?}\n{}\n{}", a.describe(), b.describe());
    assert!(outcome.success(), "{report}");
    for (p, other_text) in [(&a, "from-b"), (&b, "from-a")] {
        let json = p.json();
        let credentials = json
            .iter()
            .find(|v| v.get("ufrag").is_some())
            .expect("credentials");
        assert_eq!(credentials["renomination"], Value::Bool(true), "{report}");
        assert!(
            !json.iter().any(|v| v.get("end-of-candidates").is_some()),
            "{report}"
        );
        assert!(!p.events("nominated").is_empty(), "{report}");
        assert!(
            p.events("data").iter().any(|d| d["data"] == other_text),
            "{report}"
        );
    }
}

/// floe, controlling with renomination, against libnice with `support-renomination`:
/// floe nominates with NOMINATION instead of USE-CANDIDATE once both offer it, so
/// libnice selects a pair (and can send) only if it reads NOMINATION.
#[test]
fn libnice_follows_floes_nomination_attribute() {
    if !require_peers(&["libnice"]) {
        return;
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_floe"));
    cmd.args(["ice", "--controlling", "--loopback", "--send", "from-a"])
        .args(["--renomination", "--log", "debug"]);
    let mut a = LineProcess::spawn("floe controlling", cmd).expect("floe ice starts");
    let mut b = LineProcess::spawn(
        "libnice controlled",
        libnice_agent(false, &["--send", "from-b", "--renomination"]),
    )
    .expect("libnice starts");
    let outcome = pair_json_lines(&mut a, &mut b, LIMIT);
    let report = format!("{outcome:?}\n{}\n{}", a.describe(), b.describe());
    assert!(outcome.success(), "{report}");
    assert!(
        !b.events("nominated").is_empty(),
        "libnice selected a pair\n{report}"
    );
    assert!(
        a.events("data").iter().any(|d| d["data"] == "from-b")
            && b.events("data").iter().any(|d| d["data"] == "from-a"),
        "{report}"
    );
}
