//! RFC 8656 §12.4: the ChannelData message, a 4-byte header in front of application data.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Channel Number        |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! /                       Application Data                        /
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::TurnError;

pub use crate::stun::attribute::ChannelNumber;

impl TryFrom<u16> for ChannelNumber {
    type Error = TurnError;

    #[inline]
    fn try_from(n: u16) -> Result<Self, TurnError> {
        Self::new(n).ok_or(TurnError::InvalidChannelNumber(n))
    }
}

/// RFC 8656 §12.4: a decoded ChannelData message; `data` shares the received buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelData {
    channel: ChannelNumber,
    data: Bytes,
}

impl ChannelData {
    /// RFC 8656 §12.4: size of the header (channel number and length).
    pub const HEADER_LEN: usize = 4;
    /// RFC 8656 §12.4: the largest data a 16-bit Length field can carry.
    pub const MAX_DATA_LEN: usize = u16::MAX as usize;

    /// RFC 8656 §12.4: a message carrying `data` on `channel`.
    pub fn new(channel: ChannelNumber, data: Bytes) -> Result<Self, TurnError> {
        if data.len() > Self::MAX_DATA_LEN {
            return Err(TurnError::PayloadTooLong(data.len()));
        }
        Ok(Self { channel, data })
    }

    /// RFC 8656 §12.4: the channel the data travels on.
    #[inline]
    pub fn channel(&self) -> ChannelNumber {
        self.channel
    }

    /// RFC 8656 §12.4: the application data, without header or padding.
    #[inline]
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// RFC 8656 §12.4: the application data, without header or padding.
    #[inline]
    pub fn into_data(self) -> Bytes {
        self.data
    }

    /// RFC 8656 §12.6: decodes one message from a UDP datagram (or one framed TCP message)
    /// without copying: the data is a [`Bytes::slice`] of `packet`.
    ///
    /// Up to 3 bytes after the data are taken as padding (RFC 8656 §12.5: UDP senders may pad,
    /// so both padded and unpadded messages are accepted); more is [`TurnError::TrailingBytes`].
    #[inline]
    pub fn decode(packet: Bytes) -> Result<Self, TurnError> {
        let (channel, end) = check(&packet)?;
        Ok(Self {
            channel,
            data: packet.slice(Self::HEADER_LEN..end),
        })
    }

    /// RFC 8656 §12.6: as [`ChannelData::decode`], borrowing the data from `packet`.
    #[inline]
    pub fn decode_slice(packet: &[u8]) -> Result<(ChannelNumber, &[u8]), TurnError> {
        let (channel, end) = check(packet)?;
        Ok((channel, &packet[Self::HEADER_LEN..end]))
    }

    /// RFC 8656 §12.5: appends this message to `buf`, padded to a multiple of 4 if `pad`.
    #[inline]
    pub fn encode(&self, buf: &mut BytesMut, pad: bool) {
        // `new` and `decode` keep data.len() <= MAX_DATA_LEN.
        put(buf, self.channel, &self.data, pad);
    }

    /// RFC 8656 §12.5: appends a ChannelData message to `buf`, reserving only its own size.
    ///
    /// Over TCP and TLS `pad` must be `true` (padding to a multiple of 4 is mandatory);
    /// over UDP padding is allowed and `false` is the recommended choice.
    #[inline]
    pub fn encode_into(
        channel: ChannelNumber,
        payload: &[u8],
        buf: &mut BytesMut,
        pad: bool,
    ) -> Result<(), TurnError> {
        if payload.len() > Self::MAX_DATA_LEN {
            return Err(TurnError::PayloadTooLong(payload.len()));
        }
        put(buf, channel, payload, pad);
        Ok(())
    }

    /// RFC 8656 §12.4: writes the header for `len` bytes of data on `channel`, for a payload
    /// already placed 4 bytes into a buffer (relay hot path: no copy of the data).
    #[inline]
    pub fn write_header(header: &mut [u8; 4], channel: ChannelNumber, len: u16) {
        let [c0, c1] = channel.get().to_be_bytes();
        let [l0, l1] = len.to_be_bytes();
        *header = [c0, c1, l0, l1];
    }

    /// RFC 8656 §12.5: padding bytes that bring a message with `data_len` bytes of data to a
    /// multiple of 4 (0..=3).
    #[inline]
    pub const fn padding_len(data_len: usize) -> usize {
        data_len.wrapping_neg() & 3
    }

    /// RFC 8656 §12.5: the size on the wire of a message with `data_len` bytes of data.
    #[inline]
    pub const fn encoded_len(data_len: usize, pad: bool) -> usize {
        Self::HEADER_LEN + data_len + if pad { Self::padding_len(data_len) } else { 0 }
    }
}

/// RFC 8656 §12.6: validates `packet`; returns the channel and the end of the data.
#[inline]
fn check(packet: &[u8]) -> Result<(ChannelNumber, usize), TurnError> {
    let [c0, c1, l0, l1, ..] = *packet else {
        return Err(TurnError::Truncated {
            available: packet.len(),
        });
    };
    // Liberal in what it accepts: RFC 5766's range, which RFC 8656 narrowed.
    let n = u16::from_be_bytes([c0, c1]);
    let channel = ChannelNumber::new_rfc5766(n).ok_or(TurnError::InvalidChannelNumber(n))?;
    let declared = u16::from_be_bytes([l0, l1]);
    let available = packet.len() - ChannelData::HEADER_LEN;
    let len = usize::from(declared);
    if len > available {
        return Err(TurnError::LengthOverrun {
            declared,
            available,
        });
    }
    let extra = available - len;
    if extra > 3 {
        return Err(TurnError::TrailingBytes { declared, extra });
    }
    Ok((channel, ChannelData::HEADER_LEN + len))
}

/// Writes header, data and optional zero padding; the caller guarantees `data.len() <= 0xFFFF`.
#[inline]
fn put(buf: &mut BytesMut, channel: ChannelNumber, data: &[u8], pad: bool) {
    let padding = if pad {
        ChannelData::padding_len(data.len())
    } else {
        0
    };
    buf.reserve(ChannelData::HEADER_LEN + data.len() + padding);
    buf.put_u16(channel.get());
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
    buf.put_bytes(0, padding);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ch(n: u16) -> ChannelNumber {
        ChannelNumber::new(n).unwrap()
    }

    fn encode(channel: ChannelNumber, payload: &[u8], pad: bool) -> Bytes {
        let mut buf = BytesMut::new();
        ChannelData::encode_into(channel, payload, &mut buf, pad).unwrap();
        buf.freeze()
    }

    #[test]
    fn channel_number_range() {
        assert_eq!(ChannelNumber::new(0x3FFF), None);
        assert_eq!(ChannelNumber::new(0x4000), Some(ChannelNumber::MIN));
        assert_eq!(ChannelNumber::new(0x4FFF), Some(ChannelNumber::MAX));
        assert_eq!(ChannelNumber::new(0x5000), None);
        assert_eq!(
            ChannelNumber::new(0x7FFF),
            None,
            "RFC 5766's old range is gone"
        );
        assert_eq!(ChannelNumber::new(0), None);
        assert_eq!(ChannelNumber::new(0xFFFF), None);
        assert_eq!(
            ChannelNumber::try_from(0x5000),
            Err(TurnError::InvalidChannelNumber(0x5000))
        );
        assert_eq!(u16::from(ch(0x4123)), 0x4123);
        assert_eq!(ch(0x4123).get(), 0x4123);
        assert_eq!(ChannelNumber::MIN.index(), 0);
        assert_eq!(ChannelNumber::MAX.index(), ChannelNumber::COUNT - 1);
        assert_eq!(ChannelNumber::COUNT, 4096);
        assert_eq!(ch(0x4001).to_string(), "0x4001");
    }

    #[test]
    fn encode_layout_unpadded_and_padded() {
        let wire = encode(ch(0x4001), b"hello", false);
        assert_eq!(&wire[..], b"\x40\x01\x00\x05hello");
        let wire = encode(ch(0x4001), b"hello", true);
        assert_eq!(&wire[..], b"\x40\x01\x00\x05hello\0\0\0");
        // Already aligned: no padding either way.
        let wire = encode(ch(0x4FFF), b"abcd", true);
        assert_eq!(&wire[..], b"\x4f\xff\x00\x04abcd");
        let wire = encode(ch(0x4000), b"", true);
        assert_eq!(&wire[..], b"\x40\x00\x00\x00");
    }

    #[test]
    fn encoded_and_padding_len() {
        for (len, pad) in [(0, 0), (1, 3), (2, 2), (3, 1), (4, 0), (0xFFFF, 1)] {
            assert_eq!(ChannelData::padding_len(len), pad, "len {len}");
            assert_eq!(ChannelData::encoded_len(len, true), 4 + len + pad);
            assert_eq!(ChannelData::encoded_len(len, false), 4 + len);
        }
    }

    #[test]
    fn encode_reserves_only_its_own_size() {
        let mut buf = BytesMut::with_capacity(64);
        let cap = buf.capacity();
        ChannelData::encode_into(ch(0x4000), &[7; 57], &mut buf, true).unwrap();
        assert_eq!(buf.len(), 64);
        assert_eq!(buf.capacity(), cap, "fits: no reallocation");
    }

    #[test]
    fn encode_appends_after_existing_bytes() {
        let mut buf = BytesMut::from(&b"xy"[..]);
        ChannelData::encode_into(ch(0x4002), b"z", &mut buf, true).unwrap();
        assert_eq!(&buf[..], b"xy\x40\x02\x00\x01z\0\0\0");
    }

    #[test]
    fn encode_max_and_too_long() {
        let wire = encode(ch(0x4000), &[0xAB; 0xFFFF], true);
        assert_eq!(wire.len(), 4 + 0xFFFF + 1);
        assert_eq!(&wire[..4], b"\x40\x00\xff\xff");
        let mut buf = BytesMut::new();
        assert_eq!(
            ChannelData::encode_into(ch(0x4000), &[0; 0x10000], &mut buf, false),
            Err(TurnError::PayloadTooLong(0x10000))
        );
        assert!(buf.is_empty(), "nothing written on error");
        assert_eq!(
            ChannelData::new(ch(0x4000), Bytes::from(vec![0; 0x10000])),
            Err(TurnError::PayloadTooLong(0x10000))
        );
    }

    #[test]
    fn write_header_in_front_of_payload() {
        let mut buf = [0u8; 4 + 3];
        buf[4..].copy_from_slice(b"abc");
        let header: &mut [u8; 4] = (&mut buf[..4]).try_into().unwrap();
        ChannelData::write_header(header, ch(0x4ABC), 3);
        assert_eq!(&buf, b"\x4a\xbc\x00\x03abc");
        assert_eq!(
            ChannelData::decode_slice(&buf),
            Ok((ch(0x4ABC), &b"abc"[..]))
        );
    }

    #[test]
    fn decode_is_zero_copy() {
        let wire = encode(ch(0x4010), b"payload", false);
        let msg = ChannelData::decode(wire.clone()).unwrap();
        assert_eq!(msg.channel(), ch(0x4010));
        assert_eq!(msg.data(), &b"payload"[..]);
        assert_eq!(msg.data().as_ptr(), wire[4..].as_ptr(), "shares the buffer");
        assert_eq!(msg.into_data(), &b"payload"[..]);
    }

    #[test]
    fn decode_accepts_unpadded_partial_and_full_padding() {
        // 5 bytes of data: 3 bytes of padding make it aligned. Any 0..=3 is accepted.
        let padded = encode(ch(0x4001), b"hello", true);
        for cut in 9..=12 {
            let msg = ChannelData::decode(padded.slice(..cut)).unwrap();
            assert_eq!(msg.data(), &b"hello"[..], "datagram of {cut} bytes");
        }
        // Padding content is ignored.
        let msg =
            ChannelData::decode(Bytes::from_static(b"\x40\x01\x00\x01a\xff\xff\xff")).unwrap();
        assert_eq!(msg.data(), &b"a"[..]);
    }

    #[test]
    fn decode_errors() {
        for short in [&b""[..], b"\x40", b"\x40\x00", b"\x40\x00\x00"] {
            assert_eq!(
                ChannelData::decode_slice(short),
                Err(TurnError::Truncated {
                    available: short.len()
                })
            );
        }
        for bad in [0x0000u16, 0x0001, 0x3FFF, 0x8000, 0xFFFF] {
            let [a, b] = bad.to_be_bytes();
            assert_eq!(
                ChannelData::decode_slice(&[a, b, 0, 0]),
                Err(TurnError::InvalidChannelNumber(bad))
            );
        }
        assert_eq!(
            ChannelData::decode_slice(b"\x40\x00\x00\x05abcd"),
            Err(TurnError::LengthOverrun {
                declared: 5,
                available: 4
            })
        );
        assert_eq!(
            ChannelData::decode_slice(b"\x40\x00\xff\xff"),
            Err(TurnError::LengthOverrun {
                declared: 0xFFFF,
                available: 0
            })
        );
        assert_eq!(
            ChannelData::decode_slice(b"\x40\x00\x00\x01a\0\0\0\0"),
            Err(TurnError::TrailingBytes {
                declared: 1,
                extra: 4
            })
        );
        assert_eq!(
            ChannelData::decode(Bytes::from_static(b"\x40\x00\x00\x00\0\0\0\0")),
            Err(TurnError::TrailingBytes {
                declared: 0,
                extra: 4
            })
        );
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            TurnError::InvalidChannelNumber(0x5000).to_string(),
            "invalid channel number 0x5000, RFC 8656 allows 0x4000..=0x4fff"
        );
    }

    fn payload() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..=64),
            proptest::collection::vec(any::<u8>(), 0..=ChannelData::MAX_DATA_LEN),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn round_trip(n in 0x4000u16..=0x4FFF, data in payload(), pad: bool, cut in 0usize..=3) {
            let channel = ch(n);
            let wire = encode(channel, &data, pad);
            prop_assert_eq!(wire.len(), ChannelData::encoded_len(data.len(), pad));
            prop_assert_eq!(wire.len() % 4 == 0, pad || data.len() % 4 == 0);
            // Any part of the padding may be missing over UDP.
            let keep = wire.len() - cut.min(wire.len() - 4 - data.len());
            let msg = ChannelData::decode(wire.slice(..keep)).unwrap();
            prop_assert_eq!(msg.channel(), channel);
            prop_assert_eq!(&msg.data()[..], &data[..]);
            let mut again = BytesMut::new();
            msg.encode(&mut again, pad);
            prop_assert_eq!(&again[..], &wire[..]);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..=64)) {
            if let Ok((channel, data)) = ChannelData::decode_slice(&bytes) {
                prop_assert_eq!(&bytes[..2], &channel.get().to_be_bytes()[..]);
                prop_assert!(bytes.len() - 4 - data.len() <= 3);
            }
        }
    }
}
