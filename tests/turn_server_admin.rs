//! The admin HTTP API of the real `floe serve` binary (`--admin`), with floe's own
//! `TurnClient` actor as the TURN client and a UDP socket on 127.0.0.1 as the peer:
//! health and readiness, `/sessions` and ending allocations, the bearer token, and
//! draining by `POST /drain` and by SIGTERM.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use floe::stun::Method;
use floe::turn::client::ClientEvent;
use floe_actors::turn::{TurnClient, TurnClientConfig};
use serde_json::Value;
use support::{Client, FloeServe, ServeOpts};
use tokio::net::UdpSocket;

/// Bounds every wait; only catches hangs.
const LIMIT: Duration = Duration::from_secs(30);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// The sessions the admin API lists (with `query`, e.g. `?user=bob`).
fn sessions(floe: &FloeServe, query: &str, token: Option<&str>) -> Vec<Value> {
    let (code, body) = floe.admin("GET", &format!("/sessions{query}"), token);
    assert_eq!(code, 200, "{body}");
    match json(&body) {
        Value::Array(a) => a,
        other => panic!("not an array: {other}"),
    }
}

/// One metric from the admin API's `/metrics`.
fn admin_metric(floe: &FloeServe, name: &str, token: Option<&str>) -> u64 {
    let (code, body) = floe.admin("GET", "/metrics", token);
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
}

/// Waits for floe to exit; its status.
fn wait_exit(floe: &mut FloeServe) -> ExitStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = floe.child.try_wait() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "floe did not exit in {LIMIT:?}\n--- its log\n{}",
            floe.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[actix_rt::test]
async fn sessions_show_allocations_and_deleting_one_ends_it_with_437() {
    let floe = FloeServe::start(ServeOpts::default().admin().metrics());
    assert_eq!(floe.admin("GET", "/healthz", None).0, 200);
    assert_eq!(floe.admin("GET", "/readyz", None).0, 200);
    assert!(sessions(&floe, "", None).is_empty());

    let before = unix_now();
    let mut a = Client::connect(floe.addr(), "bob", "secret").await;
    let relayed = a.allocate().await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let channel = a
        .handle
        .channel_bind(peer_addr)
        .await
        .expect("channel bind");
    a.until("channel bound", |e| {
        matches!(e, ClientEvent::ChannelBound { .. }).then_some(())
    })
    .await;
    a.handle.send_to(peer_addr, &b"hello"[..]).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(LIMIT, peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"hello"[..], relayed));
    peer.send_to(b"world!", relayed).await.unwrap();
    a.until("data back", |e| {
        matches!(e, ClientEvent::Data { data, .. } if &data[..] == b"world!").then_some(())
    })
    .await;

    let list = sessions(&floe, "", None);
    assert_eq!(list.len(), 1, "{list:?}");
    let s = &list[0];
    assert_eq!(s["user"], "bob");
    assert_eq!(s["transport"], "udp");
    assert_eq!(s["server"], floe.addr().to_string());
    let client: SocketAddr = s["client"].as_str().unwrap().parse().unwrap();
    assert_eq!(client.port(), a.handle.local_addr().port());
    assert_eq!(s["relayed"], serde_json::json!([relayed.to_string()]));
    let (created, expires) = (
        s["created"].as_u64().unwrap(),
        s["expires"].as_u64().unwrap(),
    );
    // Unix time in whole seconds, from a clock reading at start: a second of slack.
    assert!(before <= created + 1 && created <= unix_now(), "{s}");
    assert!(expires > created, "{s}");
    assert_eq!(s["permissions"][0]["peer"], "127.0.0.1", "{s}");
    assert_eq!(s["channels"][0]["number"], channel, "{s}");
    assert_eq!(s["channels"][0]["peer"], peer_addr.to_string(), "{s}");
    assert_eq!(s["bytes_to_peer"], 5, "{s}");
    assert_eq!(s["packets_to_peer"], 1, "{s}");
    assert_eq!(s["bytes_to_client"], 6, "{s}");
    assert_eq!(s["packets_to_client"], 1, "{s}");
    assert_eq!(sessions(&floe, "?user=bob", None).len(), 1);
    assert!(sessions(&floe, "?user=alice", None).is_empty());

    // The admin API serves the metrics that --metrics serves.
    assert_eq!(admin_metric(&floe, "floe_allocations_active", None), 1);
    assert_eq!(floe.metric("floe_allocations_active"), 1);

    let id = s["id"].as_str().unwrap().to_owned();
    let (code, body) = floe.admin("DELETE", &format!("/sessions/{id}"), None);
    assert_eq!(
        (code, json(&body)),
        (200, serde_json::json!({"deleted": 1}))
    );
    assert!(sessions(&floe, "", None).is_empty());
    assert_eq!(
        admin_metric(&floe, "floe_allocations_ended_by_operator_total", None),
        1
    );
    assert_eq!(admin_metric(&floe, "floe_allocations_active", None), 0);
    // The client learns at its next request.
    a.handle.refresh(Duration::from_secs(600)).await.unwrap();
    assert_eq!(a.outcome(Method::REFRESH).await, Some(437));
    assert_eq!(
        floe.admin("DELETE", &format!("/sessions/{id}"), None).0,
        404
    );
    assert_eq!(floe.admin("DELETE", "/sessions/nonsense", None).0, 400);
    assert_eq!(floe.admin("DELETE", "/sessions", None).0, 400, "no user");

    // Every allocation of a user at once.
    let mut b = Client::connect(floe.addr(), "bob", "secret").await;
    let mut c = Client::connect(floe.addr(), "bob", "secret").await;
    b.allocate().await;
    c.allocate().await;
    assert_eq!(sessions(&floe, "?user=bob", None).len(), 2);
    let (code, body) = floe.admin("DELETE", "/sessions?user=bob", None);
    assert_eq!(
        (code, json(&body)),
        (200, serde_json::json!({"deleted": 2}))
    );
    assert!(sessions(&floe, "", None).is_empty());
    b.handle.refresh(Duration::from_secs(600)).await.unwrap();
    assert_eq!(b.outcome(Method::REFRESH).await, Some(437));
    assert_eq!(
        admin_metric(&floe, "floe_allocations_ended_by_operator_total", None),
        3
    );
    assert_eq!(floe.admin("GET", "/nowhere", None).0, 404);
    assert_eq!(floe.admin("POST", "/sessions", None).0, 405);
}

#[actix_rt::test]
async fn a_token_guards_everything_but_health_and_readiness() {
    let floe = FloeServe::start(ServeOpts::default().admin_token("t0k3n"));
    assert_eq!(floe.admin("GET", "/healthz", None).0, 200);
    assert_eq!(floe.admin("GET", "/readyz", None).0, 200);
    for (method, path) in [
        ("GET", "/sessions"),
        ("GET", "/metrics"),
        ("DELETE", "/sessions?user=bob"),
        ("DELETE", "/sessions/0-1"),
        ("POST", "/drain"),
    ] {
        assert_eq!(floe.admin(method, path, None).0, 401, "{method} {path}");
        assert_eq!(
            floe.admin(method, path, Some("wrong")).0,
            401,
            "{method} {path}"
        );
    }
    // The refused drain did not start.
    assert_eq!(floe.admin("GET", "/readyz", None).0, 200);
    let mut a = Client::connect(floe.addr(), "bob", "secret").await;
    a.allocate().await;
    assert_eq!(sessions(&floe, "", Some("t0k3n")).len(), 1);
    assert_eq!(
        admin_metric(&floe, "floe_allocations_active", Some("t0k3n")),
        1
    );
}

#[actix_rt::test]
async fn a_drain_refuses_new_allocations_and_exits_after_the_last_one() {
    let mut floe = FloeServe::start(ServeOpts::default().admin());
    let mut a = Client::connect(floe.addr(), "bob", "secret").await;
    a.allocate().await;

    let (code, body) = floe.admin("POST", "/drain", None);
    assert_eq!(code, 202, "{body}");
    assert_eq!(json(&body)["draining"], true);
    assert_eq!(floe.admin("GET", "/readyz", None).0, 503);
    assert_eq!(floe.admin("GET", "/healthz", None).0, 200);

    // New allocations are refused; the existing one carries on.
    let mut b = Client::connect(floe.addr(), "bob", "secret").await;
    b.handle.allocate().await.unwrap();
    assert_eq!(b.outcome(Method::ALLOCATE).await, Some(403));
    a.handle.refresh(Duration::from_secs(600)).await.unwrap();
    assert_eq!(a.outcome(Method::REFRESH).await, None);
    floe.assert_running();
    assert_eq!(sessions(&floe, "", None).len(), 1);

    // The last allocation ends: floe exits, cleanly.
    let (code, _) = floe.admin("DELETE", "/sessions?user=bob", None);
    assert_eq!(code, 200);
    let status = wait_exit(&mut floe);
    assert!(status.success(), "{status}\n{}", floe.log());
}

#[actix_rt::test]
async fn sigterm_drains_too() {
    let mut floe = FloeServe::start(ServeOpts::default().admin());
    let mut a = Client::connect(floe.addr(), "bob", "secret").await;
    a.allocate().await;
    let pid = nix::unistd::Pid::from_raw(floe.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();

    // Draining: not ready, and new allocations are refused.
    let deadline = Instant::now() + LIMIT;
    while floe.admin("GET", "/readyz", None).0 != 503 {
        assert!(Instant::now() < deadline, "never draining\n{}", floe.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut b = Client::connect(floe.addr(), "bob", "secret").await;
    b.handle.allocate().await.unwrap();
    assert_eq!(b.outcome(Method::ALLOCATE).await, Some(403));
    floe.assert_running();

    // The client deletes its allocation (Refresh with LIFETIME 0): floe exits.
    a.handle.refresh(Duration::ZERO).await.unwrap();
    assert_eq!(a.outcome(Method::REFRESH).await, None);
    let status = wait_exit(&mut floe);
    assert!(status.success(), "{status}\n{}", floe.log());
}

#[actix_rt::test]
async fn the_drain_timeout_ends_a_drain_that_allocations_outlive() {
    let mut floe = FloeServe::start(ServeOpts::default().admin().arg("--drain-timeout").arg("1"));
    let mut a = Client::connect(floe.addr(), "bob", "secret").await;
    a.allocate().await;
    assert_eq!(floe.admin("POST", "/drain", None).0, 202);
    // The allocation stays, so floe waits for --drain-timeout, then ends it and exits.
    let status = wait_exit(&mut floe);
    assert!(status.success(), "{status}\n{}", floe.log());
    assert!(floe.log().contains("drain timeout"), "{}", floe.log());
}

/// A new client of `node` is redirected (300 Try Alternate) to `other` and allocates there:
/// relayed from `other`'s port range.
async fn allocates_at_the_alternate(node: &FloeServe, other: &FloeServe) {
    let logs = || {
        format!(
            "--- redirecting\n{}\n--- other\n{}",
            node.log(),
            other.log()
        )
    };
    let mut client = Client::connect(node.addr(), "bob", "secret").await;
    client.handle.allocate().await.unwrap();
    let to = client
        .until("a redirect", |e| match e {
            ClientEvent::Redirected { to, .. } => Some(*to),
            ClientEvent::Allocated { .. } | ClientEvent::Error { .. } => {
                panic!("{e:?}\n{}", logs())
            }
            _ => None,
        })
        .await;
    assert_eq!(to, other.addr());
    let relayed = client
        .until("allocated there", |e| match e {
            ClientEvent::Allocated { relayed, .. } => Some(relayed[0]),
            ClientEvent::Error { .. } => panic!("{e:?}\n{}", logs()),
            _ => None,
        })
        .await;
    assert!(other.relay_ports.contains(&relayed.port()), "{relayed}");
}

#[actix_rt::test]
async fn a_draining_node_sends_allocating_clients_to_its_alternate_server() {
    let other = FloeServe::start(ServeOpts::default());
    let draining = FloeServe::start(
        ServeOpts::default()
            .admin()
            .arg("--alternate-server")
            .arg(&other.addr().to_string()),
    );
    // An allocation keeps the draining node up (with none left it would exit).
    let mut holder = Client::connect(draining.addr(), "bob", "secret").await;
    holder.allocate().await;
    assert_eq!(draining.admin("POST", "/drain", None).0, 202);
    allocates_at_the_alternate(&draining, &other).await;
    assert_eq!(sessions(&draining, "", None).len(), 1, "the holder's only");
}

/// A node at its total quota sends new clients to its alternate as a draining one does
/// (RFC 8489 §10); a user at the user's own quota still gets 486 there.
#[actix_rt::test]
async fn a_full_node_sends_allocating_clients_to_its_alternate_server() {
    let other = FloeServe::start(ServeOpts::default());
    let full = FloeServe::start(
        ServeOpts::default()
            .admin()
            .arg("--total-quota")
            .arg("1")
            .arg("--alternate-server")
            .arg(&other.addr().to_string()),
    );
    let mut holder = Client::connect(full.addr(), "bob", "secret").await;
    holder.allocate().await;
    allocates_at_the_alternate(&full, &other).await;
    assert_eq!(sessions(&full, "", None).len(), 1, "the holder's only");

    // The user's own quota is no reason to send the user elsewhere.
    let user_full = FloeServe::start(
        ServeOpts::default()
            .arg("--user-quota")
            .arg("1")
            .arg("--alternate-server")
            .arg(&other.addr().to_string()),
    );
    let mut first = Client::connect(user_full.addr(), "bob", "secret").await;
    first.allocate().await;
    let mut second = Client::connect(user_full.addr(), "bob", "secret").await;
    second.handle.allocate().await.unwrap();
    assert_eq!(second.outcome(Method::ALLOCATE).await, Some(486));
}

/// In process, with two worker threads: session ids name their thread, ending one by id
/// ends that one only, and subscribers hear `EndedByOperator` then `Deleted`.
#[actix_rt::test]
async fn in_process_ids_name_their_thread_and_subscribers_hear_of_each_end() {
    use floe_actors::config::{ServeConfig, UserCredential};
    use floe_actors::metrics::Metrics;
    use floe_actors::turn::{SessionFilter, TurnEvent, TurnServer};

    let mut config = ServeConfig::default();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.users = vec!["bob:secret".parse::<UserCredential>().unwrap()];
    config.threads = 2;
    let metrics = Metrics::new();
    let server = TurnServer::start(&config, metrics.clone()).await.unwrap();
    let mut events = server.events();
    let addr = server.local_addrs()[0];
    let mut clients = Vec::new();
    for _ in 0..4 {
        let handle = TurnClient::connect(TurnClientConfig::new(addr, "bob", "secret"))
            .await
            .unwrap();
        let events = handle.events();
        let mut c = Client { handle, events };
        c.allocate().await;
        clients.push(c);
    }
    let list = server.sessions(None).await;
    assert_eq!(list.len(), 4);
    let mut ids: Vec<_> = list.iter().map(|s| s.id).collect();
    ids.sort_by_key(|id| (id.thread, id.allocation));
    ids.dedup();
    assert_eq!(ids.len(), 4, "ids are unique across threads: {ids:?}");
    assert!(ids.iter().all(|id| id.thread < 2));
    assert_eq!(server.sessions(Some("bob")).await.len(), 4);
    assert!(server.sessions(Some("alice")).await.is_empty());

    let first = &list[0];
    assert_eq!(server.end_sessions(SessionFilter::Id(first.id)).await, 1);
    assert_eq!(server.end_sessions(SessionFilter::Id(first.id)).await, 0);
    let remaining = server.sessions(None).await;
    assert_eq!(remaining.len(), 3);
    assert!(remaining.iter().all(|s| s.id != first.id));
    // The subscriber hears of it: EndedByOperator, then Deleted, for that 5-tuple.
    let wait = async {
        let mut ended = None;
        while let Some(e) = events.recv().await {
            match e {
                TurnEvent::EndedByOperator {
                    five_tuple,
                    username,
                } => {
                    assert_eq!(username, "bob");
                    ended = Some(five_tuple);
                }
                TurnEvent::Deleted { five_tuple } if ended.is_some() => {
                    assert_eq!(Some(five_tuple), ended);
                    return five_tuple;
                }
                _ => {}
            }
        }
        panic!("the event stream ended");
    };
    let five_tuple = tokio::time::timeout(LIMIT, wait).await.unwrap();
    assert_eq!(five_tuple.client, first.client);
    assert_eq!(metrics.snapshot().allocations_ended_by_operator, 1);

    assert_eq!(
        server.end_sessions(SessionFilter::User("bob".into())).await,
        3
    );
    assert_eq!(server.allocation_count().await, 0);
    assert_eq!(metrics.snapshot().allocations_ended_by_operator, 4);
    assert_eq!(metrics.snapshot().allocations_active, 0);
    server.shutdown().await;
}

#[actix_rt::test]
async fn an_idle_node_answers_the_drain_then_exits() {
    let mut floe = FloeServe::start(ServeOpts::default().admin());
    let (code, body) = floe.admin("POST", "/drain", None);
    assert_eq!(code, 202, "{body}");
    assert_eq!(json(&body)["allocations"], 0);
    let status = wait_exit(&mut floe);
    assert!(status.success(), "{status}\n{}", floe.log());
    assert!(floe.log().contains("drained"), "{}", floe.log());
}
