//! The workloads end to end against a floe server in this process (its CPU is this
//! process's), and against the bare echo.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use floe_actors::config::ServeConfig;
use floe_actors::metrics::Metrics;
use floe_actors::turn::{ServerHandle, TurnServer};

use crate::report::Value;
use crate::{allocate, binding, client_socket, echo, hold, relay, session};
use crate::{AllocateArgs, BindingArgs, Common, HoldArgs, RelayArgs, Report};

async fn floe_server() -> ServerHandle {
    let mut config = ServeConfig::default();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.users = vec!["bob:secret".parse().unwrap()];
    config.allow_loopback_peers = true;
    config.threads = 1;
    TurnServer::start(&config, Metrics::new()).await.unwrap()
}

fn common(server: SocketAddr) -> Common {
    Common {
        server,
        user: Some(("bob".into(), "secret".into())),
        pid: Some(std::process::id()),
        duration: Duration::from_millis(300),
        warmup: Duration::from_millis(100),
    }
}

fn int(r: &Report, k: &str) -> u64 {
    match r.get(k) {
        Some(Value::Int(n)) => *n,
        other => panic!("{k}: {other:?}\n{}", r.to_table()),
    }
}

fn float(r: &Report, k: &str) -> f64 {
    match r.get(k) {
        Some(Value::Float(f)) => *f,
        other => panic!("{k}: {other:?}\n{}", r.to_table()),
    }
}

#[actix_rt::test]
async fn relay_over_channels_and_indications_loses_nothing() {
    let server = floe_server().await;
    let c = common(server.local_addrs()[0]);
    for indications in [false, true] {
        let args = RelayArgs {
            allocations: 5,
            size: 100,
            window: 2,
            indications,
            peers: 2,
        };
        let r = relay::run(&c, &args).await.unwrap().unwrap();
        assert_eq!(int(&r, "allocations"), 5);
        assert!(int(&r, "ops") > 0, "{}", r.to_table());
        assert_eq!(int(&r, "lost"), 0, "{}", r.to_table());
        assert_eq!(int(&r, "unexpected"), 0, "{}", r.to_table());
        assert_eq!(int(&r, "deleted"), 5);
        assert!(float(&r, "rtt_p99_us") > 0.0);
        // The "server" is this process: its CPU was read from /proc.
        assert!(float(&r, "server_cpu_s") >= 0.0);
    }
    // The server counts a deletion just after it answers the Refresh.
    let mut m = server.metrics().snapshot();
    for _ in 0..100 {
        if m.allocations_active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        m = server.metrics().snapshot();
    }
    assert_eq!(m.allocations_active, 0, "every allocation was deleted");
    assert!(m.packets_to_peer > 0 && m.packets_to_client > 0);
}

#[actix_rt::test]
async fn binding_against_the_server_and_the_bare_echo() {
    let server = floe_server().await;
    let args = BindingArgs {
        sockets: 4,
        window: 4,
    };
    let r = binding::run(&common(server.local_addrs()[0]), &args)
        .await
        .unwrap()
        .unwrap();
    assert!(int(&r, "ops") > 0);
    assert_eq!(int(&r, "lost"), 0, "{}", r.to_table());

    let echo = Rc::new(echo::echo_socket("127.0.0.1:0".parse().unwrap()).unwrap());
    let counters = Rc::new(echo::EchoCounters::default());
    let task = echo::spawn_echo(echo.clone(), 2048, counters.clone());
    let r = binding::run(&common(echo.local_addr()), &args)
        .await
        .unwrap()
        .unwrap();
    task.abort();
    assert!(int(&r, "ops") > 0);
    assert_eq!(int(&r, "lost"), 0, "{}", r.to_table());
    assert!(counters.received.get() >= int(&r, "ops"));
}

#[actix_rt::test]
async fn allocate_and_hold_make_delete_and_relay() {
    let server = floe_server().await;
    let c = common(server.local_addrs()[0]);
    let r = allocate::run(
        &c,
        &AllocateArgs {
            count: 20,
            window: 4,
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(int(&r, "allocations"), 20);
    assert_eq!(int(&r, "deleted"), 20);
    assert!(float(&r, "ops_per_s") > 0.0);
    let r = hold::run(
        &c,
        &HoldArgs {
            allocations: 10,
            rate: 50,
            size: 160,
            direct: false,
        },
    )
    .await
    .unwrap()
    .unwrap();
    // 10 allocations at 50/s for 0.3 s: about 150 packets.
    assert!(int(&r, "sent") >= 100, "{}", r.to_table());
    assert_eq!(int(&r, "lost"), 0, "{}", r.to_table());
    assert_eq!(int(&r, "deleted"), 10);
}

/// The server sends what one relay socket relays in one batch; datagrams to a peer
/// that is not listening must cost only themselves.
#[actix_rt::test]
async fn an_unreachable_peer_in_a_batch_costs_only_its_own_datagrams() {
    use floe_actors::udp::SendQueue;
    let server = floe_server().await;
    let sessions = Rc::new(session::Sessions::new(
        server.local_addrs()[0],
        "bob".into(),
        "secret".into(),
    ));
    let echo = Rc::new(echo::echo_socket("127.0.0.1:0".parse().unwrap()).unwrap());
    let counters = Rc::new(echo::EchoCounters::default());
    let task = echo::spawn_echo(echo.clone(), 2048, counters.clone());
    let closed = client_socket().unwrap().local_addr(); // bound, then closed
    let mut ex = session::Exchange::new();
    let socket = Rc::new(client_socket().unwrap());
    // The permission is per IP: it covers the closed port too.
    let alloc = sessions
        .open(
            socket.clone(),
            &mut ex,
            session::PeerSetup::Permission(echo.local_addr()),
        )
        .await
        .unwrap();
    let (to_closed, _) = relay::send_indication(closed, 40);
    let (to_echo, _) = relay::send_indication(echo.local_addr(), 40);
    let mut queue = SendQueue::new();
    for _ in 0..20 {
        queue.push(server.local_addrs()[0], &to_closed);
        queue.push(server.local_addrs()[0], &to_echo);
    }
    assert_eq!(socket.try_send_batch(&mut queue).sent, 40);
    let mut bufs = socket.recv_buffers(2048);
    let mut data_indications = 0;
    while data_indications < 20 {
        let batch = tokio::time::timeout(Duration::from_secs(5), socket.recv_batch(&mut bufs))
            .await
            .expect("the echoes come back through the relay")
            .unwrap();
        for d in batch {
            assert_eq!(&d.payload[..2], &[0x00, 0x17], "a Data indication");
            data_indications += 1;
        }
    }
    assert_eq!(counters.received.get(), 20);
    task.abort();
    session::close_all(&sessions, vec![alloc], 1, Duration::from_secs(2)).await;
}

/// The Arbiters send events only once someone subscribed; a subscriber then gets
/// every event, from the first allocation made after `events()` on.
#[actix_rt::test]
async fn events_flow_once_subscribed() {
    use floe_actors::turn::TurnEvent;
    let server = floe_server().await;
    let sessions = Rc::new(session::Sessions::new(
        server.local_addrs()[0],
        "bob".into(),
        "secret".into(),
    ));
    let mut ex = session::Exchange::new();
    let before = sessions
        .open(
            Rc::new(client_socket().unwrap()),
            &mut ex,
            session::PeerSetup::None,
        )
        .await
        .unwrap();
    // The server answers before it handles the allocation's event: let it finish.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut events = server.events();
    let socket = Rc::new(client_socket().unwrap());
    let after = sessions
        .open(socket.clone(), &mut ex, session::PeerSetup::None)
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .unwrap();
    match event {
        TurnEvent::AllocationCreated { five_tuple, .. } => {
            assert_eq!(five_tuple.client, socket.local_addr(), "the second one's")
        }
        other => panic!("{other:?}"),
    }
    session::close_all(&sessions, vec![before, after], 2, Duration::from_secs(2)).await;
    let mut deleted = 0;
    while deleted < 2 {
        match tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("Deleted events within 5 s")
        {
            Some(TurnEvent::Deleted { .. }) => deleted += 1,
            Some(_) => {}
            None => panic!("the stream ended"),
        }
    }
}

#[actix_rt::test]
async fn a_server_that_does_not_answer_is_an_error_not_a_hang() {
    // A bound socket that never answers.
    let silent = client_socket().unwrap();
    let mut c = common(silent.local_addr());
    c.duration = Duration::from_millis(100);
    let err = binding::run(
        &c,
        &BindingArgs {
            sockets: 1,
            window: 1,
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no Binding response"), "{err}");
}
