//! RFC 8839 §5.1: candidate lines never panic the parser, and what parses writes back
//! to a line that parses to the same candidate.
#![no_main]

use floe::ice::Candidate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(line) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(c) = Candidate::from_sdp(line) else {
        return;
    };
    let written = c.to_sdp();
    let again = Candidate::from_sdp(&written).expect("written lines parse");
    assert_eq!(again.to_sdp(), written);
});
