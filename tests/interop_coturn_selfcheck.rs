//! Self-check of the interop harness in tests/support: coturn's own tools against a coturn
//! it starts, and aioice agents paired with each other, directly and through coturn. When
//! these pass, a failure of the same harness against floe is floe's.

#[path = "support/mod.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use support::{
    pair_json_lines, require_peers, rest_api_credentials, run_python, stun_binding,
    turnutils_stunclient, AgentOpts, Coturn, CoturnOpts, CoturnTls, LineProcess, TempDir,
    TurnutilsPeer, Uclient, RUN_TIMEOUT,
};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn uclient_relays_through_coturn_without_loss() {
    if !require_peers(&["turnserver", "turnutils_uclient", "turnutils_peer"]) {
        return;
    }
    let coturn = Coturn::start(CoturnOpts::default());
    let peer = TurnutilsPeer::spawn();
    let uclient = Uclient::new(coturn.addr())
        .peer(peer.addr())
        .clients(2)
        .messages(20);
    uclient.run().assert_no_loss(uclient.expected_messages());
}

#[test]
fn uclient_with_rest_api_credentials_through_coturn() {
    if !require_peers(&["turnserver", "turnutils_uclient", "turnutils_peer"]) {
        return;
    }
    let coturn = Coturn::start(CoturnOpts::auth_secret("rest-secret").stale_nonce(600));
    let peer = TurnutilsPeer::spawn();
    let uclient = Uclient::new(coturn.addr())
        .rest_secret("rest-secret")
        .peer(peer.addr())
        .clients(2)
        .messages(20);
    uclient.run().assert_no_loss(uclient.expected_messages());
}

#[test]
fn uclient_relays_over_tls_through_coturn_without_loss() {
    if !require_peers(&["turnserver", "turnutils_uclient", "turnutils_peer"]) {
        return;
    }
    let dir = TempDir::new("coturn-tls");
    let (tls, _) = CoturnTls::self_signed(dir.path());
    let coturn = Coturn::start(CoturnOpts::default().tls(tls));
    let peer = TurnutilsPeer::spawn();
    // -t -S: TLS over TCP (turnutils_uclient does not check the certificate).
    let uclient = Uclient::new(coturn.tls_addr().expect("a TLS listener"))
        .peer(peer.addr())
        .clients(2)
        .messages(20)
        .flag("-t")
        .flag("-S");
    uclient.run().assert_no_loss(uclient.expected_messages());
}

#[test]
fn stunclient_sees_loopback_as_reflexive_address() {
    if !require_peers(&["turnserver", "turnutils_stunclient"]) {
        return;
    }
    let coturn = Coturn::start(CoturnOpts::default());
    let report = turnutils_stunclient(coturn.addr());
    let reflexive = report
        .reflexive
        .unwrap_or_else(|| panic!("no reflexive address\n{}", report.finished.describe()));
    assert_eq!(reflexive.ip(), LOOPBACK, "{}", report.finished.describe());
    assert_ne!(reflexive.port(), 0);

    // The harness's own hand-written Binding agrees.
    let mapped = stun_binding(coturn.addr(), Duration::from_secs(30))
        .expect("coturn answers a Binding")
        .expect("with XOR-MAPPED-ADDRESS");
    assert_eq!(mapped.ip(), LOOPBACK);
}

/// Crosses two aioice_agent.py and checks that both nominated a pair whose local
/// candidate is of `typ`, and that each received the other's text.
fn pair_aioice_agents(controlling: AgentOpts, controlled: AgentOpts, typ: &str) {
    let mut a = LineProcess::spawn("aioice controlling", controlling.send("from-a").command())
        .expect("starting aioice_agent.py");
    let mut b = LineProcess::spawn("aioice controlled", controlled.send("from-b").command())
        .expect("starting aioice_agent.py");
    let outcome = pair_json_lines(&mut a, &mut b, RUN_TIMEOUT);
    let report = format!("{outcome:?}\n{}\n{}", a.describe(), b.describe());
    assert!(outcome.success(), "{report}");
    for (agent, other_text) in [(&a, "from-b"), (&b, "from-a")] {
        let nominated = agent.events("nominated");
        assert_eq!(nominated.len(), 1, "{report}");
        let local = nominated[0]["local"].as_str().unwrap_or_default();
        assert!(
            local.ends_with(&format!("typ {typ}")) || local.contains(&format!("typ {typ} ")),
            "{report}"
        );
        assert!(
            agent.events("data").iter().any(|e| e["data"] == other_text),
            "{report}"
        );
    }
}

#[test]
fn aioice_agents_pair_over_loopback_host_candidates() {
    if !require_peers(&["aioice"]) {
        return;
    }
    pair_aioice_agents(AgentOpts::controlling(), AgentOpts::controlled(), "host");
}

#[test]
fn aioice_agents_pair_relay_only_through_coturn() {
    if !require_peers(&["aioice", "turnserver"]) {
        return;
    }
    let coturn = Coturn::start(CoturnOpts::default());
    for tcp in [false, true] {
        let mut controlling = AgentOpts::controlling()
            .turn(coturn.addr(), "bob", "secret")
            .relay_only();
        let mut controlled = AgentOpts::controlled()
            .turn(coturn.addr(), "bob", "secret")
            .relay_only();
        if tcp {
            controlling = controlling.turn_tcp();
            controlled = controlled.turn_tcp();
        }
        pair_aioice_agents(controlling, controlled, "relay");
    }
}

#[test]
fn aioice_relays_data_through_coturn() {
    if !require_peers(&["aioice", "turnserver"]) {
        return;
    }
    let coturn = Coturn::start(CoturnOpts::default());
    let server = coturn.addr().to_string();
    for transport in [&[][..], &["--turn-tcp"][..]] {
        let mut args = vec!["--turn", &server, "--user", "bob", "--password", "secret"];
        args.extend_from_slice(transport);
        let run = run_python("aioice_relay.py", &args, RUN_TIMEOUT);
        let report = run.finished.describe();
        assert!(run.finished.success(), "{report}");
        let ok = run.events("ok");
        assert_eq!(ok.len(), 1, "{report}");
        let relayed: std::net::SocketAddr = ok[0]["relayed"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no relayed address\n{report}"));
        assert!(coturn.relay_ports().contains(&relayed.port()), "{report}");
    }
}

#[test]
fn aioice_relays_with_rest_api_credentials_through_coturn() {
    if !require_peers(&["aioice", "turnserver"]) {
        return;
    }
    let coturn = Coturn::start(CoturnOpts::auth_secret("rest-secret"));
    let (user, password) = rest_api_credentials("rest-secret", "alice", Duration::from_secs(3600));
    let server = coturn.addr().to_string();
    let args = ["--turn", &server, "--user", &user, "--password", &password];
    let run = run_python("aioice_relay.py", &args, RUN_TIMEOUT);
    assert!(run.finished.success(), "{}", run.finished.describe());
    assert_eq!(run.events("ok").len(), 1, "{}", run.finished.describe());
}
