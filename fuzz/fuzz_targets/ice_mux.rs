//! Single-port mode: the USERNAME reader of a shared socket never panics, reads only
//! ufrags, agrees with the STUN decoder, and a `Demux` fed a program of registrations,
//! restarts, sends and datagrams keeps its tables bounded and routes only to agents
//! that are registered.
#![no_main]

use std::net::SocketAddr;

use bytes::Bytes;
use floe::ice::is_ice_char;
use floe::ice::mux::{binding_request_ufrag, Demux, DemuxConfig, RouteBy};
use floe::stun::attribute::Username;
use floe::stun::Message;
use libfuzzer_sys::fuzz_target;

const UFRAGS: [&str; 4] = ["aaaa", "bbbb", "cccc", "dddd"];

fn remote(b: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1000 + u16::from(b % 16)))
}

fuzz_target!(|input: &[u8]| {
    // The whole input as one datagram.
    if let Ok(ufrag) = binding_request_ufrag(input) {
        assert!((4..=256).contains(&ufrag.len()));
        assert!(ufrag.chars().all(is_ice_char));
        if let Ok(msg) = Message::decode(Bytes::copy_from_slice(input)) {
            if let Some(Ok(u)) = msg.get::<Username>() {
                let u = u.as_str();
                assert!(u.starts_with(ufrag) && u[ufrag.len()..].starts_with(':'));
            }
        }
        let mut d = Demux::new(DemuxConfig::default());
        d.register(0u8, &[ufrag])
            .expect("a ufrag that was read registers");
        assert_eq!(d.route(remote(0), input), Ok((0, RouteBy::Ufrag)));
    }

    // The input as a program: [op, a, b, len, datagram...].
    let config = DemuxConfig {
        max_agents: 3,
        max_ufrags_per_agent: 2,
        max_addresses_per_agent: 2,
    };
    let mut d: Demux<u8> = Demux::new(config);
    let mut at = 0;
    while at + 3 <= input.len() {
        let (op, a, b) = (input[at], input[at + 1] % 5, input[at + 2]);
        at += 3;
        match op % 5 {
            0 => {
                let _ = d.register(a, &[UFRAGS[usize::from(b % 4)]]);
            }
            1 => {
                let _ = d.set_ufrags(a, &[UFRAGS[usize::from(b % 4)]]);
            }
            2 => {
                d.unregister(a);
                assert!(d.addresses_of(a).is_empty());
            }
            3 => {
                let learnt = d.learn(a, remote(b));
                assert_eq!(learnt, d.agent_of_address(remote(b)) == Some(a));
            }
            _ => {
                let len = usize::from(input.get(at).copied().unwrap_or(0));
                let end = (at + 1 + len).min(input.len());
                let datagram = input.get(at + 1..end).unwrap_or(&[]);
                at = end;
                if let Ok((agent, _)) = d.route(remote(b), datagram) {
                    assert!(d.is_registered(agent));
                    assert_eq!(d.agent_of_address(remote(b)), Some(agent));
                }
            }
        }
        let s = d.stats();
        assert!(s.agents <= 3 && s.addresses <= 6);
    }
});
