//! RFC 4571 (ICE-TCP, RFC 6544 §3): the length-prefix framer never panics, its packets
//! tile the stream, re-encoding them gives the stream back, and the way the stream is
//! split does not change what comes out.
#![no_main]

use floe::rfc4571::{encode_into, Rfc4571Framer};
use libfuzzer_sys::fuzz_target;

fn run(input: &[u8], cuts: &[usize]) -> (Vec<bytes::Bytes>, usize) {
    let mut framer = Rfc4571Framer::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        framer.push(&input[start..end]);
        while let Some(p) = framer.next_frame() {
            out.push(p);
        }
        start = end;
    }
    (out, framer.buffered_len())
}

fuzz_target!(|input: &[u8]| {
    let mut cuts: Vec<usize> = input
        .iter()
        .take(4)
        .map(|&b| (usize::from(b) * 257) % (input.len() + 1))
        .collect();
    cuts.sort_unstable();

    let (whole, rest) = run(input, &[]);
    let mut again = bytes::BytesMut::new();
    for p in &whole {
        encode_into(p, &mut again).expect("a framed packet fits a frame");
    }
    assert_eq!(&again[..], &input[..input.len() - rest]);
    assert!(rest < 2 + 65535);

    let (split, split_rest) = run(input, &cuts);
    assert_eq!(split, whole);
    assert_eq!(split_rest, rest);
});
