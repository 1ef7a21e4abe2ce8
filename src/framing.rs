//! RFC 8489 §6.2.2 and RFC 8656 §12.5: cutting a TCP or TLS byte stream into STUN and
//! ChannelData messages.
//!
//! A TURN connection over TCP (RFC 8656 §3.1, and RFC 6062 control connections) carries STUN
//! messages, framed by their Length field, interleaved with ChannelData messages padded to a
//! multiple of 4. The first byte tells them apart: STUN has its two top bits zero
//! (0x00..=0x3F), ChannelData starts with its channel number (0x40..=0x7F, RFC 5766's range). Anything else means
//! the stream cannot be resynchronised, and the caller closes the connection.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use crate::stun;
use crate::turn::ChannelData;

/// RFC 8489 §5: the largest STUN message, a 20-byte header and a Length of at most 0xFFFC
/// (a multiple of 4); no frame, padded ChannelData included, is longer.
pub const MAX_FRAME_LEN: usize = stun::HEADER_LEN + 0xFFFC;

/// RFC 8489 §6.2.2 / RFC 8656 §12.5: one message cut from the stream, sharing its buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// RFC 8489 §5: a whole STUN message, the 20-byte header and Length bytes of attributes.
    Stun(Bytes),
    /// RFC 8656 §12.4: a whole ChannelData message, the 4-byte header and Length bytes of
    /// data; the padding that followed it on the stream is consumed, not included.
    ChannelData(Bytes),
}

impl Frame {
    /// RFC 8489 §6.2.2: the message bytes.
    #[inline]
    pub fn as_bytes(&self) -> &Bytes {
        match self {
            Frame::Stun(b) | Frame::ChannelData(b) => b,
        }
    }

    /// RFC 8489 §6.2.2: the message bytes.
    #[inline]
    pub fn into_bytes(self) -> Bytes {
        match self {
            Frame::Stun(b) | Frame::ChannelData(b) => b,
        }
    }
}

/// RFC 8489 §6.2.2 / RFC 8656 §12.5: the stream cannot be framed; close the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FramingError {
    /// RFC 8656 §12 / RFC 7983 §7: the next message starts with a byte that is neither STUN
    /// (0x00..=0x3F) nor ChannelData (0x40..=0x7F: RFC 8656 numbers, and the wider
    /// RFC 5766 range coturn's clients still use).
    #[error("first byte {0:#04x} is neither STUN nor ChannelData")]
    InvalidFirstByte(u8),
    /// RFC 8489 §5: a STUN Length that is not a multiple of 4.
    #[error("STUN message length {0} is not a multiple of 4")]
    StunLengthNotMultipleOf4(u16),
    /// `push` was called while a whole frame (at least [`MAX_FRAME_LEN`] bytes) was waiting:
    /// the caller must drain [`StreamFramer::next_frame`] between pushes.
    #[error("{buffered} bytes buffered without being drained")]
    BufferFull {
        /// Bytes buffered when the push was refused.
        buffered: usize,
    },
}

/// RFC 8489 §6.2.2 / RFC 8656 §12.5: reassembles STUN and ChannelData messages from a stream
/// split at any point.
///
/// Push what arrived, then call [`StreamFramer::next_frame`] until it returns `Ok(None)`.
/// Frames are zero-copy views of the buffer. Memory only grows with bytes that arrived,
/// never with a declared Length, and stays below one frame plus one push.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: BytesMut,
}

impl StreamFramer {
    /// RFC 8489 §6.2.2: an empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// RFC 8489 §6.2.2: an empty framer whose buffer starts with `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(capacity),
        }
    }

    /// RFC 8489 §6.2.2: appends bytes read from the stream.
    ///
    /// Refused with [`FramingError::BufferFull`] if [`MAX_FRAME_LEN`] bytes or more are
    /// already buffered, which only happens when the caller did not drain `next_frame`.
    #[inline]
    pub fn push(&mut self, data: &[u8]) -> Result<(), FramingError> {
        if self.buf.len() >= MAX_FRAME_LEN {
            return Err(FramingError::BufferFull {
                buffered: self.buf.len(),
            });
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// RFC 8489 §6.2.2 / RFC 8656 §12.5: the next whole frame, `Ok(None)` if more bytes are
    /// needed, or the error that makes the stream unusable (returned again on every call).
    ///
    /// A ChannelData frame is returned once its padding has arrived too, so the stream
    /// stays aligned.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        let (first, declared) = match *self.buf {
            [] => return Ok(None),
            [b, ..] if b >= 0x80 => return Err(FramingError::InvalidFirstByte(b)),
            [b, _, l0, l1, ..] => (b, u16::from_be_bytes([l0, l1])),
            _ => return Ok(None),
        };
        let len = usize::from(declared);
        let (frame_len, wire_len) = if first < 0x40 {
            if declared % 4 != 0 {
                return Err(FramingError::StunLengthNotMultipleOf4(declared));
            }
            let n = stun::HEADER_LEN + len;
            (n, n)
        } else {
            let n = ChannelData::HEADER_LEN + len;
            (n, n + ChannelData::padding_len(len))
        };
        if self.buf.len() < wire_len {
            return Ok(None);
        }
        let bytes = self.buf.split_to(frame_len).freeze();
        self.buf.advance(wire_len - frame_len);
        Ok(Some(if first < 0x40 {
            Frame::Stun(bytes)
        } else {
            Frame::ChannelData(bytes)
        }))
    }

    /// Bytes received but not yet returned as a frame.
    #[inline]
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// RFC 6062 §5.4: the bytes left unframed, for a connection that stops carrying STUN
    /// (a data connection after ConnectionBind relays raw bytes).
    pub fn into_buffered(self) -> BytesMut {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn::ChannelNumber;
    use proptest::prelude::*;

    /// A STUN-shaped message: Binding request header, `len` bytes of attributes.
    fn stun_msg(len: u16, seed: u8) -> Vec<u8> {
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(&stun::MAGIC_COOKIE.to_be_bytes());
        m.extend((0..12).map(|i| seed.wrapping_add(i)));
        m.extend((0..len).map(|i| (i as u8) ^ seed));
        m
    }

    /// A ChannelData message: (the padded bytes on the stream, the frame expected out).
    fn cd_msg(channel: u16, len: usize, seed: u8) -> (Vec<u8>, Vec<u8>) {
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        let mut wire = BytesMut::new();
        let ch = ChannelNumber::new(channel).unwrap();
        ChannelData::encode_into(ch, &data, &mut wire, true).unwrap();
        let frame = wire[..4 + len].to_vec();
        (wire.to_vec(), frame)
    }

    fn drain(f: &mut StreamFramer, out: &mut Vec<Frame>) {
        while let Some(frame) = f.next_frame().unwrap() {
            out.push(frame);
        }
    }

    /// Feeds `wire` split at `offset`, draining after each push.
    fn split_at(wire: &[u8], offset: usize) -> Vec<Frame> {
        let mut f = StreamFramer::new();
        let mut out = Vec::new();
        f.push(&wire[..offset]).unwrap();
        drain(&mut f, &mut out);
        f.push(&wire[offset..]).unwrap();
        drain(&mut f, &mut out);
        assert_eq!(f.buffered_len(), 0);
        out
    }

    fn byte_by_byte(wire: &[u8]) -> Vec<Frame> {
        let mut f = StreamFramer::new();
        let mut out = Vec::new();
        for b in wire {
            f.push(std::slice::from_ref(b)).unwrap();
            drain(&mut f, &mut out);
        }
        assert_eq!(f.buffered_len(), 0);
        out
    }

    #[test]
    fn max_stun_split_at_every_offset() {
        let wire = stun_msg(0xFFFC, 7);
        assert_eq!(wire.len(), MAX_FRAME_LEN);
        let expected = vec![Frame::Stun(Bytes::from(wire.clone()))];
        for offset in 0..=wire.len() {
            // Checked without `assert_eq!` formatting 64 KiB on every offset.
            if split_at(&wire, offset) != expected {
                panic!("STUN split at {offset}");
            }
        }
        assert!(byte_by_byte(&wire) == expected);
    }

    #[test]
    fn max_channel_data_split_at_every_offset() {
        let (wire, frame) = cd_msg(0x4FFF, 0xFFFF, 3);
        assert_eq!(wire.len(), 4 + 0xFFFF + 1, "padded on the stream");
        let expected = vec![Frame::ChannelData(Bytes::from(frame))];
        for offset in 0..=wire.len() {
            if split_at(&wire, offset) != expected {
                panic!("ChannelData split at {offset}");
            }
        }
        assert!(byte_by_byte(&wire) == expected);
    }

    #[test]
    fn frames_wait_for_the_last_byte_and_the_padding() {
        let (wire, frame) = cd_msg(0x4000, 5, 0);
        let mut f = StreamFramer::new();
        f.push(&wire[..9]).unwrap(); // header and data, no padding yet
        assert_eq!(f.next_frame(), Ok(None));
        f.push(&wire[9..11]).unwrap();
        assert_eq!(f.next_frame(), Ok(None));
        f.push(&wire[11..]).unwrap();
        assert_eq!(f.next_frame(), Ok(Some(Frame::ChannelData(frame.into()))));
        assert_eq!(f.buffered_len(), 0);

        let stun = stun_msg(8, 1);
        f.push(&stun[..27]).unwrap();
        assert_eq!(f.next_frame(), Ok(None));
        assert_eq!(f.buffered_len(), 27);
        f.push(&stun[27..]).unwrap();
        assert_eq!(f.next_frame(), Ok(Some(Frame::Stun(stun.into()))));
    }

    #[test]
    fn back_to_back_in_one_push_share_the_buffer() {
        let stun = stun_msg(12, 9);
        let (cd_wire, cd_frame) = cd_msg(0x4123, 3, 4);
        let (empty_wire, empty_frame) = cd_msg(0x4000, 0, 0);
        let wire = [&stun[..], &cd_wire, &empty_wire, &stun].concat();
        let mut f = StreamFramer::new();
        f.push(&wire).unwrap();
        let a = f.next_frame().unwrap().unwrap();
        let b = f.next_frame().unwrap().unwrap();
        let c = f.next_frame().unwrap().unwrap();
        let d = f.next_frame().unwrap().unwrap();
        assert_eq!(f.next_frame(), Ok(None));
        assert_eq!(f.buffered_len(), 0);
        assert_eq!(a, Frame::Stun(stun.clone().into()));
        assert_eq!(b, Frame::ChannelData(cd_frame.into()));
        assert_eq!(c, Frame::ChannelData(empty_frame.into()));
        assert_eq!(d, Frame::Stun(stun.into()));
        // Zero copy: each frame points into the pushed buffer.
        let base = a.as_bytes().as_ptr() as usize;
        assert_eq!(b.as_bytes().as_ptr() as usize, base + 32);
        assert_eq!(c.as_bytes().as_ptr() as usize, base + 32 + 8);
        assert_eq!(d.into_bytes().as_ptr() as usize, base + 32 + 8 + 4);
    }

    #[test]
    fn small_stream_split_into_three_pieces_everywhere() {
        let (cd_wire, cd_frame) = cd_msg(0x4ABC, 5, 2);
        let stun = stun_msg(8, 5);
        let wire = [&stun[..], &cd_wire, &stun].concat();
        let expected = vec![
            Frame::Stun(stun.clone().into()),
            Frame::ChannelData(cd_frame.into()),
            Frame::Stun(stun.into()),
        ];
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                let mut f = StreamFramer::new();
                let mut out = Vec::new();
                for piece in [&wire[..i], &wire[i..j], &wire[j..]] {
                    f.push(piece).unwrap();
                    drain(&mut f, &mut out);
                }
                assert_eq!(out, expected, "split at {i} and {j}");
            }
        }
    }

    #[test]
    fn invalid_first_byte() {
        for b in 0x80..=0xFF {
            let mut f = StreamFramer::new();
            f.push(&[b]).unwrap();
            assert_eq!(f.next_frame(), Err(FramingError::InvalidFirstByte(b)));
            assert_eq!(f.next_frame(), Err(FramingError::InvalidFirstByte(b)));
        }
        // After a good frame, garbage surfaces once the frame is out.
        let stun = stun_msg(0, 0);
        let mut f = StreamFramer::new();
        f.push(&[&stun[..], b"\x80\x60\x00\x01"].concat()).unwrap(); // an RTP header
        assert_eq!(f.next_frame(), Ok(Some(Frame::Stun(stun.into()))));
        assert_eq!(f.next_frame(), Err(FramingError::InvalidFirstByte(0x80)));
        assert_eq!(
            FramingError::InvalidFirstByte(0x80).to_string(),
            "first byte 0x80 is neither STUN nor ChannelData"
        );
    }

    #[test]
    fn valid_first_bytes_wait_for_more() {
        for b in 0x00..0x50 {
            let mut f = StreamFramer::new();
            f.push(&[b, 0, 0]).unwrap();
            assert_eq!(f.next_frame(), Ok(None), "first byte {b:#04x}");
        }
    }

    #[test]
    fn stun_length_not_multiple_of_4() {
        for len in [1u16, 2, 3, 5, 0xFFFD, 0xFFFE, 0xFFFF] {
            let [l0, l1] = len.to_be_bytes();
            let mut f = StreamFramer::new();
            f.push(&[0x00, 0x01, l0]).unwrap();
            assert_eq!(f.next_frame(), Ok(None));
            f.push(&[l1]).unwrap();
            assert_eq!(
                f.next_frame(),
                Err(FramingError::StunLengthNotMultipleOf4(len))
            );
        }
    }

    #[test]
    fn never_reserves_by_declared_length() {
        let mut f = StreamFramer::new();
        f.push(&stun_msg(0xFFFC, 0)[..20]).unwrap();
        assert_eq!(f.next_frame(), Ok(None));
        assert!(f.buf.capacity() < 1024, "capacity {}", f.buf.capacity());
        let mut f = StreamFramer::new();
        f.push(b"\x40\x00\xff\xff").unwrap();
        assert_eq!(f.next_frame(), Ok(None));
        assert!(f.buf.capacity() < 1024, "capacity {}", f.buf.capacity());
    }

    #[test]
    fn push_refused_until_drained() {
        let stun = stun_msg(0xFFFC, 1);
        let mut f = StreamFramer::with_capacity(2 * MAX_FRAME_LEN);
        f.push(&stun).unwrap();
        assert_eq!(
            f.push(b"\x00"),
            Err(FramingError::BufferFull {
                buffered: MAX_FRAME_LEN
            })
        );
        assert_eq!(f.next_frame(), Ok(Some(Frame::Stun(stun.into()))));
        f.push(b"\x00").unwrap();
        assert_eq!(f.buffered_len(), 1);
        // One push may be large: it is the caller's read, not a declared length.
        f.push(&vec![0; 3 * MAX_FRAME_LEN]).unwrap();
    }

    #[test]
    fn into_buffered_keeps_the_rest() {
        let stun = stun_msg(4, 0);
        let mut f = StreamFramer::new();
        f.push(&[&stun[..], b"raw data"].concat()).unwrap();
        assert_eq!(f.next_frame(), Ok(Some(Frame::Stun(stun.into()))));
        assert_eq!(&f.into_buffered()[..], b"raw data");
    }

    /// A frame to put on the stream: (padded wire bytes, frame expected out).
    fn any_frame() -> impl Strategy<Value = (Vec<u8>, Frame)> {
        prop_oneof![
            (0u16..=128, any::<u8>()).prop_map(|(words, seed)| {
                let m = stun_msg(words * 4, seed);
                (m.clone(), Frame::Stun(m.into()))
            }),
            (0x4000u16..=0x4FFF, 0usize..=600, any::<u8>()).prop_map(|(ch, len, seed)| {
                let (wire, frame) = cd_msg(ch, len, seed);
                (wire, Frame::ChannelData(frame.into()))
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_frames_random_splits(
            frames in proptest::collection::vec(any_frame(), 0..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
        ) {
            let wire: Vec<u8> = frames.iter().flat_map(|(w, _)| w.iter().copied()).collect();
            let expected: Vec<Frame> = frames.into_iter().map(|(_, f)| f).collect();
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            cuts.push(0);
            cuts.push(wire.len());
            cuts.sort_unstable();
            let mut f = StreamFramer::new();
            let mut out = Vec::new();
            for w in cuts.windows(2) {
                f.push(&wire[w[0]..w[1]]).unwrap();
                drain(&mut f, &mut out);
            }
            prop_assert_eq!(f.buffered_len(), 0);
            prop_assert_eq!(out, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut f = StreamFramer::new();
            f.push(&bytes).unwrap();
            let mut consumed = 0;
            while let Ok(Some(frame)) = f.next_frame() {
                let b = frame.as_bytes();
                let declared = usize::from(u16::from_be_bytes([b[2], b[3]]));
                match frame {
                    Frame::Stun(_) => prop_assert_eq!(b.len(), 20 + declared),
                    Frame::ChannelData(_) => prop_assert_eq!(b.len(), 4 + declared),
                }
                prop_assert_eq!(&b[..], &bytes[consumed..consumed + b.len()]);
                consumed += b.len() + ChannelData::padding_len(b.len());
            }
            prop_assert_eq!(consumed + f.buffered_len(), bytes.len());
        }
    }
}
