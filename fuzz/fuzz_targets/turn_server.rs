//! RFC 8656: the TURN server core's whole input → output step over UDP. Clients on
//! several 5-tuples send authenticated requests (built by the driver, so runs get past
//! the 401), mutated ones and raw bytes; peers send to the relays; a driver binds relays;
//! time passes. No panic, every output decodes and goes where it should, no deadline is
//! left in the past, and every relay is released in the end (`floe::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    floe::fuzzing::turn_server_udp(input);
});
