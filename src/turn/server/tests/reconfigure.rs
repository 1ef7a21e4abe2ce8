//! `Server::reconfigure`: credentials, peer policy and limits changed on a live core.

use super::*;

/// Unix time at the fake clock's start (see `config`).
const T0_UNIX: u64 = 1_700_000_000;

/// A fresh 5-tuple for client `n`, with the challenge already fetched.
fn new_client(h: &mut ScriptedClient, n: u16, user: &str, pass: &str) {
    h.ft = five_tuple(&format!("203.0.113.9:{}", 41000 + n));
    h.username = user.to_owned();
    h.password = pass.to_owned();
    let r = h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(401));
}

/// An authenticated Allocate from the current 5-tuple: `None` on success, else the code.
fn allocate(h: &mut ScriptedClient) -> Option<u16> {
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    ScriptedClient::code(&r)
}

#[test]
fn a_removed_user_gets_401_while_its_allocation_relays_on() {
    let mut h = ScriptedClient::new();
    let relay = h.allocate();
    let r = h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.1:7")]);
    assert_eq!(r.class(), Class::Success);
    let bob = h.ft;

    let mut r = Reconfiguration::of(&h.server);
    r.users = StaticUsers::new();
    r.users.insert("alice", "wonderland");
    h.server.reconfigure(h.now, r);

    // bob's next authenticated request, on his allocation or a new one, gets 401.
    let refresh = h.request(Method::REFRESH, true, &[]);
    assert_eq!(ScriptedClient::code(&refresh), Some(401));
    new_client(&mut h, 1, USER, PASS);
    assert_eq!(allocate(&mut h), Some(401));
    // alice, new in the config, allocates.
    new_client(&mut h, 2, "alice", "wonderland");
    assert_eq!(allocate(&mut h), None);
    // bob's allocation still relays what its permission lets through.
    assert!(matches!(
        h.peer_data(relay, "192.0.2.1:7", b"still here"),
        PeerOutput::DataIndication { client, .. } if client == bob
    ));
    assert_eq!(h.server.allocation_count(), 2);
}

#[test]
fn a_rotated_out_secret_works_within_its_grace_and_not_after() {
    let mut h = ScriptedClient::with(|c| {
        c.credentials.rest_secrets = RestApiSecrets::new(["old"]);
    });
    let user = format!("{}:carol", T0_UNIX + 100_000);
    let old_pass = RestApiSecrets::password("old", &user);
    let new_pass = RestApiSecrets::password("new", &user);

    let mut r = Reconfiguration::of(&h.server);
    r.rest_secrets = RestApiSecrets::new(["new"]);
    r.secret_grace = Duration::from_secs(600);
    h.server.reconfigure(h.now, r);

    h.advance(Duration::from_secs(599));
    new_client(&mut h, 1, &user, &old_pass);
    assert_eq!(allocate(&mut h), None, "within the grace");
    new_client(&mut h, 2, &user, &new_pass);
    assert_eq!(allocate(&mut h), None, "the new secret");
    // A second reload within the grace keeps the old secret's deadline, not a new one.
    let r = Reconfiguration::of(&h.server);
    h.server.reconfigure(h.now, r);
    h.advance(Duration::from_secs(2));
    new_client(&mut h, 3, &user, &old_pass);
    assert_eq!(allocate(&mut h), Some(401), "after the grace");
    new_client(&mut h, 4, &user, &new_pass);
    assert_eq!(allocate(&mut h), None);
}

#[test]
fn a_secret_put_back_is_live_again() {
    let mut h = ScriptedClient::with(|c| {
        c.credentials.rest_secrets = RestApiSecrets::new(["a"]);
    });
    let user = format!("{}:dave", T0_UNIX + 100_000);
    let mut r = Reconfiguration::of(&h.server);
    r.rest_secrets = RestApiSecrets::new(["b"]);
    r.secret_grace = Duration::from_secs(10);
    h.server.reconfigure(h.now, r.clone());
    r.rest_secrets = RestApiSecrets::new(["a", "b"]);
    h.server.reconfigure(h.now, r);
    h.advance(Duration::from_secs(3600));
    new_client(&mut h, 1, &user, &RestApiSecrets::password("a", &user));
    assert_eq!(allocate(&mut h), None);
}

#[test]
fn lower_limits_apply_to_new_requests_only() {
    let mut h = ScriptedClient::new();
    let relay = h.allocate();
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[peer_attr("192.0.2.1:1"), peer_attr("192.0.2.2:1")],
    );
    assert_eq!(r.class(), Class::Success);

    let mut r = Reconfiguration::of(&h.server);
    r.max_permissions = 1;
    r.max_bps = 100;
    r.max_lifetime = Duration::from_secs(900);
    h.server.reconfigure(h.now, r);

    // The permissions installed stay, and data flows through them at the old rate.
    let big = [1u8; 1000];
    for peer in ["192.0.2.1:1", "192.0.2.2:1"] {
        assert_ne!(h.peer_data(relay, peer, &big), PeerOutput::Drop, "{peer}");
    }
    // Refreshing one is no new permission; a new one is beyond the cap.
    let r = h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.1:1")]);
    assert_eq!(r.class(), Class::Success);
    let r = h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.3:1")]);
    assert_eq!(ScriptedClient::code(&r), Some(508));
    // A Refresh is capped at the new longest lifetime.
    let r = h.request(Method::REFRESH, true, &[Lifetime(3600).into()]);
    assert_eq!(r.get::<Lifetime>().unwrap().unwrap(), Lifetime(900));

    // A new allocation gets the new max_bps.
    new_client(&mut h, 1, USER, PASS);
    assert_eq!(allocate(&mut h), None);
    let r = h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.1:1")]);
    assert_eq!(r.class(), Class::Success);
    let relay2 = h
        .server
        .allocation(h.server.allocation_of(&h.ft).unwrap())
        .unwrap()
        .relayed[0];
    assert_eq!(h.peer_data(relay2, "192.0.2.1:1", &big), PeerOutput::Drop);
}

#[test]
fn a_new_peer_policy_applies_to_new_permissions_and_keeps_the_servers_own_addresses() {
    let mut h = ScriptedClient::new();
    h.allocate();
    let mut r = Reconfiguration::of(&h.server);
    r.policy = PeerPolicy::default();
    r.policy.allow("198.51.100.0/24".parse().unwrap());
    h.server.reconfigure(h.now, r);
    // 192.0.2.0/24 was allowed by the old policy only.
    let r = h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.1:1")]);
    assert_eq!(ScriptedClient::code(&r), Some(403));
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[peer_attr("198.51.100.7:1")],
    );
    assert_eq!(r.class(), Class::Success);
    // The server's own address stays denied though its block is allowed.
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[peer_attr("198.51.100.1:1")],
    );
    assert_eq!(ScriptedClient::code(&r), Some(403));
}
