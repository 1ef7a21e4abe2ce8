//! `floe ice` against aioice 0.13 (`tests/support/aioice_agent.py`), both speaking
//! INTEROP.md's JSON lines, crossed by `pair_json_lines`: each role on each side, with
//! loopback host candidates and relay-only (through coturn, and through `floe serve`;
//! floe reaching coturn over TCP once), data both ways. And `floe ice` against itself
//! the same way.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{
    free_port, libnice_agent, pair_json_lines, require_peers, wait_stun_ready, AgentOpts,
    ChildGuard, Coturn, CoturnOpts, LineProcess, RUN_TIMEOUT, STARTUP_TIMEOUT,
};

/// `floe serve` on 127.0.0.1 with the user bob:secret and loopback peers allowed.
struct FloeServe {
    child: ChildGuard,
    addr: SocketAddr,
}

impl FloeServe {
    fn start() -> FloeServe {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_floe"));
        cmd.args([
            "serve",
            "--listen",
            &addr.to_string(),
            "--user",
            "bob:secret",
        ])
        .args(["--allow-loopback-peers", "--threads", "1", "--log", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
        let mut child = ChildGuard::new(support::spawn(cmd).expect("starting floe serve"));
        wait_stun_ready(addr, STARTUP_TIMEOUT, Some(&mut child.child))
            .unwrap_or_else(|e| panic!("floe serve did not come up: {e}"));
        FloeServe { child, addr }
    }
}

/// `floe ice` with these options (loopback gathering, as INTEROP.md requires).
fn floe_ice(controlling: bool, turn: Option<SocketAddr>, send: &str) -> Command {
    floe_ice_with(controlling, turn, send, &[])
}

fn floe_ice_with(
    controlling: bool,
    turn: Option<SocketAddr>,
    send: &str,
    more: &[&str],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_floe"));
    cmd.arg("ice")
        .arg(if controlling {
            "--controlling"
        } else {
            "--controlled"
        })
        .arg("--loopback")
        .args(["--send", send]);
    if let Some(turn) = turn {
        cmd.args([
            "--turn",
            &turn.to_string(),
            "--user",
            "bob",
            "--password",
            "secret",
            "--relay-only",
        ]);
    }
    cmd.args(more);
    cmd
}

fn aioice(controlling: bool, turn: Option<SocketAddr>, send: &str) -> Command {
    let mut opts = if controlling {
        AgentOpts::controlling()
    } else {
        AgentOpts::controlled()
    };
    if let Some(turn) = turn {
        opts = opts.turn(turn, "bob", "secret").relay_only();
    }
    opts.send(send).command()
}

/// `IP PORT` of a candidate line.
fn address_of(candidate: &str) -> Option<String> {
    let words: Vec<&str> = candidate.split_whitespace().collect();
    Some(format!("{} {}", words.get(4)?, words.get(5)?))
}

fn typ_of(candidate: &str) -> Option<&str> {
    let mut words = candidate.split_whitespace();
    words.find(|w| *w == "typ")?;
    words.next()
}

/// Crosses the two, and checks that each nominated a pair of `typ` on both ends,
/// received the other's text and exited 0. Returns them for more checks.
fn cross(mut a: LineProcess, mut b: LineProcess, typ: &str) -> (LineProcess, LineProcess) {
    let outcome = pair_json_lines(&mut a, &mut b, RUN_TIMEOUT);
    let report = format!("{outcome:?}\n{}\n{}", a.describe(), b.describe());
    assert!(outcome.success(), "{report}");
    for (agent, other, other_text) in [(&a, &b, "from-b"), (&b, &a, "from-a")] {
        let nominated = agent.events("nominated");
        assert!(
            !nominated.is_empty(),
            "{} nominated nothing\n{report}",
            agent.name
        );
        let signalled: Vec<String> = other
            .json()
            .iter()
            .filter_map(|v| {
                v.get("candidate")
                    .and_then(Value::as_str)
                    .and_then(address_of)
            })
            .collect();
        for n in &nominated {
            let local = n["local"].as_str().unwrap_or_default();
            assert_eq!(
                typ_of(local),
                Some(typ),
                "{} local {local}\n{report}",
                agent.name
            );
            // A check may come before the candidate line that announces its source
            // (trickle): the remote is then peer-reflexive, at a signalled address.
            let remote = n["remote"].as_str().unwrap_or_default();
            assert!(
                typ_of(remote) == Some(typ) || typ_of(remote) == Some("prflx"),
                "{} remote {remote}\n{report}",
                agent.name
            );
            assert!(
                address_of(remote).is_some_and(|a| signalled.contains(&a)),
                "{} remote {remote} was not signalled\n{report}",
                agent.name
            );
        }
        assert!(
            agent.events("data").iter().any(|e| e["data"] == other_text),
            "{} did not receive {other_text}\n{report}",
            agent.name
        );
        // Candidate lines are the bare RFC 8839 value, and every one is of `typ`.
        for line in agent.json() {
            if let Some(c) = line.get("candidate").and_then(Value::as_str) {
                assert!(!c.starts_with("candidate:") && !c.starts_with("a="), "{c}");
                assert_eq!(typ_of(c), Some(typ), "{c}\n{report}");
            }
        }
    }
    (a, b)
}

/// The index of the first line of `p` that satisfies `pred`.
fn line_index(p: &LineProcess, pred: impl Fn(&Value) -> bool) -> Option<usize> {
    p.json().iter().position(pred)
}

/// After [`cross`] with `restarter` started with `--restart-after`: both signalled new
/// credentials once (RFC 8445 §9), connected again, and received the other's text after
/// the restart; nothing failed across it. A `floe` side also says `restart` (by
/// `local` or `remote`) and `connected` again.
fn assert_restarted(restarter: &LineProcess, answerer: &LineProcess) {
    let report = format!("{}\n{}", restarter.describe(), answerer.describe());
    for (p, by) in [(restarter, "local"), (answerer, "remote")] {
        let credentials: Vec<Value> = p
            .json()
            .into_iter()
            .filter(|v| v.get("ufrag").is_some())
            .collect();
        assert_eq!(
            credentials.len(),
            2,
            "{}: two credentials lines\n{report}",
            p.name
        );
        assert_ne!(credentials[0]["ufrag"], credentials[1]["ufrag"], "{report}");
        assert_ne!(credentials[0]["pwd"], credentials[1]["pwd"], "{report}");
        assert!(
            p.events("failed").is_empty(),
            "{}: failed\n{report}",
            p.name
        );
        let second = line_index(p, |v| v.get("ufrag") == Some(&credentials[1]["ufrag"]))
            .expect("the second credentials line");
        let json = p.json();
        assert!(
            json[second..]
                .iter()
                .any(|v| v.get("event").and_then(Value::as_str) == Some("data")),
            "{}: no data after the restart\n{report}",
            p.name
        );
        if p.name.starts_with("floe") {
            assert!(
                p.events("connected").len() >= 2,
                "{}: connected again after the restart\n{report}",
                p.name
            );
            assert_eq!(p.events("restart").len(), 1, "{report}");
            assert_eq!(p.events("restart")[0]["by"], by, "{report}");
        }
    }
}

fn spawn(name: &str, cmd: Command) -> LineProcess {
    LineProcess::spawn(name, cmd).unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

#[test]
fn floe_controlling_with_aioice_controlled_over_host_candidates() {
    if !require_peers(&["aioice"]) {
        return;
    }
    cross(
        spawn("floe controlling", floe_ice(true, None, "from-a")),
        spawn("aioice controlled", aioice(false, None, "from-b")),
        "host",
    );
}

#[test]
fn floe_aggressive_controlling_with_aioice_controlled_over_host_candidates() {
    if !require_peers(&["aioice"]) {
        return;
    }
    cross(
        spawn(
            "floe controlling (aggressive)",
            floe_ice_with(true, None, "from-a", &["--aggressive-nomination"]),
        ),
        spawn("aioice controlled", aioice(false, None, "from-b")),
        "host",
    );
}

#[test]
fn floe_aggressive_controlling_with_itself_over_host_candidates() {
    cross(
        spawn(
            "floe controlling (aggressive)",
            floe_ice_with(true, None, "from-a", &["--aggressive-nomination"]),
        ),
        spawn("floe controlled", floe_ice(false, None, "from-b")),
        "host",
    );
}

#[test]
fn aioice_controlling_with_floe_controlled_over_host_candidates() {
    if !require_peers(&["aioice"]) {
        return;
    }
    cross(
        spawn("aioice controlling", aioice(true, None, "from-a")),
        spawn("floe controlled", floe_ice(false, None, "from-b")),
        "host",
    );
}

#[test]
fn floe_controlling_with_aioice_controlled_relay_only_through_coturn() {
    if !require_peers(&["aioice", "turnserver"]) {
        return;
    }
    let coturn = Coturn::start(CoturnOpts::default());
    cross(
        spawn(
            "floe controlling",
            floe_ice(true, Some(coturn.addr()), "from-a"),
        ),
        spawn(
            "aioice controlled",
            aioice(false, Some(coturn.addr()), "from-b"),
        ),
        "relay",
    );
}

#[test]
fn aioice_controlling_with_floe_controlled_relay_only_through_coturn() {
    if !require_peers(&["aioice", "turnserver"]) {
        return;
    }
    let coturn = Coturn::start(CoturnOpts::default());
    cross(
        spawn(
            "aioice controlling",
            aioice(true, Some(coturn.addr()), "from-a"),
        ),
        spawn(
            "floe controlled",
            floe_ice(false, Some(coturn.addr()), "from-b"),
        ),
        "relay",
    );
}

#[test]
fn floe_ice_with_itself_over_host_candidates() {
    cross(
        spawn("floe controlling", floe_ice(true, None, "from-a")),
        spawn("floe controlled", floe_ice(false, None, "from-b")),
        "host",
    );
}

#[test]
fn floe_ice_restarts_with_itself_and_data_flows_on_the_new_pair() {
    let (a, b) = cross(
        spawn(
            "floe controlling",
            floe_ice_with(true, None, "from-a", &["--restart-after", "0.3"]),
        ),
        spawn("floe controlled", floe_ice(false, None, "from-b")),
        "host",
    );
    assert_restarted(&a, &b);
    // The controlled side restarts too.
    let (b, a) = cross(
        spawn(
            "floe controlled",
            floe_ice_with(false, None, "from-a", &["--restart-after", "0.3"]),
        ),
        spawn("floe controlling", floe_ice(true, None, "from-b")),
        "host",
    );
    assert_restarted(&b, &a);
}

#[test]
fn floe_ice_with_itself_relay_only_through_coturn() {
    if !require_peers(&["turnserver"]) {
        return;
    }
    let coturn = Coturn::start(CoturnOpts::default());
    cross(
        spawn(
            "floe controlling",
            floe_ice(true, Some(coturn.addr()), "from-a"),
        ),
        spawn(
            "floe controlled",
            floe_ice(false, Some(coturn.addr()), "from-b"),
        ),
        "relay",
    );
}

#[test]
fn floe_ice_prints_its_description_first_and_fails_on_timeout() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_floe"));
    cmd.args(["ice", "--controlled", "--loopback", "--timeout", "1"]);
    let mut p = spawn("floe alone", cmd);
    let first = p
        .wait_for_json(RUN_TIMEOUT, |_| true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first["role"], "controlled", "{}", p.describe());
    assert!(first["ufrag"].as_str().is_some_and(|u| u.len() >= 4));
    assert!(first["pwd"].as_str().is_some_and(|u| u.len() >= 22));
    let status = p.wait(RUN_TIMEOUT).expect("exits by itself");
    assert!(!status.success(), "{}", p.describe());
    assert!(
        p.events("failed")
            .iter()
            .any(|e| e["reason"].as_str().unwrap_or("").contains("timeout")),
        "{}",
        p.describe()
    );
    let json = p.json();
    assert!(json
        .iter()
        .any(|v| v.get("end-of-candidates") == Some(&Value::Bool(true))));
}

#[test]
fn aioice_controlling_with_floe_controlled_relay_only_through_floes_server() {
    if !require_peers(&["aioice"]) {
        return;
    }
    let server = FloeServe::start();
    cross(
        spawn(
            "aioice controlling",
            aioice(true, Some(server.addr), "from-a"),
        ),
        spawn(
            "floe controlled",
            floe_ice(false, Some(server.addr), "from-b"),
        ),
        "relay",
    );
    drop(server.child);
}

#[test]
fn floe_controlling_over_tcp_to_coturn_with_aioice_controlled_relay_only() {
    if !require_peers(&["aioice", "turnserver"]) {
        return;
    }
    let coturn = Coturn::start(CoturnOpts::default());
    cross(
        spawn(
            "floe controlling (TURN over TCP)",
            floe_ice_with(true, Some(coturn.addr()), "from-a", &["--turn-tcp"]),
        ),
        spawn(
            "aioice controlled",
            aioice(false, Some(coturn.addr()), "from-b"),
        ),
        "relay",
    );
}

#[test]
fn floe_controlling_with_aioice_controlled_relay_only_through_floes_server() {
    if !require_peers(&["aioice"]) {
        return;
    }
    let server = FloeServe::start();
    cross(
        spawn(
            "floe controlling",
            floe_ice(true, Some(server.addr), "from-a"),
        ),
        spawn(
            "aioice controlled",
            aioice(false, Some(server.addr), "from-b"),
        ),
        "relay",
    );
    drop(server.child);
}

#[test]
fn floe_controlling_with_libnice_controlled_over_host_candidates() {
    if !require_peers(&["libnice"]) {
        return;
    }
    cross(
        spawn("floe controlling", floe_ice(true, None, "from-a")),
        spawn(
            "libnice controlled",
            libnice_agent(false, &["--send", "from-b"]),
        ),
        "host",
    );
}

#[test]
fn libnice_controlling_with_floe_controlled_over_host_candidates() {
    if !require_peers(&["libnice"]) {
        return;
    }
    cross(
        spawn(
            "libnice controlling",
            libnice_agent(true, &["--send", "from-a"]),
        ),
        spawn("floe controlled", floe_ice(false, None, "from-b")),
        "host",
    );
}

#[test]
fn floe_restarts_with_libnice_and_libnice_answers() {
    if !require_peers(&["libnice"]) {
        return;
    }
    let (a, b) = cross(
        spawn(
            "floe controlling",
            floe_ice_with(true, None, "from-a", &["--restart-after", "0.3"]),
        ),
        spawn(
            "libnice controlled",
            libnice_agent(false, &["--send", "from-b"]),
        ),
        "host",
    );
    assert_restarted(&a, &b);
}

#[test]
fn libnice_restarts_with_floe_and_floe_answers() {
    if !require_peers(&["libnice"]) {
        return;
    }
    let (a, b) = cross(
        spawn(
            "libnice controlling",
            libnice_agent(true, &["--send", "from-a", "--restart-after", "0.3"]),
        ),
        spawn("floe controlled", floe_ice(false, None, "from-b")),
        "host",
    );
    assert_restarted(&a, &b);
}

/// Forwards the signalling lines (JSON objects without `"event"`) of each to the other,
/// as [`pair_json_lines`] does, until both have printed `{"event":"connected"}`.
fn connect_by_hand(a: &mut LineProcess, b: &mut LineProcess) {
    fn forward(from: &mut LineProcess, to: &mut LineProcess) {
        while let Some(line) = from.try_recv_line() {
            let signalling = serde_json::from_str::<Value>(&line)
                .is_ok_and(|v| v.is_object() && v.get("event").is_none());
            if signalling {
                let _ = to.send_line(&line);
            }
        }
    }
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    while a.events("connected").is_empty() || b.events("connected").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "not connected\n{}\n{}",
            a.describe(),
            b.describe()
        );
        forward(a, b);
        forward(b, a);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// RFC 7675 through `floe ice`: once the peer is gone, consent checks go unanswered:
/// `consent-lost` on the selected pair, then `failed`, exit 1. (With a consent timeout
/// this short, the unanswered check may say `disconnected` only afterwards.)
#[test]
fn floe_ice_prints_consent_lost_when_the_peer_goes_away() {
    // No --send: it stays as long as its stdin is open.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_floe"));
    cmd.args(["ice", "--controlling", "--loopback"]).args([
        "--consent-interval",
        "0.2",
        "--consent-timeout",
        "2",
    ]);
    let mut a = spawn("floe controlling", cmd);
    let mut b = spawn("floe controlled", floe_ice(false, None, "from-b"));
    connect_by_hand(&mut a, &mut b);
    let selected = a.events("selected-pair");
    assert!(!selected.is_empty(), "{}", a.describe());
    drop(b); // killed
    let status = a.wait(RUN_TIMEOUT).expect("exits by itself");
    assert!(!status.success(), "{}", a.describe());
    let lost = a.events("consent-lost");
    assert_eq!(lost.len(), 1, "{}", a.describe());
    let last = selected.last().unwrap();
    assert_eq!(lost[0]["local"], last["local"], "{}", a.describe());
    assert_eq!(lost[0]["remote"], last["remote"], "{}", a.describe());
    let json = a.json();
    let at = |name: &str| {
        json.iter()
            .position(|v| v.get("event").and_then(Value::as_str) == Some(name))
    };
    assert!(at("consent-lost") < at("failed"), "{}", a.describe());
}

/// RFC 8838 §8.2 through `floe ice`: after the remote's end-of-candidates, a checklist
/// whose every pair failed fails at once, well before the 30 s connect timeout (and
/// before `--timeout`); its own end-of-candidates line comes after its candidates.
#[test]
fn floe_ice_fails_when_every_pair_failed_after_remote_end_of_candidates() {
    // A remote candidate that never answers: a socket of ours that reads nothing.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_floe"));
    cmd.args(["ice", "--controlling", "--loopback", "--timeout", "28"]);
    let mut p = spawn("floe alone", cmd);
    p.send_line(r#"{"ufrag":"abcd","pwd":"0123456789012345678901"}"#)
        .unwrap();
    p.send_line(&format!(
        r#"{{"candidate":"1 1 udp 2130706431 127.0.0.1 {} typ host"}}"#,
        silent.local_addr().unwrap().port()
    ))
    .unwrap();
    p.send_line(r#"{"end-of-candidates":true}"#).unwrap();
    let status = p.wait(RUN_TIMEOUT).expect("exits by itself");
    assert!(!status.success(), "{}", p.describe());
    let failed = p.events("failed");
    assert_eq!(failed.len(), 1, "{}", p.describe());
    assert!(
        failed[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("ICE failed")),
        "failed by end-of-candidates, not by the timeout\n{}",
        p.describe()
    );
    assert!(!p.events("pair-failed").is_empty(), "{}", p.describe());
    let json = p.json();
    let eoc = json
        .iter()
        .position(|v| v.get("end-of-candidates") == Some(&Value::Bool(true)))
        .expect("end-of-candidates");
    let last_candidate = json
        .iter()
        .rposition(|v| v.get("candidate").is_some())
        .expect("a candidate");
    assert!(last_candidate < eoc, "{}", p.describe());
}

/// After [`cross`] of agents with `streams` streams of `components` components: every
/// (stream, component) was nominated on both sides and data arrived on each; with
/// several streams, each signalled its own credentials. A side that prints no `stream`
/// (a single-stream peer script) counts as stream 0.
fn assert_streams(a: &LineProcess, b: &LineProcess, streams: u64, components: u64) {
    let report = format!("{}\n{}", a.describe(), b.describe());
    let stream_of = |v: &Value| v.get("stream").and_then(Value::as_u64).unwrap_or(0);
    let component_of = |v: &Value| v.get("component").and_then(Value::as_u64).unwrap_or(1);
    for p in [a, b] {
        let credentials: Vec<Value> = p
            .json()
            .into_iter()
            .filter(|v| v.get("ufrag").is_some())
            .collect();
        assert_eq!(credentials.len() as u64, streams, "{}\n{report}", p.name);
        for (i, c) in credentials.iter().enumerate() {
            assert_eq!(stream_of(c), i as u64, "{report}");
        }
        for s in 0..streams {
            for c in 1..=components {
                assert!(
                    p.events("nominated")
                        .iter()
                        .any(|e| stream_of(e) == s && component_of(e) == c),
                    "{}: stream {s} component {c} not nominated\n{report}",
                    p.name
                );
                assert!(
                    p.events("data")
                        .iter()
                        .any(|e| stream_of(e) == s && component_of(e) == c),
                    "{}: no data on stream {s} component {c}\n{report}",
                    p.name
                );
                let signalled = p.json().iter().any(|v| {
                    v.get("candidate")
                        .and_then(Value::as_str)
                        .and_then(|c| c.split_whitespace().nth(1))
                        .and_then(|n| n.parse::<u64>().ok())
                        == Some(c)
                        && stream_of(v) == s
                });
                assert!(signalled, "{}: no candidate of {s}/{c}\n{report}", p.name);
            }
        }
    }
    if streams > 1 {
        let ufrags: std::collections::HashSet<String> = a
            .json()
            .iter()
            .filter_map(|v| v.get("ufrag").and_then(Value::as_str).map(str::to_owned))
            .collect();
        assert_eq!(
            ufrags.len() as u64,
            streams,
            "one ufrag per stream\n{report}"
        );
    }
}

#[test]
fn floe_ice_with_itself_two_streams_of_two_components() {
    let more = ["--streams", "2", "--components", "2"];
    let (a, b) = cross(
        spawn(
            "floe controlling",
            floe_ice_with(true, None, "from-a", &more),
        ),
        spawn(
            "floe controlled",
            floe_ice_with(false, None, "from-b", &more),
        ),
        "host",
    );
    assert_streams(&a, &b, 2, 2);
}

#[test]
fn floe_ice_restarts_two_streams_with_itself() {
    let (a, b) = cross(
        spawn(
            "floe controlling",
            floe_ice_with(
                true,
                None,
                "from-a",
                &["--streams", "2", "--restart-after", "0.3"],
            ),
        ),
        spawn(
            "floe controlled",
            floe_ice_with(false, None, "from-b", &["--streams", "2"]),
        ),
        "host",
    );
    let report = format!("{}\n{}", a.describe(), b.describe());
    for p in [&a, &b] {
        assert_eq!(p.events("restart").len(), 1, "{report}");
        assert!(p.events("failed").is_empty(), "{report}");
        let credentials = p.json().iter().filter(|v| v.get("ufrag").is_some()).count();
        assert_eq!(credentials, 4, "two streams, twice\n{report}");
        for s in 0..2u64 {
            let connected = p
                .events("connected")
                .iter()
                .filter(|e| e["stream"] == s)
                .count();
            assert_eq!(connected, 2, "stream {s} connected again\n{report}");
        }
    }
}

#[test]
fn floe_controlling_with_aioice_controlled_one_stream_of_two_components() {
    if !require_peers(&["aioice"]) {
        return;
    }
    let mut opts = AgentOpts::controlled().send("from-b");
    opts.components = Some(2);
    let (a, b) = cross(
        spawn(
            "floe controlling",
            floe_ice_with(true, None, "from-a", &["--components", "2"]),
        ),
        spawn("aioice controlled", opts.command()),
        "host",
    );
    assert_streams(&a, &b, 1, 2);
}

#[test]
fn aioice_controlling_with_floe_controlled_one_stream_of_two_components() {
    if !require_peers(&["aioice"]) {
        return;
    }
    let mut opts = AgentOpts::controlling().send("from-a");
    opts.components = Some(2);
    let (a, b) = cross(
        spawn("aioice controlling", opts.command()),
        spawn(
            "floe controlled",
            floe_ice_with(false, None, "from-b", &["--components", "2"]),
        ),
        "host",
    );
    assert_streams(&a, &b, 1, 2);
}

#[test]
fn floe_controlling_with_libnice_controlled_one_stream_of_two_components() {
    if !require_peers(&["libnice"]) {
        return;
    }
    let (a, b) = cross(
        spawn(
            "floe controlling",
            floe_ice_with(true, None, "from-a", &["--components", "2"]),
        ),
        spawn(
            "libnice controlled",
            libnice_agent(false, &["--send", "from-b", "--components", "2"]),
        ),
        "host",
    );
    assert_streams(&a, &b, 1, 2);
}
