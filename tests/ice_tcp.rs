//! ICE-TCP (RFC 6544) with real sockets on loopback: two `IceAgent` actors with
//! `GatherConfig { tcp_only, .. }`; `floe ice --tcp-only` with itself, and `--tcp` (UDP
//! and TCP) preferring UDP; and `floe ice --tcp-only` against libnice with ICE-TCP only
//! (`tests/support/libnice_agent.py --tcp-only`), each role on each side.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use floe::ice::{CandidateTransport, IceEvent as CoreEvent, IceRole, TcpType};
use floe_actors::ice::{AgentConfig, Candidate, GatherConfig, IceAgent, IceEvent};
use serde_json::Value;
use support::{libnice_agent, pair_json_lines, require_peers, LineProcess, RUN_TIMEOUT};

/// Bounds a hang; never a speed assertion.
const LIMIT: Duration = Duration::from_secs(30);

fn tcp_only(role: IceRole) -> AgentConfig {
    let mut c = AgentConfig::new(role);
    c.gather = GatherConfig::loopback_only();
    c.gather.tcp_only = true;
    c
}

#[actix_rt::test]
async fn two_actors_tcp_only_connect_and_carry_data() {
    let a = IceAgent::spawn(tcp_only(IceRole::Controlling));
    let b = IceAgent::spawn(tcp_only(IceRole::Controlled));
    let (mut ea, mut eb) = (a.events(), b.events());
    a.gather();
    b.gather();
    let (da, db) = (a.local_description().await, b.local_description().await);
    a.set_remote(db.credentials.ufrag, db.credentials.pwd, Vec::new());
    b.set_remote(da.credentials.ufrag, da.credentials.pwd, Vec::new());
    a.start();
    b.start();
    let mut seen: [Vec<IceEvent>; 2] = Default::default();
    let mut received: [Vec<String>; 2] = Default::default();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while received[0].is_empty() || received[1].is_empty() {
        let (i, e) = tokio::select! {
            Some(e) = ea.recv() => (0, e),
            Some(e) = eb.recv() => (1, e),
            _ = tokio::time::sleep_until(deadline) => break,
        };
        let (me, other) = if i == 0 { (&a, &b) } else { (&b, &a) };
        match &e {
            IceEvent::Candidate { candidate, .. } => other.add_remote_candidate(candidate.clone()),
            IceEvent::GatheringComplete => other.end_of_remote_candidates(),
            IceEvent::Core {
                event: CoreEvent::Connected,
                ..
            } => {
                let me = me.clone();
                let text = format!("from {i}");
                actix_rt::spawn(async move { me.send(text).await.expect("sends once connected") });
            }
            IceEvent::Data { data, .. } => {
                received[i].push(String::from_utf8_lossy(data).into_owned())
            }
            _ => {}
        }
        seen[i].push(e);
    }
    a.stop();
    b.stop();
    let report = format!("{seen:#?}");
    assert_eq!(
        received[0].first().map(String::as_str),
        Some("from 1"),
        "{report}"
    );
    assert_eq!(
        received[1].first().map(String::as_str),
        Some("from 0"),
        "{report}"
    );
    for events in &seen {
        let candidates: Vec<&Candidate> = events
            .iter()
            .filter_map(|e| match e {
                IceEvent::Candidate { candidate, .. } => Some(candidate),
                _ => None,
            })
            .collect();
        // A passive and an active candidate on 127.0.0.1 (and on ::1 where it is up).
        assert!(candidates.len() >= 2, "{report}");
        for c in &candidates {
            assert_eq!(c.transport(), CandidateTransport::Tcp, "{c}");
            assert!(c.addr().ip().is_loopback(), "{c}");
        }
        assert!(candidates
            .iter()
            .any(|c| c.tcp_type() == Some(TcpType::Passive)));
        assert!(candidates
            .iter()
            .any(|c| c.tcp_type() == Some(TcpType::Active) && c.addr().port() == 9));
        let nominated = events.iter().find_map(|e| match e {
            IceEvent::Core {
                event: CoreEvent::PairNominated { local, remote },
                ..
            } => Some((local.clone(), remote.clone())),
            _ => None,
        });
        let (local, remote) = nominated.expect("a pair nominated");
        assert_eq!(local.transport(), CandidateTransport::Tcp, "{report}");
        assert_eq!(remote.transport(), CandidateTransport::Tcp, "{report}");
    }
}

fn floe_ice(controlling: bool, send: &str, more: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_floe"));
    cmd.arg("ice")
        .arg(if controlling {
            "--controlling"
        } else {
            "--controlled"
        })
        .arg("--loopback")
        .args(["--send", send])
        .args(more);
    cmd
}

fn spawn(name: &str, cmd: Command) -> LineProcess {
    LineProcess::spawn(name, cmd).unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

/// The transport token of a candidate line (`udp`, `tcp`; libnice writes `TCP`).
fn transport_of(candidate: &str) -> String {
    candidate
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Crosses the two; each nominated a pair whose both ends are `transport`, and got the
/// other's text; every candidate either signalled is of `signalled` (when given).
fn cross(mut a: LineProcess, mut b: LineProcess, transport: &str, signalled: Option<&str>) {
    let outcome = pair_json_lines(&mut a, &mut b, RUN_TIMEOUT);
    let report = format!("{outcome:?}\n{}\n{}", a.describe(), b.describe());
    assert!(outcome.success(), "{report}");
    for (agent, other_text) in [(&a, "from-b"), (&b, "from-a")] {
        let nominated = agent.events("nominated");
        assert!(
            !nominated.is_empty(),
            "{} nominated nothing\n{report}",
            agent.name
        );
        for n in &nominated {
            for end in ["local", "remote"] {
                let c = n[end].as_str().unwrap_or_default();
                assert_eq!(
                    transport_of(c),
                    transport,
                    "{} {end} {c}\n{report}",
                    agent.name
                );
            }
        }
        assert!(
            agent.events("data").iter().any(|e| e["data"] == other_text),
            "{} did not receive {other_text}\n{report}",
            agent.name
        );
        if let Some(t) = signalled {
            for line in agent.json() {
                if let Some(c) = line.get("candidate").and_then(Value::as_str) {
                    assert_eq!(transport_of(c), t, "{c}\n{report}");
                    assert!(c.contains(" tcptype "), "{c}\n{report}");
                }
            }
        }
    }
}

#[test]
fn floe_ice_tcp_only_with_itself() {
    cross(
        spawn(
            "floe controlling",
            floe_ice(true, "from-a", &["--tcp-only"]),
        ),
        spawn(
            "floe controlled",
            floe_ice(false, "from-b", &["--tcp-only"]),
        ),
        "tcp",
        Some("tcp"),
    );
}

#[test]
fn floe_ice_with_udp_and_tcp_nominates_udp() {
    cross(
        spawn("floe controlling", floe_ice(true, "from-a", &["--tcp"])),
        spawn("floe controlled", floe_ice(false, "from-b", &["--tcp"])),
        "udp",
        None,
    );
}

#[test]
fn floe_tcp_only_controlling_with_libnice_tcp_only_controlled() {
    if !require_peers(&["libnice"]) {
        return;
    }
    cross(
        spawn(
            "floe controlling",
            floe_ice(true, "from-a", &["--tcp-only"]),
        ),
        spawn(
            "libnice controlled",
            libnice_agent(false, &["--tcp-only", "--send", "from-b"]),
        ),
        "tcp",
        Some("tcp"),
    );
}

#[test]
fn libnice_tcp_only_controlling_with_floe_tcp_only_controlled() {
    if !require_peers(&["libnice"]) {
        return;
    }
    cross(
        spawn(
            "libnice controlling",
            libnice_agent(true, &["--tcp-only", "--send", "from-a"]),
        ),
        spawn(
            "floe controlled",
            floe_ice(false, "from-b", &["--tcp-only"]),
        ),
        "tcp",
        Some("tcp"),
    );
}
