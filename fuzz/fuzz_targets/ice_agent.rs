//! RFC 8445: two ICE agents on a network the fuzzer controls (loss, corruption,
//! replays, unknown sources), with forged STUN on their candidates, application data
//! and time passing. No panic, every transmit leaves from the agent's own base in the
//! destination's family, its STUN decodes with FINGERPRINT, a selected pair is on one
//! of its bases (`floe::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    floe::fuzzing::ice_agent(input);
});
