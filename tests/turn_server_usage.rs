//! Per-user usage of the real `floe serve` binary: the per-user metrics under a bounded
//! label set (`--usage-top-users`), a flood of wrong usernames that adds no label, and the
//! JSON usage line (`--log-format json`, target `floe::usage`) of an allocation its client
//! deleted. floe's own `TurnClient` is the client, a UDP echo on 127.0.0.1 the peer.

#[path = "support/mod.rs"]
mod support;

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::time::{Duration, Instant};

use floe::stun::attribute::{ErrorCode, Nonce};
use floe::stun::Message;
use floe::turn::client::ClientEvent;
use rand::Rng;
use serde_json::Value;
use support::{echo_peer, raw_allocate, Client, FloeServe, ServeOpts, Signed};

/// Bounds every wait; only catches hangs.
const LIMIT: Duration = Duration::from_secs(30);

/// Allocates, binds a channel to `peer` and relays one message there and back; returns
/// the relayed address.
async fn allocate_and_relay(client: &mut Client, peer: SocketAddr, message: &[u8]) -> SocketAddr {
    let relayed = client.allocate().await;
    client.channel_to(peer).await;
    client.echo(peer, message).await;
    relayed
}

fn error_code(m: &Message) -> Option<u16> {
    m.get::<ErrorCode>().map(|e| e.unwrap().code)
}

/// The `floe_user_*` samples of a scrape, sorted.
fn user_series(floe: &FloeServe) -> Vec<String> {
    let mut names: Vec<String> = floe
        .metrics()
        .into_keys()
        .filter(|k| k.starts_with("floe_user_"))
        .collect();
    names.sort();
    names
}

/// The lines of floe's log with target `floe::usage`, once `want` of them are there.
fn wait_usage_lines(floe: &FloeServe, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let log = floe.log();
        let lines: Vec<Value> = log
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}"))
            })
            .filter(|v: &Value| v["target"] == "floe::usage")
            .collect();
        if lines.len() >= want {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{want} usage lines not logged in {LIMIT:?}\n--- the log\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[actix_rt::test]
async fn usage_by_user_is_bounded_and_an_ended_allocation_logs_one_json_line() {
    let floe = FloeServe::start(
        ServeOpts {
            users: vec!["alice:wonderland".into(), "carol:secret".into()],
            ..ServeOpts::default()
        }
        .metrics()
        .arg("--log-format=json")
        .arg("--usage-top-users=1")
        // The flood below waits for each answer: no rate limit on them.
        .arg("--unauth-rate=0"),
    );
    let peer = echo_peer().await;

    // alice allocates first and gets the one label; carol counts as other.
    let mut alice = Client::connect(floe.addr(), "alice", "wonderland").await;
    let alice_relayed = allocate_and_relay(&mut alice, peer, b"hello from alice").await;
    let mut carol = Client::connect(floe.addr(), "carol", "secret").await;
    allocate_and_relay(&mut carol, peer, b"carol here").await;

    // Relayed bytes reach the per-user counters within a sync period.
    for (user, n) in [("alice", 16), ("other", 10)] {
        for direction in ["client_to_peer", "peer_to_client"] {
            floe.wait_metric(
                &format!(
                    r#"floe_user_relayed_bytes_total{{user="{user}",direction="{direction}"}}"#
                ),
                |v| v == n,
            );
        }
    }
    let m = floe.metrics();
    for user in ["alice", "other"] {
        assert_eq!(
            m[&format!(r#"floe_user_allocations_active{{user="{user}"}}"#)],
            1
        );
        assert_eq!(
            m[&format!(r#"floe_user_allocations_created_total{{user="{user}"}}"#)],
            1
        );
    }
    let series = user_series(&floe);
    assert_eq!(series.len(), 2 * 5, "alice and other only: {series:?}");
    assert!(!series.iter().any(|s| s.contains("carol")), "{series:?}");

    // A flood of Allocates with 1000 made-up usernames: 401s, no new label.
    let socket = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let challenge = raw_allocate(&socket, floe.addr(), None).expect("a 401 challenge");
    assert_eq!(error_code(&challenge), Some(401));
    let nonce = challenge
        .get::<Nonce>()
        .unwrap()
        .unwrap()
        .as_str()
        .to_owned();
    let mut refused = 0;
    for _ in 0..1000 {
        let name = format!("u{:016x}", rand::thread_rng().gen::<u64>());
        let answer = raw_allocate(
            &socket,
            floe.addr(),
            Some(Signed {
                user: &name,
                password: "guess",
                nonce: &nonce,
            }),
        );
        if answer.is_some_and(|m| error_code(&m) == Some(401)) {
            refused += 1;
        }
    }
    assert!(refused > 0, "no 401 to the flood");
    // And alice's name with a wrong password: counted under her label.
    let wrong = raw_allocate(
        &socket,
        floe.addr(),
        Some(Signed {
            user: "alice",
            password: "guess",
            nonce: &nonce,
        }),
    );
    assert_eq!(wrong.as_ref().and_then(error_code), Some(401));
    floe.wait_metric(r#"floe_user_unauthorized_total{user="alice"}"#, |v| v == 1);
    floe.wait_metric(r#"floe_user_unauthorized_total{user="other"}"#, |v| {
        v >= refused
    });
    assert_eq!(user_series(&floe), series, "the flood added no series");

    // alice deletes her allocation: one usage line, in JSON, with what she relayed.
    alice.handle.refresh(Duration::ZERO).await.unwrap();
    alice
        .until("deleted", |e| {
            matches!(e, ClientEvent::Deleted).then_some(())
        })
        .await;
    let lines = wait_usage_lines(&floe, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (line, f) = (&lines[0], &lines[0]["fields"]);
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(f["message"], "allocation ended", "{line}");
    assert_eq!(
        (&f["user"], &f["reason"]),
        (&"alice".into(), &"client".into()),
        "{line}"
    );
    assert_eq!(f["relayed"], alice_relayed.to_string(), "{line}");
    assert_eq!(f["server"], floe.addr().to_string(), "{line}");
    assert_eq!(f["transport"], "udp", "{line}");
    let client: SocketAddr = f["client"].as_str().unwrap().parse().unwrap();
    assert_eq!(client.port(), alice.handle.local_addr().port(), "{line}");
    assert!(
        f["id"].as_str().is_some_and(|id| id.contains('-')),
        "{line}"
    );
    assert_eq!(
        (f["bytes_to_peer"].as_u64(), f["bytes_to_client"].as_u64()),
        (Some(16), Some(16)),
        "{line}"
    );
    assert_eq!(
        (
            f["packets_to_peer"].as_u64(),
            f["packets_to_client"].as_u64()
        ),
        (Some(1), Some(1)),
        "{line}"
    );
    assert!(f["duration_s"].as_f64().is_some_and(|d| d >= 0.0), "{line}");
    floe.wait_metric(r#"floe_user_allocations_active{user="alice"}"#, |v| v == 0);
    assert_eq!(
        floe.metric(r#"floe_user_allocations_active{user="other"}"#),
        1
    );
}
