//! The application's own credential lookup (`TurnServer::start_with`), the seed's
//! `OnSTUNRequestAuthorization`, against the server actors over UDP on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use floe::stun::attribute::{ErrorCode, Nonce, Realm, RequestedTransport, Username};
use floe::stun::{
    Class, IntegrityKey, Message, MessageEncoder, Method, PasswordAlgorithm, TransactionId,
};
use floe::turn::server::{AuthRequest, Authorization, Secret};
use floe_actors::config::ServeConfig;
use floe_actors::metrics::Metrics;
use floe_actors::turn::{ServerHandle, TurnEvent, TurnServer};
use tokio::net::UdpSocket;

const REALM: &str = "floe-app";
const WAIT: Duration = Duration::from_secs(5);

async fn start(asked: Arc<AtomicUsize>) -> ServerHandle {
    let mut config = ServeConfig::default();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.realm = REALM.into();
    config.threads = 1;
    // A static user from the configuration works next to the application's lookup.
    config.users = vec!["static:from-config".parse().unwrap()];
    config.validate().unwrap();
    let lookup = move |r: &AuthRequest<'_>| {
        asked.fetch_add(1, Ordering::Relaxed);
        assert_eq!(r.realm, REALM);
        match r.username {
            "carol" => Authorization::Allow(vec![Secret::Password("from-the-app".into())]),
            _ => Authorization::Reject,
        }
    };
    TurnServer::start_with_authenticator(&config, Metrics::new(), Arc::new(lookup))
        .await
        .unwrap()
}

async fn request(socket: &UdpSocket, msg: Bytes) -> Message {
    let tid = Message::decode(msg.clone()).unwrap().transaction_id();
    socket.send(&msg).await.unwrap();
    let mut buf = [0u8; 2048];
    loop {
        let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        let m = Message::decode(Bytes::copy_from_slice(&buf[..n])).unwrap();
        if m.transaction_id() == tid {
            return m;
        }
    }
}

fn allocate(credentials: Option<(&str, &str, &str)>) -> Bytes {
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(
        &mut buf,
        Method::ALLOCATE.request(),
        TransactionId::random(&mut rand::thread_rng()),
    );
    enc.add(&RequestedTransport(RequestedTransport::UDP));
    if let Some((user, password, nonce)) = credentials {
        let key = IntegrityKey::long_term(PasswordAlgorithm::Md5, user, REALM, password).unwrap();
        enc.add(&Username::new(user))
            .add(&Realm::new(REALM))
            .add(&Nonce::new(nonce))
            .message_integrity(key.as_bytes());
    }
    enc.finish().unwrap();
    buf.freeze()
}

/// An Allocate from a fresh source port: the 401, then the signed request.
async fn allocate_as(server: SocketAddr, user: &str, password: &str) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    let challenge = request(&socket, allocate(None)).await;
    assert_eq!(challenge.get::<ErrorCode>().unwrap().unwrap().code, 401);
    let nonce = challenge.get::<Nonce>().unwrap().unwrap();
    request(&socket, allocate(Some((user, password, nonce.as_str())))).await
}

#[actix_rt::test]
async fn the_applications_lookup_answers_for_its_users() {
    let asked = Arc::new(AtomicUsize::new(0));
    let server = start(asked.clone()).await;
    let addr = server.local_addrs()[0];
    let mut events = server.events();

    let ok = allocate_as(addr, "carol", "from-the-app").await;
    assert_eq!(ok.class(), Class::Success);
    assert!(asked.load(Ordering::Relaxed) >= 1, "the lookup was asked");

    // The static user of the configuration still works.
    let ok = allocate_as(addr, "static", "from-config").await;
    assert_eq!(ok.class(), Class::Success);

    // A wrong password and a user the lookup refuses both get 401.
    for (user, password) in [("carol", "guess"), ("mallory", "from-the-app")] {
        let refused = allocate_as(addr, user, password).await;
        assert_eq!(refused.class(), Class::Error);
        assert_eq!(refused.get::<ErrorCode>().unwrap().unwrap().code, 401);
    }

    let mut created = Vec::new();
    let mut failed = Vec::new();
    tokio::time::timeout(WAIT, async {
        while created.len() < 2 || failed.len() < 2 {
            match events.recv().await {
                Some(TurnEvent::AllocationCreated { username, .. }) => created.push(username),
                Some(TurnEvent::AuthFailed { username, code, .. }) => {
                    assert_eq!(code, 401);
                    failed.push(username.unwrap_or_default());
                }
                Some(_) => {}
                None => panic!("the server went away"),
            }
        }
    })
    .await
    .expect("the events in time");
    assert_eq!(created, ["carol", "static"]);
    assert_eq!(failed, ["carol", "mallory"]);
    assert_eq!(server.shutdown().await, 2);
}
