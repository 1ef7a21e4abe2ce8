//! External addresses (coturn's `external-ip=PUBLIC[/PRIVATE]`): which address a client
//! is told for its relay, per family and per private address, while data keeps flowing
//! through the address the relay is bound to, and every public address stays denied.

use super::*;

const RELAY4: &str = "198.51.100.1";
const RELAY6: &str = "2001:db8::1";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A server relaying on [`RELAY4`] (and [`RELAY6`] when `dual`), with `mappings`.
fn with_mappings(dual: bool, mappings: &[(&str, Option<&str>)]) -> ScriptedClient {
    ScriptedClient::with(|c| {
        if dual {
            c.relay_ipv6 = Some(ip(RELAY6));
        }
        for (public, private) in mappings {
            c.external.insert(ip(public), private.map(ip)).unwrap();
        }
    })
}

/// 401, then an Allocate of both families; the XOR-RELAYED-ADDRESSes and the
/// XOR-MAPPED-ADDRESS of the response.
fn allocate_dual(h: &mut ScriptedClient) -> (Vec<SocketAddr>, SocketAddr) {
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            AdditionalAddressFamily(AddressFamily::V6).into(),
        ],
    );
    assert_eq!(r.class(), Class::Success, "{:?}", ScriptedClient::code(&r));
    let relayed = r
        .raw_attributes()
        .filter(|(t, _)| *t == XorRelayedAddress::TYPE)
        .map(|(_, v)| {
            XorRelayedAddress::decode(&v, &r.transaction_id())
                .unwrap()
                .0
        })
        .collect();
    (relayed, r.get::<XorMappedAddress>().unwrap().unwrap().0)
}

/// The addresses the driver bound, IPv4 first.
fn bound(h: &ScriptedClient) -> Vec<SocketAddr> {
    let mut b: Vec<SocketAddr> = h.driver.bound.iter().copied().collect();
    b.sort_by_key(|a| a.is_ipv6());
    b
}

#[test]
fn without_mappings_the_relay_is_advertised_as_bound() {
    let mut h = with_mappings(false, &[]);
    let relayed = h.allocate();
    assert_eq!(relayed.ip(), ip(RELAY4));
    assert_eq!(bound(&h), vec![relayed]);
}

#[test]
fn one_mapping_without_private_applies_to_its_family_only() {
    let mut h = with_mappings(true, &[("203.0.113.7", None)]);
    let (relayed, mapped) = allocate_dual(&mut h);
    let b = bound(&h);
    assert_eq!(b.len(), 2);
    assert_eq!(
        relayed,
        vec![SocketAddr::new(ip("203.0.113.7"), b[0].port()), b[1]],
        "the IPv6 relay has no mapping of its family"
    );
    assert_eq!(b[1].ip(), ip(RELAY6));
    // What the server saw, untouched.
    assert_eq!(mapped, h.ft.client);
}

#[test]
fn one_mapping_per_family_for_dual_stack() {
    let mut h = with_mappings(true, &[("2001:db8:ff::7", None), ("203.0.113.7", None)]);
    let (relayed, _) = allocate_dual(&mut h);
    let b = bound(&h);
    assert_eq!(
        relayed,
        vec![
            SocketAddr::new(ip("203.0.113.7"), b[0].port()),
            SocketAddr::new(ip("2001:db8:ff::7"), b[1].port()),
        ]
    );
}

#[test]
fn a_mapping_of_the_private_address_wins_over_the_default() {
    let mut h = with_mappings(
        true,
        &[
            ("203.0.113.50", None),
            ("203.0.113.7", Some(RELAY4)),
            ("203.0.113.8", Some("10.0.0.8")),
            ("2001:db8:ff::7", Some("2001:db8::99")),
        ],
    );
    let (relayed, _) = allocate_dual(&mut h);
    let b = bound(&h);
    assert_eq!(
        relayed,
        vec![SocketAddr::new(ip("203.0.113.7"), b[0].port()), b[1]],
        "IPv4: its own mapping; IPv6: no mapping names it and there is no default"
    );
    // The rule, on its own: the named one, else the family's default, else none.
    let ext = &h.server.config().external;
    assert_eq!(ext.public_for(ip("10.0.0.8")), Some(ip("203.0.113.8")));
    assert_eq!(ext.public_for(ip("10.0.0.9")), Some(ip("203.0.113.50")));
    assert_eq!(
        ext.public_for(ip("2001:db8::99")),
        Some(ip("2001:db8:ff::7"))
    );
    assert_eq!(ext.public_for(ip("2001:db8::98")), None);
}

#[test]
fn a_mapping_of_another_private_address_leaves_the_relay_as_bound() {
    let mut h = with_mappings(false, &[("203.0.113.8", Some("10.0.0.8"))]);
    let relayed = h.allocate();
    assert_eq!(bound(&h), vec![relayed]);
}

#[test]
fn data_flows_through_the_bound_address_and_operators_see_the_advertised_one() {
    let mut h = with_mappings(false, &[("203.0.113.7", Some(RELAY4))]);
    let advertised = h.allocate();
    let relay = bound(&h)[0];
    assert_eq!(advertised, SocketAddr::new(ip("203.0.113.7"), relay.port()));
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[peer_attr("192.0.2.15:40000")],
    );
    assert_eq!(r.class(), Class::Success);
    // The peer's datagrams arrive on the bound socket: relayed to the client.
    assert!(matches!(
        h.peer_data(relay, "192.0.2.15:40000", b"hi"),
        PeerOutput::DataIndication { .. }
    ));
    assert!(matches!(
        h.peer_data(advertised, "192.0.2.15:40000", b"hi"),
        PeerOutput::Drop
    ));
    // The allocation is indexed by what is bound; operators are shown what was told.
    let info: Vec<_> = h.server.allocations(h.now).collect();
    assert_eq!(info[0].relayed, &[relay][..]);
    assert_eq!(h.server.advertised_address(relay), advertised);
}

#[test]
fn every_public_address_is_denied_as_a_peer_also_after_a_reconfiguration() {
    let mut h = ScriptedClient::with(|c| {
        c.external
            .insert(ip("203.0.113.7"), Some(ip(RELAY4)))
            .unwrap();
        c.external.insert(ip("203.0.113.8"), None).unwrap();
        c.external
            .insert(ip("203.0.113.9"), Some(ip("10.0.0.9")))
            .unwrap();
        // Public addresses are denied even inside an allowed block.
        c.policy.allow("203.0.113.0/24".parse().unwrap());
    });
    h.allocate();
    let check = |h: &mut ScriptedClient| {
        for (peer, code) in [
            ("203.0.113.7:5000", Some(403)),
            ("203.0.113.8:5000", Some(403)),
            ("203.0.113.9:5000", Some(403)),
            ("[::ffff:203.0.113.8]:5000", Some(403)),
            ("203.0.113.10:5000", None),
        ] {
            let r = h.request(Method::CREATE_PERMISSION, true, &[peer_attr(peer)]);
            assert_eq!(ScriptedClient::code(&r), code, "{peer}");
        }
    };
    check(&mut h);
    let mut r = Reconfiguration::of(&h.server);
    r.policy = PeerPolicy::default();
    r.policy.allow("203.0.113.0/24".parse().unwrap());
    let now = h.now;
    h.server.reconfigure(now, r);
    check(&mut h);
}

#[test]
fn mappings_that_cannot_be_told_apart_are_refused() {
    let mut e = ExternalAddresses::new();
    e.insert(ip("203.0.113.7"), None).unwrap();
    e.insert(ip("2001:db8:ff::7"), None).unwrap();
    e.insert(ip("203.0.113.8"), Some(ip("10.0.0.8"))).unwrap();
    let err = |public: &str, private: Option<&str>| {
        e.clone()
            .insert(ip(public), private.map(ip))
            .unwrap_err()
            .to_string()
    };
    assert!(
        err("203.0.113.9", None).contains("one mapping without /PRIVATE per address family (IPv4)")
    );
    assert!(err("2001:db8:ff::8", None).contains("(IPv6)"));
    assert!(err("203.0.113.9", Some("10.0.0.8")).contains("10.0.0.8 is mapped twice"));
    assert!(err("203.0.113.9", Some("2001:db8::1")).contains("same family"));
    assert!(err("0.0.0.0", Some("10.0.0.1")).contains("0.0.0.0 is not a usable unicast"));
    assert!(err("203.0.113.9", Some("224.0.0.1")).contains("224.0.0.1 is not a usable"));
    assert_eq!(
        e.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
        ["203.0.113.7", "2001:db8:ff::7", "203.0.113.8/10.0.0.8"]
    );
}
