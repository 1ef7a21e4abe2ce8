//! `floe ice` and `floe serve` against headless Chromium (`tests/support/chromium_peer.py`:
//! an RTCPeerConnection with a data channel, driven over the DevTools protocol, its SDP
//! translated to and from INTEROP.md's JSON lines). Loopback only: Chromium's candidates
//! off 127.0.0.1/::1 are never signalled, its TURN server is on 127.0.0.1.
//!
//! floe ice has no DTLS, so against it the end is ICE connectivity: Chromium's
//! iceConnectionState "connected" and floe's `connected` event, and both sides agree on
//! the pair (Chromium's selected pair, from getStats, is one floe selected). Two
//! Chromiums relay-only through floe serve go further: DTLS, and data-channel messages.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;

use serde_json::Value;
use support::{
    pair_until, pair_until_connected, require_peers, ChromiumOpts, FloeServe, LineProcess,
    ServeOpts,
};

/// Bounds a whole session; only there to catch hangs (Chromium starts in seconds).
const SESSION_LIMIT: std::time::Duration = support::RUN_TIMEOUT;

/// `floe ice` on loopback, exiting once connected and its stdin is closed.
fn floe_ice(controlling: bool, more: &[&str]) -> LineProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_floe"));
    cmd.arg("ice")
        .arg(if controlling {
            "--controlling"
        } else {
            "--controlled"
        })
        .args(["--loopback", "--timeout", "60"])
        .args(more);
    LineProcess::spawn("floe ice", cmd).expect("starting floe ice")
}

fn chromium(opts: &ChromiumOpts) -> LineProcess {
    let name = if opts.controlling {
        "chromium offerer"
    } else {
        "chromium answerer"
    };
    LineProcess::spawn(name, opts.command()).expect("starting chromium_peer.py")
}

/// The words of a candidate line.
fn words(candidate: &str) -> Vec<&str> {
    candidate.split_whitespace().collect()
}

/// `IP PORT` of a candidate line.
fn address_of(candidate: &str) -> Option<String> {
    let w = words(candidate);
    Some(format!("{} {}", w.get(4)?, w.get(5)?))
}

fn typ_of(candidate: &str) -> Option<&str> {
    let mut w = candidate.split_whitespace();
    w.find(|w| *w == "typ")?;
    w.next()
}

/// The candidate lines a peer signalled.
fn signalled(peer: &LineProcess) -> Vec<String> {
    peer.json()
        .iter()
        .filter(|v| v.get("event").is_none())
        .filter_map(|v| v.get("candidate").and_then(Value::as_str).map(String::from))
        .collect()
}

/// Every candidate a Chromium peer gathered: signalled, or left out as not on loopback.
fn gathered(peer: &LineProcess) -> Vec<String> {
    peer.json()
        .iter()
        .filter(|v| v.get("event").is_none_or(|e| e == "skipped-candidate"))
        .filter_map(|v| v.get("candidate").and_then(Value::as_str).map(String::from))
        .collect()
}

/// Whether `remote`, a candidate floe learnt of Chromium, is one Chromium signalled, or
/// a peer-reflexive candidate on loopback from the port of one it gathered. Without a
/// media permission Chromium binds its host sockets to the wildcard address and signals
/// them with the address of the default route; the script keeps those from floe
/// (INTEROP.md's network rule), so floe meets them through their checks from 127.0.0.1
/// (RFC 8445 §7.3.1.3).
fn from_chromium(remote: &str, chrome: &LineProcess) -> bool {
    let Some(address) = address_of(remote) else {
        return false;
    };
    if signalled(chrome)
        .iter()
        .any(|c| address_of(c) == Some(address.clone()))
    {
        return true;
    }
    let w = words(remote);
    typ_of(remote) == Some("prflx")
        && matches!(w.get(4).copied(), Some("127.0.0.1" | "::1"))
        && gathered(chrome).iter().any(|c| words(c).get(5) == w.get(5))
}

/// Checks a finished session: both exited 0 after both said `connected`; floe nominated
/// and selected pairs whose remote is Chromium's; Chromium's selected pair (getStats) is
/// floe's last selected pair seen from its side, nominated and answered. Returns
/// Chromium's selected pair.
fn check_session(floe: &LineProcess, chrome: &LineProcess, crossed: &support::Crossed) -> Value {
    let report = format!("{crossed:?}\n{}\n{}", floe.describe(), chrome.describe());
    assert!(crossed.success(), "{report}");
    let from_floe: Vec<String> = signalled(floe)
        .iter()
        .filter_map(|c| address_of(c))
        .collect();

    // Chromium, controlling, may nominate a second, better pair after the first (the
    // IPv6 loopback pair after the IPv4 one, as libwebrtc switches): floe follows, with a
    // selected-pair event for each. Chromium's selected pair must be one of them (the
    // last, unless a switch was on its way when the session ended).
    assert!(!floe.events("nominated").is_empty(), "{report}");
    let floe_selected = floe.events("selected-pair");
    assert!(!floe_selected.is_empty(), "floe selected no pair\n{report}");
    for pair in &floe_selected {
        let remote = pair["remote"].as_str().unwrap_or_default();
        assert!(
            from_chromium(remote, chrome),
            "floe's selected remote {remote} is not Chromium's\n{report}"
        );
    }

    let selected = chrome.events("selected-pair");
    assert_eq!(selected.len(), 1, "{report}");
    let pair = &selected[0];
    let chrome_local = pair["local"].as_str().unwrap_or_default();
    let chrome_remote = pair["remote"].as_str().unwrap_or_default();
    // getStats' `state` follows the latest check, which may still be out
    // ("in-progress"): an answered check and the nomination are what count.
    assert_eq!(pair["nominated"], true, "{report}");
    assert!(pair["responsesReceived"].as_u64() >= Some(1), "{report}");
    assert!(
        matches!(
            pair["iceConnectionState"].as_str(),
            Some("connected" | "completed")
        ),
        "{report}"
    );
    let same = floe_selected.iter().find(|p| {
        address_of(p["local"].as_str().unwrap_or_default()) == address_of(chrome_remote)
            && address_of(p["remote"].as_str().unwrap_or_default()) == address_of(chrome_local)
    });
    let Some(same) = same else {
        panic!("Chromium's selected pair is none of floe's: the two sides disagree\n{report}");
    };
    assert!(
        address_of(chrome_remote).is_some_and(|a| from_floe.contains(&a)),
        "Chromium's selected remote {chrome_remote} is not a candidate floe signalled\n{report}"
    );
    println!(
        "chromium selected {chrome_local} -> {chrome_remote} ({} requests sent, {} received); \
         floe selected {} -> {}",
        pair["requestsSent"], pair["requestsReceived"], same["local"], same["remote"]
    );
    pair.clone()
}

/// Chromium offers (controlling, RFC 8445 §6.1.1 as WebRTC assigns it); floe answers.
#[test]
fn floe_controlled_chromium_controlling() {
    if !require_peers(&["chromium"]) {
        return;
    }
    let mut floe = floe_ice(false, &[]);
    let mut chrome = chromium(&ChromiumOpts::controlling());
    let crossed = pair_until_connected(&mut floe, &mut chrome, SESSION_LIMIT);
    check_session(&floe, &chrome, &crossed);
}

/// floe offers (controlling); Chromium answers (controlled).
#[test]
fn floe_controlling_chromium_controlled() {
    if !require_peers(&["chromium"]) {
        return;
    }
    let mut floe = floe_ice(true, &[]);
    let mut chrome = chromium(&ChromiumOpts::controlled());
    let crossed = pair_until_connected(&mut floe, &mut chrome, SESSION_LIMIT);
    check_session(&floe, &chrome, &crossed);
}

/// The relayed candidates Chromium signalled: `typ relay` on `floe serve`'s relay ports.
fn relayed_through(chrome: &LineProcess, serve: &FloeServe) -> Vec<String> {
    signalled(chrome)
        .into_iter()
        .filter(|c| {
            let w = words(c);
            typ_of(c) == Some("relay")
                && w.get(4) == Some(&"127.0.0.1")
                && w.get(5)
                    .and_then(|p| p.parse::<u16>().ok())
                    .is_some_and(|p| serve.relay_ports.contains(&p))
        })
        .collect()
}

/// Chromium, relay-only (iceServers turn:127.0.0.1:PORT?transport=udp, iceTransportPolicy
/// 'relay'), allocates on `floe serve` and connects to floe ice's host candidate through
/// it: Chromium's checks and floe's answers cross floe serve's relay.
#[test]
fn chromium_relay_only_through_floe_serve_to_floe_ice() {
    if !require_peers(&["chromium"]) {
        return;
    }
    let serve = FloeServe::start(ServeOpts::default());
    let mut floe = floe_ice(false, &[]);
    let mut chrome = chromium(&ChromiumOpts::controlling().relay_only(serve.addr()));
    let crossed = pair_until_connected(&mut floe, &mut chrome, SESSION_LIMIT);
    let report = format!("{}\n--- floe serve\n{}", chrome.describe(), serve.log());
    let relayed = relayed_through(&chrome, &serve);
    assert!(
        !relayed.is_empty(),
        "Chromium gathered no relayed candidate on floe serve\n{report}"
    );
    assert!(
        signalled(&chrome)
            .iter()
            .all(|c| typ_of(c) == Some("relay")),
        "relay-only Chromium signalled other candidates\n{report}"
    );
    let pair = check_session(&floe, &chrome, &crossed);
    let local = pair["local"].as_str().unwrap_or_default();
    assert_eq!(typ_of(local), Some("relay"), "{report}");
    assert!(
        relayed.iter().any(|c| address_of(c) == address_of(local)),
        "Chromium's selected local {local} is not its relayed candidate\n{report}"
    );
}

/// floe ice (controlling) and Chromium (answerer), both relay-only through `floe serve`:
/// floe's TURN client and Chromium's meet between two allocations. (Chromium's host
/// sockets could not reach a relay-only floe: the script signals none of them, so floe
/// would install no permission for them, RFC 8656 §9.)
#[test]
fn floe_and_chromium_relay_only_through_floe_serve() {
    if !require_peers(&["chromium"]) {
        return;
    }
    let serve = FloeServe::start(ServeOpts::default());
    let turn = serve.addr().to_string();
    let mut floe = floe_ice(
        true,
        &[
            "--turn",
            &turn,
            "--user",
            "bob",
            "--password",
            "secret",
            "--relay-only",
        ],
    );
    let mut chrome = chromium(&ChromiumOpts::controlled().relay_only(serve.addr()));
    let crossed = pair_until_connected(&mut floe, &mut chrome, SESSION_LIMIT);
    let pair = check_session(&floe, &chrome, &crossed);
    let report = format!("{}\n--- floe serve\n{}", chrome.describe(), serve.log());
    for end in ["local", "remote"] {
        let candidate = pair[end].as_str().unwrap_or_default();
        assert_eq!(typ_of(candidate), Some("relay"), "{end}\n{report}");
    }
    assert!(
        relayed_through(&chrome, &serve)
            .iter()
            .any(|c| address_of(c) == address_of(pair["local"].as_str().unwrap_or_default())),
        "{report}"
    );
}

/// Two Chromiums, both relay-only through `floe serve`: each allocates a relay, their
/// checks cross between the two allocations (permissions and channels of floe's TURN
/// server, as a browser uses them), and as both do DTLS (each signals its real
/// fingerprint) the data channel opens and carries a message each way.
#[test]
fn two_chromiums_relay_only_through_floe_serve() {
    if !require_peers(&["chromium"]) {
        return;
    }
    let serve = FloeServe::start(ServeOpts::default());
    let mut offerer = chromium(
        &ChromiumOpts::controlling()
            .relay_only(serve.addr())
            .send("from-offerer"),
    );
    let mut answerer = chromium(
        &ChromiumOpts::controlled()
            .relay_only(serve.addr())
            .send("from-answerer"),
    );
    let got = |p: &LineProcess, text: &str| p.events("data").iter().any(|e| e["data"] == text);
    let crossed = pair_until(&mut offerer, &mut answerer, SESSION_LIMIT, |a, b| {
        got(a, "from-answerer") && got(b, "from-offerer")
    });
    let report = format!(
        "{crossed:?}\n{}\n{}\n--- floe serve\n{}",
        offerer.describe(),
        answerer.describe(),
        serve.log()
    );
    assert!(crossed.success(), "{report}");
    let mut selected = Vec::new();
    for (me, other) in [(&offerer, &answerer), (&answerer, &offerer)] {
        let relayed = relayed_through(me, &serve);
        assert!(!relayed.is_empty(), "{} relayed nothing\n{report}", me.name);
        let pair = me.events("selected-pair");
        assert_eq!(pair.len(), 1, "{report}");
        let (local, remote) = (
            pair[0]["local"].as_str().unwrap_or_default().to_string(),
            pair[0]["remote"].as_str().unwrap_or_default().to_string(),
        );
        assert_eq!(typ_of(&local), Some("relay"), "{report}");
        assert!(
            relayed_through(other, &serve)
                .iter()
                .any(|c| address_of(c) == address_of(&remote)),
            "{} selected {remote}, not the other's relay\n{report}",
            me.name
        );
        // getStats' `state` follows the latest check, which may still be out
        // ("in-progress"): an answered check and the nomination are what count.
        assert_eq!(pair[0]["nominated"], true, "{report}");
        assert!(pair[0]["responsesReceived"].as_u64() >= Some(1), "{report}");
        assert_eq!(pair[0]["dtlsState"], "connected", "{report}");
        selected.push((local, remote));
    }
    assert_eq!(
        address_of(&selected[0].0),
        address_of(&selected[1].1),
        "{report}"
    );
    assert_eq!(
        address_of(&selected[0].1),
        address_of(&selected[1].0),
        "{report}"
    );
}
