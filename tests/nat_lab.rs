//! The NAT lab (issue 16, item 7): two hosts, each behind a kernel NAT built from
//! nftables in its own network namespace, `floe serve` as STUN and TURN server on the
//! public side between them (tests/support/netns.rs draws the topology).
//!
//! - The lab's NATs behave as named: `floe stun` and a probe (tests/support/nat_probe.py)
//!   see one mapping for every destination behind an endpoint-independent one, one per
//!   destination behind a symmetric one, and unsolicited datagrams are filtered out.
//! - `floe ice` on one host and aioice on the other connect across {none, EIM,
//!   symmetric} x {none, EIM, symmetric} as RFC 8445 predicts: with a TURN server every
//!   combination connects; with a STUN server alone, a symmetric NAT facing any NAT does
//!   not (its mapping towards the peer is unknown to the peer, and the other NAT's
//!   filter drops what the peer sends to the mapping it does know), every other
//!   combination does (the hosts' checks open each other's mappings).
//!
//! The lab needs root, `ip`, `nft` and aioice; without them it fails saying so, unless
//! FLOE_INTEROP=skip. Run it alone with
//! `cargo test -p floe-actors --test nat_lab -- --nocapture` to see the matrices.

#[path = "support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::netns::{namespaces_of_this_process, require_lab, Nat, NatLab, LAB_RANGE, SERVER_IP};
use support::{aioice_python, pair_json_lines, support_dir, AgentOpts, ChildGuard, LineProcess};

/// The server's two ports: STUN and TURN on the first, STUN on both (the probe asks both).
const PORTS: [u16; 2] = [3478, 3479];
const USER: &str = "lab";
const PASSWORD: &str = "secret";
/// How long each agent tries before giving up. A combination that connects does so in
/// a second or two; one that cannot costs this long.
const AGENT_TIMEOUT_S: u32 = 15;
/// Bound on a pair of agents, beyond their own timeouts; only there to catch hangs.
const PAIR_TIMEOUT: Duration = Duration::from_secs(AGENT_TIMEOUT_S as u64 + 30);
/// Bound on one run of `floe stun` or the probe; only there to catch hangs.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// The lab tests run one at a time: each builds five namespaces and starts servers, and
/// the timings of the matrix are easier to read without a second lab competing.
static LAB: Mutex<()> = Mutex::new(());

fn lab_lock() -> std::sync::MutexGuard<'static, ()> {
    LAB.lock().unwrap_or_else(|p| p.into_inner())
}

fn server(port: u16) -> SocketAddr {
    (SERVER_IP, port).into()
}

/// `floe serve` in the lab's public namespace on both [`PORTS`], relaying to the lab's
/// addresses (denied by default, allowed explicitly), once it answers a Binding there.
fn floe_serve(lab: &NatLab) -> ChildGuard {
    let mut cmd = lab.public().command(env!("CARGO_BIN_EXE_floe"));
    cmd.arg("serve");
    for port in PORTS {
        cmd.args(["--listen", &server(port).to_string()]);
    }
    cmd.args(["--user", &format!("{USER}:{PASSWORD}")])
        .args(["--allow-peer", LAB_RANGE, "--threads", "1", "--log", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut child = ChildGuard::new(support::spawn(cmd).expect("starting floe serve"));
    let start = Instant::now();
    for port in PORTS {
        let addr = server(port).to_string();
        loop {
            let stun = lab.public().run(
                &[env!("CARGO_BIN_EXE_floe"), "stun", &addr, "--rto", "100"],
                TOOL_TIMEOUT,
            );
            if stun.success() {
                break;
            }
            if let Some(status) = child.try_wait() {
                panic!("floe serve exited ({status}) in the lab");
            }
            assert!(
                start.elapsed() < support::STARTUP_TIMEOUT,
                "floe serve does not answer on {addr} in the lab: {}",
                stun.describe()
            );
        }
    }
    child
}

/// `floe stun` from side `side`'s host: the reflexive address the server saw.
fn floe_stun(lab: &NatLab, side: usize) -> SocketAddr {
    let addr = server(PORTS[0]).to_string();
    let run = lab
        .host(side)
        .run(&[env!("CARGO_BIN_EXE_floe"), "stun", &addr], TOOL_TIMEOUT);
    assert!(run.success(), "{}", run.describe());
    run.stdout
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("floe stun printed no address ({e}): {}", run.describe()))
}

/// What the probe saw from one host.
struct Probe {
    local: SocketAddr,
    mapped: Vec<SocketAddr>,
    /// Whether a datagram from the server's IP but another port got in.
    unsolicited: bool,
}

fn probe_script() -> String {
    support_dir()
        .join("nat_probe.py")
        .to_string_lossy()
        .into_owned()
}

/// The probe from side `side`'s host: its mappings towards both server ports, then
/// whether datagrams sent to the first mapping from another port of the server's IP
/// get through.
fn probe(lab: &NatLab, side: usize) -> Probe {
    let mut cmd = lab.host(side).command(aioice_python());
    cmd.args(["-u", &probe_script(), "probe"]);
    for port in PORTS {
        cmd.arg(server(port).to_string());
    }
    let mut p = LineProcess::spawn("nat probe", cmd).expect("starting the probe");
    let first = p
        .wait_for_json(TOOL_TIMEOUT, |v| v.get("mapped").is_some())
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = |v: &Value| -> SocketAddr {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an address: {v} in {first}"))
    };
    let local = addr(&first["local"]);
    let mapped: Vec<SocketAddr> = first["mapped"]
        .as_array()
        .map(|a| a.iter().map(addr).collect())
        .unwrap_or_default();
    let send = lab.public().run(
        &[
            &aioice_python().to_string_lossy(),
            &probe_script(),
            "send",
            &mapped[0].to_string(),
            "--bind",
            &SERVER_IP.to_string(),
            "--count",
            "3",
        ],
        TOOL_TIMEOUT,
    );
    assert!(send.success(), "{}", send.describe());
    p.send_line("sent").expect("writing to the probe");
    let second = p
        .wait_for_json(TOOL_TIMEOUT, |v| v.get("unsolicited").is_some())
        .unwrap_or_else(|e| panic!("{e}"));
    Probe {
        local,
        mapped,
        unsolicited: !second["unsolicited"].is_null(),
    }
}

#[test]
fn the_lab_nats_map_and_filter_as_named() {
    if !require_lab() {
        return;
    }
    let _lock = lab_lock();
    for nat in Nat::ALL {
        let lab = NatLab::new(nat, nat);
        let _serve = floe_serve(&lab);
        for side in 0..2 {
            let seen = floe_stun(&lab, side);
            assert_eq!(
                seen.ip(),
                lab.public_ip(side),
                "{nat:?}: floe stun saw {seen}"
            );
            let p = probe(&lab, side);
            let what = format!(
                "{nat:?} side {side}: local {}, mapped {:?}, unsolicited {}",
                p.local, p.mapped, p.unsolicited
            );
            println!("{what}");
            assert_eq!(p.mapped.len(), PORTS.len(), "{what}");
            assert!(
                p.mapped.iter().all(|m| m.ip() == lab.public_ip(side)),
                "{what}"
            );
            match nat {
                Nat::None => {
                    assert!(p.mapped.iter().all(|m| *m == p.local), "{what}");
                    assert!(p.unsolicited, "no NAT filters nothing: {what}");
                }
                Nat::Eim => {
                    assert_eq!(p.mapped[0], p.mapped[1], "one mapping for both: {what}");
                    assert!(!p.unsolicited, "filtered by address and port: {what}");
                }
                Nat::Symmetric => {
                    assert_ne!(
                        p.mapped[0], p.mapped[1],
                        "a mapping per destination: {what}"
                    );
                    assert!(!p.unsolicited, "filtered by address and port: {what}");
                }
            }
        }
    }
    assert_eq!(namespaces_of_this_process(), Vec::<String>::new());
}

/// The servers each agent is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Servers {
    Stun,
    StunAndTurn,
}

/// What one combination gave.
struct Cell {
    connected: bool,
    /// `local>remote` candidate types of floe's nominated pair.
    floe_pair: Option<String>,
    /// Whether an end of floe's nominated pair is at the TURN server: a relayed
    /// candidate (floe's own, or aioice's, whether signalled or peer-reflexive).
    floe_pair_relayed: bool,
    elapsed: Duration,
    report: String,
}

fn typ_of(candidate: &str) -> Option<&str> {
    let mut words = candidate.split_whitespace();
    words.find(|w| *w == "typ")?;
    words.next()
}

/// The candidate lines `p` signalled.
fn candidates(p: &LineProcess) -> Vec<String> {
    p.json()
        .iter()
        .filter_map(|v| {
            v.get("candidate")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

/// RFC 8445's prediction: with TURN, always; with STUN alone, unless a symmetric NAT
/// faces another NAT.
fn predicted(a: Nat, b: Nat, servers: Servers) -> bool {
    let blocked = |x: Nat, y: Nat| x == Nat::Symmetric && y != Nat::None;
    servers == Servers::StunAndTurn || !(blocked(a, b) || blocked(b, a))
}

/// `floe ice` in side 0's host and aioice in side 1's, crossed; the lab is checked
/// first to have given each the candidates its NAT and servers should (so that a
/// combination cannot "fail as predicted" because the lab is broken).
fn run_cell(a: Nat, b: Nat, servers: Servers) -> Cell {
    let lab = NatLab::new(a, b);
    let _serve = floe_serve(&lab);
    let stun = server(PORTS[0]).to_string();
    // floe controls with STUN alone, aioice with TURN: each role crosses every NAT pair.
    let floe_controls = servers == Servers::Stun;

    let mut floe_cmd = lab.host(0).command(env!("CARGO_BIN_EXE_floe"));
    floe_cmd
        .arg("ice")
        .arg(if floe_controls {
            "--controlling"
        } else {
            "--controlled"
        })
        .args(["--stun", &stun, "--send", "from-floe"])
        .args(["--timeout", &AGENT_TIMEOUT_S.to_string()]);
    let mut aioice_opts = if floe_controls {
        AgentOpts::controlled()
    } else {
        AgentOpts::controlling()
    }
    .send("from-aioice");
    aioice_opts.stun = Some(server(PORTS[0]));
    aioice_opts.timeout = Some(AGENT_TIMEOUT_S);
    if servers == Servers::StunAndTurn {
        floe_cmd.args(["--turn", &stun, "--user", USER, "--password", PASSWORD]);
        aioice_opts = aioice_opts.turn(server(PORTS[0]), USER, PASSWORD);
    }
    let mut aioice_cmd = lab.host(1).command(aioice_python());
    aioice_cmd
        .arg("-u")
        .arg(support_dir().join("aioice_lab_agent.py"))
        .args(["--host", &lab.host_ip(1).to_string()])
        .args(aioice_opts.args());

    let mut floe = LineProcess::spawn("floe ice", floe_cmd).expect("starting floe ice");
    let mut aioice = LineProcess::spawn("aioice", aioice_cmd).expect("starting aioice");
    let outcome = pair_json_lines(&mut floe, &mut aioice, PAIR_TIMEOUT);
    let report = format!(
        "{} x {} ({servers:?}): {outcome:?}\n{}\n{}",
        a.name(),
        b.name(),
        floe.describe(),
        aioice.describe()
    );

    for (side, p) in [(0, &floe), (1, &aioice)] {
        let signalled = candidates(p);
        let has = |typ: &str, ip: String| {
            signalled
                .iter()
                .any(|c| typ_of(c) == Some(typ) && c.split_whitespace().nth(4) == Some(&ip))
        };
        assert!(has("host", lab.host_ip(side).to_string()), "{report}");
        if lab.nat(side) != Nat::None {
            assert!(has("srflx", lab.wan_ip(side).to_string()), "{report}");
        }
        if servers == Servers::StunAndTurn {
            assert!(has("relay", SERVER_IP.to_string()), "{report}");
        }
    }

    let floe_pair = floe.events("nominated").last().map(|n| {
        let t = |k: &str| {
            typ_of(n[k].as_str().unwrap_or_default())
                .unwrap_or("?")
                .to_string()
        };
        format!("{}>{}", t("local"), t("remote"))
    });
    let floe_pair_relayed = floe.events("nominated").last().is_some_and(|n| {
        ["local", "remote"].iter().any(|k| {
            n[*k].as_str().and_then(|c| c.split_whitespace().nth(4)) == Some(&SERVER_IP.to_string())
        })
    });
    let got = |p: &LineProcess, text: &str| p.events("data").iter().any(|e| e["data"] == text);
    let connected = outcome.success() && got(&floe, "from-aioice") && got(&aioice, "from-floe");
    Cell {
        connected,
        floe_pair,
        floe_pair_relayed,
        elapsed: outcome.elapsed,
        report,
    }
}

/// The matrix as a table: rows are floe's NAT, columns aioice's.
fn table(servers: Servers, cells: &[(Nat, Nat, Cell)]) -> String {
    let roles = match servers {
        Servers::Stun => "STUN only; floe controlling",
        Servers::StunAndTurn => "STUN and TURN; floe controlled",
    };
    let mut out = format!(
        "NAT lab, {roles}. Rows: floe's NAT; columns: aioice's NAT.\n\
         Cell: connected or not (floe's nominated pair, time); ! where RFC 8445 predicts otherwise\n"
    );
    let _ = write!(out, "{:<12}", "floe \\ aioice");
    for b in Nat::ALL {
        let _ = write!(out, "| {:<28}", b.name());
    }
    out.push('\n');
    for a in Nat::ALL {
        let _ = write!(out, "{:<13}", a.name());
        for b in Nat::ALL {
            let (_, _, c) = cells
                .iter()
                .find(|(x, y, _)| *x == a && *y == b)
                .expect("every combination ran");
            let mark = if c.connected == predicted(a, b, servers) {
                " "
            } else {
                "!"
            };
            let text = if c.connected {
                format!(
                    "yes ({}, {:.1} s)",
                    c.floe_pair.as_deref().unwrap_or("?"),
                    c.elapsed.as_secs_f64()
                )
            } else {
                format!("no ({:.1} s)", c.elapsed.as_secs_f64())
            };
            let _ = write!(out, "|{mark}{text:<28}");
        }
        out.push('\n');
    }
    out
}

fn run_matrix(servers: Servers) -> Vec<(Nat, Nat, Cell)> {
    let mut cells = Vec::new();
    for a in Nat::ALL {
        for b in Nat::ALL {
            cells.push((a, b, run_cell(a, b, servers)));
        }
    }
    println!("{}", table(servers, &cells));
    cells
}

#[test]
fn ice_across_the_nat_matrix_connects_as_rfc_8445_predicts() {
    if !require_lab() {
        return;
    }
    let _lock = lab_lock();
    let turn = run_matrix(Servers::StunAndTurn);
    let stun = run_matrix(Servers::Stun);
    let mut wrong = Vec::new();
    for (servers, cells) in [(Servers::StunAndTurn, &turn), (Servers::Stun, &stun)] {
        for (a, b, cell) in cells {
            if cell.connected != predicted(*a, *b, servers) {
                wrong.push(format!(
                    "{} x {} with {servers:?}: connected {}, predicted {}\n{}",
                    a.name(),
                    b.name(),
                    cell.connected,
                    predicted(*a, *b, servers),
                    cell.report
                ));
            }
        }
    }
    // Where STUN alone cannot connect, TURN is what did: floe's pair has a relayed end.
    for (a, b, cell) in &turn {
        if !predicted(*a, *b, Servers::Stun) && cell.connected {
            let pair = cell.floe_pair.as_deref().unwrap_or_default();
            assert!(
                cell.floe_pair_relayed,
                "{} x {}: floe's pair {pair} has no relayed end\n{}",
                a.name(),
                b.name(),
                cell.report
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    assert_eq!(namespaces_of_this_process(), Vec::<String>::new());
}
