//! RFC 6762 / RFC 1035: the mDNS reader never panics, whatever it reads that floe can
//! write back reads the same, and a responder and resolver fed the datagram answer only
//! with messages that decode.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use floe::mdns::{DnsMessage, Mdns};
use libfuzzer_sys::fuzz_target;
use rand::rngs::StdRng;
use rand::SeedableRng;

fuzz_target!(|input: &[u8]| {
    if let Ok(msg) = DnsMessage::decode(input) {
        if let Ok(bytes) = msg.encode() {
            let again = DnsMessage::decode(&bytes).expect("what floe encodes decodes");
            assert_eq!(again.answers.len(), msg.answers.len());
            assert_eq!(again.questions.len(), msg.questions.len());
        }
    }
    let now = Instant::now();
    let mut mdns = Mdns::new();
    let mut rng = StdRng::seed_from_u64(7);
    let name = mdns.register(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), &mut rng);
    let _ = mdns.resolve(now, &name.replace('-', "0"));
    let from = SocketAddr::from(([192, 0, 2, 2], 5353));
    let _ = mdns.handle_input(now, from, input);
    mdns.handle_timeout(now + Duration::from_secs(10));
    while let Some(t) = mdns.poll_transmit() {
        DnsMessage::decode(&t.payload).expect("the responder's messages decode");
    }
    while mdns.poll_event().is_some() {}
});
