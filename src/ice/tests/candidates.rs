//! Candidates: SDP lines (RFC 8839 §5.1), priorities (RFC 8445 §5.1.2), foundations
//! (§5.1.1.3), redundancy (§5.1.3) and credentials (§5.3).

use std::net::SocketAddr;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::ice::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn aioice_form_round_trips_exactly() {
    let line = "6815297761 1 udp 2130706431 127.0.0.1 50000 typ host";
    let c = Candidate::from_sdp(line).unwrap();
    assert_eq!(c.foundation(), "6815297761");
    assert_eq!(c.component(), 1);
    assert_eq!(c.transport(), CandidateTransport::Udp);
    assert_eq!(c.priority(), 2130706431);
    assert_eq!(c.addr(), addr("127.0.0.1:50000"));
    assert_eq!(c.kind(), CandidateKind::Host);
    assert_eq!(c.to_sdp(), line);
    assert_eq!(c.to_string(), line);
    assert_eq!(c.to_sdp_line(), format!("a=candidate:{line}"));
}

#[test]
fn aioice_generated_lines_parse() {
    // What aioice 0.13's Candidate.to_sdp() writes: md5-hex foundations (32 chars),
    // relay with raddr/rport, srflx, and generation.
    for line in [
        "5b8a2f0c8e7e9a4d1b2c3d4e5f60718a 1 udp 2130706431 127.0.0.1 43210 typ host",
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9 1 udp 16777215 127.0.0.1 49152 typ relay raddr 127.0.0.1 rport 40000",
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9 1 udp 1694498815 198.51.100.7 3478 typ srflx raddr 10.0.0.2 rport 5000",
        "6815297761 1 udp 659136 1.2.3.4 31102 typ host generation 0",
        "1 1 udp 16777215 127.0.0.1 50001 typ relay raddr 0.0.0.0 rport 9",
    ] {
        let c: Candidate = line.parse().unwrap();
        assert_eq!(c.to_sdp(), line);
    }
}

#[test]
fn prefixes_are_accepted_and_written_without() {
    let value = "842163049 1 udp 1677729535 192.0.2.3 45664 typ srflx raddr 10.0.1.1 rport 8998";
    for line in [
        value.to_owned(),
        format!("candidate:{value}"),
        format!("a=candidate:{value}"),
        format!("a=candidate:{value}\r\n"),
    ] {
        let c = Candidate::from_sdp(&line).unwrap();
        assert_eq!(c.to_sdp(), value);
        assert_eq!(c.kind(), CandidateKind::ServerReflexive);
        assert_eq!(c.related_address(), Some(addr("10.0.1.1:8998")));
    }
}

#[test]
fn extensions_are_kept_in_order() {
    let line = "1 1 udp 2122260223 192.168.1.5 52000 typ host generation 0 ufrag EsAw network-id 1 network-cost 10";
    let c: Candidate = line.parse().unwrap();
    assert_eq!(c.extension("generation"), Some("0"));
    assert_eq!(c.extension("ufrag"), Some("EsAw"));
    assert_eq!(c.extension("network-id"), Some("1"));
    assert_eq!(c.extensions().len(), 4);
    assert_eq!(c.to_sdp(), line);
}

#[test]
fn tcp_candidates_with_tcptype() {
    let line = "3 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0";
    let c: Candidate = line.parse().unwrap();
    assert_eq!(c.transport(), CandidateTransport::Tcp);
    assert_eq!(c.tcp_type(), Some(TcpType::Active));
    assert_eq!(c.to_sdp(), line);
    let passive: Candidate = "4 1 TCP 1518280447 192.0.2.2 5000 typ host tcptype passive"
        .parse()
        .unwrap();
    assert_eq!(passive.transport(), CandidateTransport::Tcp);
    assert!(c.can_pair_with(&passive));
    assert!(!c.can_pair_with(&c));
    let udp: Candidate = "5 1 udp 1 192.0.2.2 5000 typ host".parse().unwrap();
    assert!(!c.can_pair_with(&udp));
}

#[test]
fn ipv6_candidates() {
    let line = "2 1 udp 2122262783 2001:db8::1 50000 typ host";
    let c: Candidate = line.parse().unwrap();
    assert!(c.addr().is_ipv6());
    assert_eq!(c.to_sdp(), line);
    let v4: Candidate = "2 1 udp 1 192.0.2.1 1 typ host".parse().unwrap();
    assert!(!c.can_pair_with(&v4));
}

#[test]
fn malformed_lines_are_errors() {
    let long = "a".repeat(33);
    let bad = [
        "",
        "candidate:",
        "1 1 udp 1 127.0.0.1 5000 typ",
        "1 1 udp 1 127.0.0.1 5000 host",
        "1 1 udp 1 127.0.0.1 5000 typ nat",
        "1 0 udp 1 127.0.0.1 5000 typ host",
        "1 257 udp 1 127.0.0.1 5000 typ host",
        "1 1 sctp 1 127.0.0.1 5000 typ host",
        "1 1 udp -1 127.0.0.1 5000 typ host",
        "1 1 udp 99999999999 127.0.0.1 5000 typ host",
        "1 1 udp 1 127.0.0.1 70000 typ host",
        "1 1 udp 1 127.0.0.1:5000 5000 typ host",
        "1 1 udp 1 127.0.0.1 5000 typ host generation",
        "1 1 udp 1 127.0.0.1 5000 typ srflx raddr nowhere rport 1",
        "1 1 udp 1 127.0.0.1 5000 typ srflx raddr 10.0.0.1 rport x",
        "f_o 1 udp 1 127.0.0.1 5000 typ host",
        &format!("{long} 1 udp 1 127.0.0.1 5000 typ host"),
    ];
    for line in bad {
        assert!(
            matches!(
                Candidate::from_sdp(line),
                Err(IceError::InvalidCandidate(_))
            ),
            "{line:?} parsed"
        );
    }
    assert_eq!(
        Candidate::from_sdp("1 1 udp 1 8f1e2d3c-aaaa.local 5000 typ host"),
        Err(IceError::HostnameCandidate("8f1e2d3c-aaaa.local".into()))
    );
    let ok = format!("{} 1 udp 1 127.0.0.1 5000 typ host", "a/+9".repeat(8));
    assert!(
        Candidate::from_sdp(&ok).is_ok(),
        "32 ice-chars is the limit"
    );
}

#[test]
fn priorities_follow_rfc8445_5_1_2_1() {
    assert_eq!(
        candidate_priority(CandidateKind::Host, 65535, 1),
        2130706431
    );
    assert_eq!(
        candidate_priority(CandidateKind::PeerReflexive, 65535, 1),
        1862270975
    );
    assert_eq!(
        candidate_priority(CandidateKind::ServerReflexive, 65535, 1),
        1694498815
    );
    assert_eq!(
        candidate_priority(CandidateKind::Relayed, 65535, 1),
        16777215
    );
    assert_eq!(
        candidate_priority(CandidateKind::Host, 65535, 2),
        2130706430
    );
    assert_eq!(candidate_priority(CandidateKind::Host, 0, 256), 126 << 24);

    let mut agent = Agent::new(IceConfig::default(), StdRng::seed_from_u64(1));
    let h1 = agent
        .add_local_candidate(Candidate::host(addr("10.0.0.1:5000")))
        .unwrap();
    let h2 = agent
        .add_local_candidate(Candidate::host(addr("10.0.0.2:5000")))
        .unwrap();
    let h1b = agent
        .add_local_candidate(Candidate::host(addr("10.0.0.1:5001")))
        .unwrap();
    let h3 = agent
        .add_local_candidate(Candidate::host(addr("10.0.0.3:5000")).with_local_preference(7))
        .unwrap();
    let rtcp = agent
        .add_local_candidate(Candidate::host(addr("10.0.0.1:5002")).with_component(2))
        .unwrap();
    // Local preference: 65535 minus the order the interface (base IP) was first seen.
    assert_eq!(
        h1.priority(),
        candidate_priority(CandidateKind::Host, 65535, 1)
    );
    assert_eq!(
        h2.priority(),
        candidate_priority(CandidateKind::Host, 65534, 1)
    );
    assert_eq!(h1b.priority(), h1.priority());
    assert_eq!(h3.priority(), candidate_priority(CandidateKind::Host, 7, 1));
    assert_eq!(rtcp.priority(), h1.priority() - 1);
    let srflx = agent
        .add_local_candidate(Candidate::server_reflexive(
            addr("198.51.100.1:6000"),
            addr("10.0.0.1:5000"),
            addr("192.0.2.100:3478"),
        ))
        .unwrap();
    assert_eq!(
        srflx.priority(),
        candidate_priority(CandidateKind::ServerReflexive, 65535, 1)
    );
    assert_eq!(srflx.base(), Some(addr("10.0.0.1:5000")));
    assert_eq!(srflx.related_address(), Some(addr("10.0.0.1:5000")));
    let relay = agent
        .add_local_candidate(Candidate::relayed(
            addr("192.0.2.100:49152"),
            addr("198.51.100.1:6000"),
            addr("192.0.2.100:3478"),
        ))
        .unwrap();
    assert_eq!(relay.kind(), CandidateKind::Relayed);
    assert_eq!(relay.base(), Some(addr("192.0.2.100:49152")));
    assert_eq!(relay.priority() >> 24, 0);
    assert!(relay
        .to_sdp()
        .ends_with("typ relay raddr 198.51.100.1 rport 6000"));
}

#[test]
fn pair_priority_follows_rfc8445_6_1_2_3() {
    let g = candidate_priority(CandidateKind::Host, 65535, 1);
    let d = candidate_priority(CandidateKind::Relayed, 65535, 1);
    assert_eq!(
        pair_priority(g, d),
        (1 << 32) * u64::from(d) + 2 * u64::from(g) + 1
    );
    assert_eq!(
        pair_priority(d, g),
        (1 << 32) * u64::from(d) + 2 * u64::from(g)
    );
    assert_eq!(pair_priority(5, 5), (1 << 32) * 5 + 10);
}

#[test]
fn foundations_follow_rfc8445_5_1_1_3() {
    let mut agent = Agent::new(IceConfig::default(), StdRng::seed_from_u64(2));
    let stun1 = addr("192.0.2.100:3478");
    let stun2 = addr("192.0.2.200:3478");
    let h1 = agent
        .add_local_candidate(Candidate::host(addr("10.0.0.1:5000")))
        .unwrap();
    let h1b = agent
        .add_local_candidate(Candidate::host(addr("10.0.0.1:5001")))
        .unwrap();
    let h2 = agent
        .add_local_candidate(Candidate::host(addr("10.0.0.2:5000")))
        .unwrap();
    let s1 = agent
        .add_local_candidate(Candidate::server_reflexive(
            addr("198.51.100.1:1"),
            addr("10.0.0.1:5000"),
            stun1,
        ))
        .unwrap();
    let s1b = agent
        .add_local_candidate(Candidate::server_reflexive(
            addr("198.51.100.1:2"),
            addr("10.0.0.1:5001"),
            stun1,
        ))
        .unwrap();
    let s2 = agent
        .add_local_candidate(Candidate::server_reflexive(
            addr("198.51.100.1:3"),
            addr("10.0.0.1:5000"),
            stun2,
        ))
        .unwrap();
    let tcp = agent
        .add_local_candidate(
            Candidate::host(addr("10.0.0.1:5003"))
                .with_transport(CandidateTransport::Tcp)
                .with_tcp_type(TcpType::Passive),
        )
        .unwrap();
    // Same type, base IP, server and transport: same foundation.
    assert_eq!(h1.foundation(), h1b.foundation());
    assert_eq!(s1.foundation(), s1b.foundation());
    // Any of them different: different foundations.
    assert_ne!(h1.foundation(), h2.foundation());
    assert_ne!(h1.foundation(), s1.foundation());
    assert_ne!(s1.foundation(), s2.foundation());
    assert_ne!(h1.foundation(), tcp.foundation());
    for c in agent.local_candidates() {
        assert!(is_valid_foundation(c.foundation()), "{c}");
        assert_eq!(
            Candidate::from_sdp(&c.to_sdp()).unwrap().to_sdp(),
            c.to_sdp()
        );
    }
    assert!(tcp.to_sdp().ends_with("typ host tcptype passive"));
}

#[test]
fn redundant_candidates_are_not_signalled() {
    let mut agent = Agent::new(IceConfig::default(), StdRng::seed_from_u64(3));
    let host = addr("192.0.2.1:5000");
    assert!(agent.add_local_candidate(Candidate::host(host)).is_some());
    assert!(agent.add_local_candidate(Candidate::host(host)).is_none());
    // RFC 8445 §5.1.3: no NAT, so the server-reflexive address is the host address.
    let srflx = Candidate::server_reflexive(host, host, addr("192.0.2.100:3478"));
    assert!(agent.add_local_candidate(srflx).is_none());
    assert_eq!(agent.local_candidates().len(), 1);
}

#[test]
fn lite_agents_only_signal_host_candidates() {
    let mut agent = Agent::new(IceConfig::lite(), StdRng::seed_from_u64(4));
    assert_eq!(agent.role(), IceRole::Controlled);
    assert!(agent
        .add_local_candidate(Candidate::host(addr("192.0.2.1:5000")))
        .is_some());
    let relay = Candidate::relayed(
        addr("192.0.2.9:1"),
        addr("192.0.2.1:5000"),
        addr("192.0.2.9:3478"),
    );
    assert!(agent.add_local_candidate(relay).is_none());
}

#[test]
fn credentials_are_random_ice_chars_of_enough_entropy() {
    let mut seen = std::collections::HashSet::new();
    for seed in 0..50 {
        let agent = Agent::new(IceConfig::default(), StdRng::seed_from_u64(seed));
        let (ufrag, pwd) = agent.local_credentials();
        // 8 and 24 chars of a 64-symbol alphabet: 48 and 144 bits (>= 24 and 128).
        assert_eq!(ufrag.len(), UFRAG_LEN);
        assert_eq!(pwd.len(), PWD_LEN);
        const { assert!(UFRAG_LEN * 6 >= 24 && PWD_LEN * 6 >= 128) };
        IceCredentials::new(ufrag, pwd).unwrap();
        assert!(seen.insert(ufrag.to_owned()));
        assert!(seen.insert(pwd.to_owned()));
    }
    assert!(IceCredentials::new("abc", "0123456789012345678901").is_err());
    assert!(IceCredentials::new("abcd", "012345678901234567890").is_err());
    assert!(IceCredentials::new("ab:d", "0123456789012345678901").is_err());
}

fn arb_candidate() -> impl Strategy<Value = Candidate> {
    (
        "[A-Za-z0-9+/]{1,32}",
        1u16..=256,
        any::<bool>(),
        any::<u32>(),
        any::<std::net::IpAddr>(),
        any::<u16>(),
        0usize..4,
        proptest::option::of((any::<std::net::IpAddr>(), any::<u16>())),
        proptest::collection::vec(("[a-z][a-z-]{0,10}", "[A-Za-z0-9]{1,8}"), 0..3),
    )
        .prop_filter_map(
            "raddr/rport are not extensions",
            |(f, comp, tcp, prio, ip, port, kind, rel, ext)| {
                if ext.iter().any(|(n, _)| n == "raddr" || n == "rport") {
                    return None;
                }
                let kind = ["host", "srflx", "prflx", "relay"][kind];
                let transport = if tcp { "tcp" } else { "udp" };
                let mut line = format!("{f} {comp} {transport} {prio} {ip} {port} typ {kind}");
                if let Some((rip, rport)) = rel {
                    line += &format!(" raddr {rip} rport {rport}");
                }
                for (n, v) in ext {
                    line += &format!(" {n} {v}");
                }
                Some(Candidate::from_sdp(&line).unwrap())
            },
        )
}

proptest! {
    #[test]
    fn sdp_round_trips(c in arb_candidate()) {
        let line = c.to_sdp();
        let again = Candidate::from_sdp(&line).unwrap();
        prop_assert_eq!(again.to_sdp(), line);
        prop_assert_eq!(again, c);
    }

    #[test]
    fn sdp_parser_never_panics(s in "\\PC{0,120}") {
        let _ = Candidate::from_sdp(&s);
    }

    #[test]
    fn sdp_parser_never_panics_on_near_misses(words in proptest::collection::vec(
        prop_oneof![
            Just("1".to_owned()), Just("udp".to_owned()), Just("typ".to_owned()),
            Just("host".to_owned()), Just("raddr".to_owned()), Just("rport".to_owned()),
            Just("127.0.0.1".to_owned()), Just("::1".to_owned()), "[a-z0-9.:]{0,6}"
        ], 0..14)) {
        let _ = Candidate::from_sdp(&words.join(" "));
    }
}

/// A host candidate as Chromium signals it (mDNS on by default): its address is a
/// `UUID.local` name, with Chromium's extension attributes after `typ`.
#[test]
fn chromium_mdns_host_candidates_are_read_once_resolved_and_signalled_with_the_name() {
    let line = "candidate:3442447574 1 udp 2122260223 \
                1C8A3A5F-6B1A-4F9C-9A8E-1234567890AB.local 54321 typ host generation 0 \
                ufrag EsAw network-id 1 network-cost 10";
    let name = "1c8a3a5f-6b1a-4f9c-9a8e-1234567890ab.local";
    assert_eq!(
        Candidate::from_sdp(line),
        Err(IceError::HostnameCandidate(
            "1C8A3A5F-6B1A-4F9C-9A8E-1234567890AB.local".into()
        ))
    );
    let ip: std::net::IpAddr = "192.0.2.44".parse().unwrap();
    let c = Candidate::from_sdp_resolved(line, ip).unwrap();
    assert_eq!(c.addr(), std::net::SocketAddr::new(ip, 54321));
    assert_eq!(c.kind(), CandidateKind::Host);
    assert_eq!(c.priority(), 2122260223);
    assert_eq!(c.mdns_name(), Some(name));
    assert_eq!(c.extension("ufrag"), Some("EsAw"));
    assert!(c.to_sdp().contains(name), "{}", c.to_sdp());
    // An IP candidate ignores the resolved address.
    let plain = Candidate::from_sdp_resolved("1 1 udp 1 127.0.0.1 5000 typ host", ip).unwrap();
    assert_eq!(
        plain.addr().ip(),
        "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(plain.mdns_name(), None);
    // A local host candidate signals its name instead of its address.
    let local = Candidate::host("192.0.2.5:4000".parse().unwrap()).with_mdns_name(name);
    assert!(local.to_sdp().contains(&format!(" {name} 4000 typ host")));
    assert!(!local.to_sdp().contains("192.0.2.5"));
}

#[test]
fn hiding_the_related_address_keeps_the_base() {
    let base = addr("192.168.1.20:50000");
    let srflx =
        Candidate::server_reflexive(addr("203.0.113.9:61000"), base, addr("198.51.100.1:3478"));
    let hidden = srflx.clone().with_related_address_hidden();
    assert_eq!(hidden.related_address(), Some(addr("0.0.0.0:0")));
    assert_eq!(hidden.base(), srflx.base());
    assert!(
        hidden.to_sdp().ends_with("typ srflx raddr 0.0.0.0 rport 0"),
        "{hidden}"
    );
    assert!(!hidden.to_sdp().contains("192.168.1.20"));
    let v6 = Candidate::server_reflexive(
        addr("[2001:db8::9]:61000"),
        addr("[fd00::20]:50000"),
        addr("[2001:db8::1]:3478"),
    );
    assert_eq!(
        v6.with_related_address_hidden().related_address(),
        Some(addr("[::]:0"))
    );
    // A host candidate has no related address to hide.
    let host = Candidate::host(base).with_related_address_hidden();
    assert_eq!(host.related_address(), None);
}
