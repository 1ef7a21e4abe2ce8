//! RFC 8656: a TURN server core fed arbitrary client and peer datagrams never panics.
#![no_main]

use std::time::{Duration, Instant};

use floe::transmit::Transport;
use floe::turn::server::{
    FiveTuple, RelayAsk, RelayGrant, RelayRefusal, Server, ServerConfig, PEER_HEADROOM,
};
use libfuzzer_sys::fuzz_target;
use rand::rngs::StdRng;
use rand::SeedableRng;

fuzz_target!(|input: &[u8]| {
    let t0 = Instant::now();
    let mut config = ServerConfig::new("192.0.2.1".parse().unwrap(), t0, 1_700_000_000);
    config.credentials.users.insert("bob", "secret");
    let mut server = Server::new(config, StdRng::seed_from_u64(0));
    let ft = FiveTuple {
        client: "198.51.100.7:5000".parse().unwrap(),
        server: "192.0.2.1:3478".parse().unwrap(),
        transport: Transport::Udp,
    };
    // The input is several datagrams, each prefixed by one length byte.
    let mut rest = input;
    let mut now = t0;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (datagram, tail) = tail.split_at(n);
        rest = tail;
        let _ = server.handle_client(now, &ft, datagram);
        // A driver that binds the first candidate it is offered.
        while let Some(req) = server.poll_relay_request() {
            let result = match req.relays {
                RelayAsk::Bind { mut primary, .. } => primary
                    .next_free(|_| false)
                    .map(|c| RelayGrant {
                        relayed: c.relay,
                        reserved: c.reserved,
                        additional: None,
                    })
                    .ok_or(RelayRefusal::InsufficientCapacity),
                RelayAsk::Redeem { .. } => Err(RelayRefusal::InsufficientCapacity),
            };
            let _ = server.relay_ready(now, req.id, result);
        }
        let mut buf = vec![0u8; PEER_HEADROOM + datagram.len() + 4];
        buf[PEER_HEADROOM..PEER_HEADROOM + datagram.len()].copy_from_slice(datagram);
        let _ = server.handle_peer(now, "192.0.2.1:50000".parse().unwrap(), "203.0.113.1:9".parse().unwrap(), &mut buf, datagram.len());
        while server.poll_transmit().is_some() {}
        while server.poll_event().is_some() {}
        now += Duration::from_secs(u64::from(len));
        server.handle_timeout(now);
    }
});
