//! RFC 8656 §3.7, RFC 8489 §6.2.2: the TURN server core over TCP. Each client's messages
//! are one byte stream cut at arbitrary points and framed by `StreamFramer` before they
//! reach the core; a framing error closes the connection and its allocation. Same
//! invariants as `turn_server` (`floe::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    floe::fuzzing::turn_server_tcp(input);
});
