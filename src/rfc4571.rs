//! RFC 4571: framing RTP, RTCP and STUN packets on a connection-oriented transport, as
//! ICE-TCP (RFC 6544 §3) carries every packet of a TCP candidate pair: a 16-bit length
//! in network order, then that many bytes.
//!
//! Unlike [`StreamFramer`](crate::framing::StreamFramer), which cuts self-delimiting STUN
//! and ChannelData messages from a TURN connection (RFC 8656 §12.5), this framer knows
//! nothing of what it carries: STUN checks and application data alike.
//!
//! ```
//! use floe::rfc4571::{encode, Rfc4571Framer};
//!
//! let wire = [encode(b"hello").unwrap(), encode(b"").unwrap()].concat();
//! let mut framer = Rfc4571Framer::new();
//! framer.push(&wire[..3]);
//! assert_eq!(framer.next_frame(), None);
//! framer.push(&wire[3..]);
//! assert_eq!(framer.next_frame().unwrap(), &b"hello"[..]);
//! assert_eq!(framer.next_frame().unwrap(), &b""[..]);
//! assert_eq!(framer.next_frame(), None);
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// RFC 4571 §2: the length field's size.
pub const HEADER_LEN: usize = 2;

/// RFC 4571 §2: the largest packet a frame carries (the 16-bit length).
pub const MAX_PACKET_LEN: usize = u16::MAX as usize;

/// A packet too long for one RFC 4571 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a packet of {0} bytes does not fit an RFC 4571 frame (at most 65535)")]
pub struct PacketTooLong(pub usize);

/// RFC 4571 §2: `packet` with its 16-bit length prefix.
pub fn encode(packet: &[u8]) -> Result<Bytes, PacketTooLong> {
    let mut buf = BytesMut::with_capacity(HEADER_LEN + packet.len());
    encode_into(packet, &mut buf)?;
    Ok(buf.freeze())
}

/// RFC 4571 §2: appends `packet` with its 16-bit length prefix to `buf`.
pub fn encode_into(packet: &[u8], buf: &mut BytesMut) -> Result<(), PacketTooLong> {
    let len = u16::try_from(packet.len()).map_err(|_| PacketTooLong(packet.len()))?;
    buf.reserve(HEADER_LEN + packet.len());
    buf.put_u16(len);
    buf.put_slice(packet);
    Ok(())
}

/// RFC 4571 §2: reassembles packets from a byte stream split at any point.
///
/// Push what arrived, then call [`Rfc4571Framer::next_frame`] until it returns `None`.
/// Every 16-bit length is valid, so the stream cannot go out of step; frames are
/// zero-copy views of the buffer, and memory grows only with bytes that arrived (at
/// most one partial frame and one push when the caller drains between pushes).
#[derive(Debug, Default)]
pub struct Rfc4571Framer {
    buf: BytesMut,
}

impl Rfc4571Framer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole packet (without its length), or `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Bytes> {
        let [l0, l1, ..] = *self.buf else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if self.buf.len() < HEADER_LEN + len {
            return None;
        }
        self.buf.advance(HEADER_LEN);
        Some(self.buf.split_to(len).freeze())
    }

    /// Bytes received but not yet returned as a packet.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(framer: &mut Rfc4571Framer) -> Vec<Bytes> {
        std::iter::from_fn(|| framer.next_frame()).collect()
    }

    #[test]
    fn a_stun_check_and_data_share_one_stream() {
        let stun = [
            0u8, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ];
        let mut wire = BytesMut::new();
        encode_into(&stun, &mut wire).unwrap();
        encode_into(b"data", &mut wire).unwrap();
        assert_eq!(&wire[..2], &[0, 20]);
        assert_eq!(&wire[22..24], &[0, 4]);
        let mut f = Rfc4571Framer::new();
        f.push(&wire);
        assert_eq!(
            frames(&mut f),
            vec![Bytes::copy_from_slice(&stun), "data".into()]
        );
        assert_eq!(f.buffered_len(), 0);
    }

    #[test]
    fn byte_by_byte_and_the_largest_packet() {
        let big = vec![7u8; MAX_PACKET_LEN];
        let wire = encode(&big).unwrap();
        assert_eq!(&wire[..2], &[0xFF, 0xFF]);
        let mut f = Rfc4571Framer::new();
        for (i, b) in wire.iter().enumerate() {
            f.push(&[*b]);
            let out = f.next_frame();
            assert_eq!(out.is_some(), i == wire.len() - 1);
            if let Some(p) = out {
                assert_eq!(p.len(), MAX_PACKET_LEN);
            }
        }
        assert_eq!(
            encode(&vec![0; MAX_PACKET_LEN + 1]),
            Err(PacketTooLong(65536))
        );
    }

    proptest! {
        /// Frames tile the stream, and how it is split changes nothing.
        #[test]
        fn splitting_the_stream_changes_nothing(
            packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
            tail in proptest::collection::vec(any::<u8>(), 0..3),
        ) {
            let mut wire = BytesMut::new();
            for p in &packets {
                encode_into(p, &mut wire).unwrap();
            }
            // A partial frame at the end stays buffered.
            wire.extend_from_slice(&tail);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            cuts.sort_unstable();
            let mut f = Rfc4571Framer::new();
            let mut out = Vec::new();
            let mut start = 0;
            for end in cuts.into_iter().chain(std::iter::once(wire.len())) {
                f.push(&wire[start..end]);
                out.extend(frames(&mut f));
                start = end;
            }
            let tail_is_frame = tail.len() >= 2 && tail[0] == 0 && usize::from(tail[1]) + 2 == tail.len();
            let expected: Vec<Bytes> = packets.iter().map(|p| Bytes::copy_from_slice(p)).collect();
            if tail_is_frame {
                prop_assert_eq!(&out[..expected.len()], &expected[..]);
                prop_assert_eq!(out.len(), expected.len() + 1);
                prop_assert_eq!(f.buffered_len(), 0);
            } else {
                prop_assert_eq!(out, expected);
                prop_assert_eq!(f.buffered_len(), tail.len());
            }
        }
    }
}
