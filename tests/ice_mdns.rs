//! mDNS host candidates (issue 16, draft-ietf-mmusic-mdns-ice-candidates): `floe ice
//! --mdns` signals its IPv4 host candidates as `UUID.local` names and answers queries for
//! them; remote `.local` candidates are resolved.
//!
//! Multicast DNS goes to 224.0.0.251, so these tests run their agents inside a network
//! namespace of their own with loopback only (tests/support/netns.rs): the queries and
//! answers never reach the machine's own interfaces (INTEROP.md's network rule). They
//! need root and `ip`, as the NAT lab does, and fail saying so unless FLOE_INTEROP=skip.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::netns::{require_lab, Netns};
use support::{aioice_python, pair_json_lines, support_dir, AgentOpts, LineProcess};

const PAIR_TIMEOUT: Duration = Duration::from_secs(60);

fn floe_ice(ns: &Netns, controlling: bool, send: &str, mdns: bool) -> Command {
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_floe"));
    cmd.arg("ice")
        .arg(if controlling {
            "--controlling"
        } else {
            "--controlled"
        })
        .args([
            "--loopback",
            "--send",
            send,
            "--timeout",
            "30",
            "--log",
            "debug",
        ]);
    if mdns {
        cmd.arg("--mdns");
    }
    cmd
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

/// The connection-address of a candidate line.
fn address(candidate: &str) -> &str {
    candidate.split_whitespace().nth(4).unwrap_or_default()
}

fn got(p: &LineProcess, text: &str) -> bool {
    p.events("data").iter().any(|e| e["data"] == text)
}

/// Every IPv4 host candidate `p` signalled is a `.local` name, and no candidate shows
/// 127.0.0.1.
fn assert_hidden(p: &LineProcess, report: &str) {
    let signalled = candidates(p);
    let hosts: Vec<&String> = signalled
        .iter()
        .filter(|c| c.contains(" typ host") && !address(c).contains(':'))
        .collect();
    assert!(!hosts.is_empty(), "no IPv4 host candidate\n{report}");
    for c in hosts {
        let name = address(c);
        assert!(
            name.ends_with(".local") && name.len() == 36 + ".local".len(),
            "{c:?} is not a UUID.local candidate\n{report}"
        );
    }
    assert!(
        signalled.iter().all(|c| !c.contains("127.0.0.1")),
        "an address leaked\n{report}"
    );
}

#[test]
fn floe_agents_hide_their_host_addresses_and_resolve_each_other() {
    if !require_lab() {
        return;
    }
    let ns = Netns::isolated();
    let mut a = LineProcess::spawn("floe ice A", floe_ice(&ns, true, "from-a", true)).unwrap();
    let mut b = LineProcess::spawn("floe ice B", floe_ice(&ns, false, "from-b", true)).unwrap();
    let outcome = pair_json_lines(&mut a, &mut b, PAIR_TIMEOUT);
    let report = format!("{outcome:?}\n{}\n{}", a.describe(), b.describe());
    assert!(outcome.success(), "{report}");
    assert!(got(&a, "from-b") && got(&b, "from-a"), "{report}");
    assert_hidden(&a, &report);
    assert_hidden(&b, &report);
    // The controlling side resolved the controlled side's name.
    let remote = last_nominated_remote(&a);
    assert!(
        resolved_remote(&a, &remote),
        "A nominated {remote:?}\n{report}"
    );
}

fn last_nominated_remote(p: &LineProcess) -> String {
    p.events("nominated")
        .last()
        .and_then(|n| n["remote"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Whether `p` nominated the `.local` host candidate it resolved, or the peer-reflexive
/// one its resolution then matched (RFC 8445 §7.3.1.3: the peer's check may come before
/// the name is resolved, and the pair is nominated as peer-reflexive at once).
fn resolved_remote(p: &LineProcess, remote: &str) -> bool {
    (address(remote).ends_with(".local") && remote.contains(" typ host"))
        || (remote.contains(" typ prflx")
            && p.stderr()
                .contains("peer-reflexive remote candidate signalled"))
}

#[test]
fn aioice_resolves_the_names_floe_signals() {
    if !require_lab() {
        return;
    }
    let ns = Netns::isolated();
    // aioice controls: it pairs only what it learns, and floe signals nothing but names.
    let floe = floe_ice(&ns, false, "from-floe", true);
    let mut aioice = ns.command(aioice_python());
    aioice
        .arg("-u")
        .arg(support_dir().join("aioice_agent.py"))
        .args(AgentOpts::controlling().send("from-aioice").args())
        .arg("--verbose");
    let mut floe = LineProcess::spawn("floe ice", floe).unwrap();
    let mut aioice = LineProcess::spawn("aioice", aioice).unwrap();
    let outcome = pair_json_lines(&mut floe, &mut aioice, PAIR_TIMEOUT);
    let report = format!("{outcome:?}\n{}\n{}", floe.describe(), aioice.describe());
    assert!(outcome.success(), "{report}");
    assert!(
        got(&floe, "from-aioice") && got(&aioice, "from-floe"),
        "{report}"
    );
    assert_hidden(&floe, &report);
    // aioice's log says it resolved floe's name with its own mDNS client.
    assert!(
        report.contains(".local\" resolved to 127.0.0.1"),
        "aioice did not resolve the name\n{report}"
    );
}

#[test]
fn without_mdns_floe_signals_addresses_and_still_resolves_names() {
    if !require_lab() {
        return;
    }
    let ns = Netns::isolated();
    // A hides its address, B does not: B must resolve A's name.
    let mut a = LineProcess::spawn("floe ice A", floe_ice(&ns, false, "from-a", true)).unwrap();
    let mut b = LineProcess::spawn("floe ice B", floe_ice(&ns, true, "from-b", false)).unwrap();
    let outcome = pair_json_lines(&mut a, &mut b, PAIR_TIMEOUT);
    let report = format!("{outcome:?}\n{}\n{}", a.describe(), b.describe());
    assert!(outcome.success(), "{report}");
    assert_hidden(&a, &report);
    assert!(
        candidates(&b).iter().any(|c| address(c) == "127.0.0.1"),
        "B hides nothing\n{report}"
    );
    let remote = last_nominated_remote(&b);
    assert!(
        resolved_remote(&b, &remote),
        "B (controlling) nominated {remote:?}, not A's resolved name\n{report}"
    );
}
