//! RFC 8656: the TURN client core against floe's server core on a network the fuzzer
//! controls (loss, corruption, replays), with forged responses to the client's real
//! transactions, raw bytes and time passing. No panic, the client's messages decode
//! and go to its server, no deadline is left in the past (`floe::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    floe::fuzzing::turn_client(input);
});
