//! RFC 8489 §6.2.2 / RFC 8656 §12.5: the stream framer never panics, frames are whole and
//! in order, and the way the stream is split does not change what comes out.
#![no_main]

use floe::framing::{Frame, FramingError, StreamFramer};
use floe::turn::ChannelData;
use libfuzzer_sys::fuzz_target;

/// Frames until `None` or an error; checks each frame's declared length against its size.
fn drain(framer: &mut StreamFramer, out: &mut Vec<Frame>) -> Option<FramingError> {
    loop {
        match framer.next_frame() {
            Ok(Some(frame)) => {
                let b = frame.as_bytes();
                let declared = usize::from(u16::from_be_bytes([b[2], b[3]]));
                match &frame {
                    Frame::Stun(_) => {
                        assert!(b[0] < 0x40);
                        assert_eq!(declared % 4, 0);
                        assert_eq!(b.len(), 20 + declared);
                    }
                    Frame::ChannelData(_) => {
                        assert!((0x40..=0x4F).contains(&b[0]));
                        assert_eq!(b.len(), 4 + declared);
                        ChannelData::decode(b.clone()).expect("a framed ChannelData decodes");
                    }
                }
                out.push(frame);
            }
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

fn run(input: &[u8], cuts: &[usize]) -> (Vec<Frame>, Option<FramingError>, usize) {
    let mut framer = StreamFramer::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        framer
            .push(&input[start..end])
            .expect("drained between pushes");
        if let Some(e) = drain(&mut framer, &mut out) {
            return (out, Some(e), framer.buffered_len());
        }
        start = end;
    }
    (out, None, framer.buffered_len())
}

fuzz_target!(|input: &[u8]| {
    // Split points derived from the data: its first bytes pick up to 4 offsets.
    let mut cuts: Vec<usize> = input
        .iter()
        .take(4)
        .map(|&b| (usize::from(b) * 257) % (input.len() + 1))
        .collect();
    cuts.sort_unstable();

    let (whole, whole_err, rest) = run(input, &[]);

    // Frames tile the input: their bytes (plus ChannelData padding) are its prefix.
    let mut at = 0;
    for frame in &whole {
        let b = frame.as_bytes();
        assert_eq!(&b[..], &input[at..at + b.len()]);
        at += b.len();
        if let Frame::ChannelData(_) = frame {
            at += ChannelData::padding_len(b.len());
        }
    }
    assert_eq!(at + rest, input.len());
    match whole_err {
        None => assert!(rest < 20 + 0xFFFC),
        Some(FramingError::InvalidFirstByte(b)) => assert!(b >= 0x50 && input[at] == b),
        Some(FramingError::StunLengthNotMultipleOf4(len)) => {
            assert!(input[at] < 0x40 && len % 4 != 0);
            assert_eq!(len, u16::from_be_bytes([input[at + 2], input[at + 3]]));
        }
        Some(e) => panic!("unexpected {e}"),
    }

    // How the stream is split changes nothing.
    let (split, split_err, split_rest) = run(input, &cuts);
    assert_eq!(split, whole);
    assert_eq!(split_err, whole_err);
    if whole_err.is_none() {
        assert_eq!(split_rest, rest);
    } else {
        // The error is seen as soon as its bytes arrive, perhaps before the last push.
        assert!(split_rest > 0 && split_rest <= rest);
    }
});
