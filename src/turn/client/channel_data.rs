//! A private ChannelData codec (RFC 8656 §12.4, §12.5) for the client.
//!
//! Stand-in for the shared `turn::channel_data` module: these two functions are the only
//! place the client touches ChannelData framing, so swapping them for the shared codec is
//! local to this file.

use bytes::{BufMut, Bytes, BytesMut};

/// RFC 8656 §12: the lowest channel number.
pub(super) const CHANNEL_MIN: u16 = 0x4000;
/// RFC 8656 §12: the highest channel number.
pub(super) const CHANNEL_MAX: u16 = 0x4FFF;
/// RFC 8656 §12.4: the largest data the 16-bit Length field can carry.
pub(super) const MAX_DATA_LEN: usize = u16::MAX as usize;

/// RFC 8656 §12.4, §12.5: channel number, length, data; padded to a multiple of 4 when
/// `pad` (mandatory over TCP and TLS). The caller guarantees `data.len() <= MAX_DATA_LEN`.
pub(super) fn encode_channel_data(channel: u16, data: &[u8], pad: bool) -> Bytes {
    let padding = if pad { (4 - data.len() % 4) % 4 } else { 0 };
    let mut buf = BytesMut::with_capacity(4 + data.len() + padding);
    buf.put_u16(channel);
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
    buf.put_bytes(0, padding);
    buf.freeze()
}

/// RFC 8656 §12.6: the channel and data (a slice of `packet`) of one ChannelData message.
/// Up to 3 bytes of padding may follow the data; anything else is `None`.
pub(super) fn decode_channel_data(packet: &Bytes) -> Option<(u16, Bytes)> {
    if packet.len() < 4 {
        return None;
    }
    let channel = u16::from_be_bytes([packet[0], packet[1]]);
    let len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if !(CHANNEL_MIN..=CHANNEL_MAX).contains(&channel) {
        return None;
    }
    let end = 4 + len;
    if packet.len() < end || packet.len() - end > 3 {
        return None;
    }
    Some((channel, packet.slice(4..end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_and_without_padding() {
        let udp = encode_channel_data(0x4001, b"hello", false);
        assert_eq!(&udp[..], b"\x40\x01\x00\x05hello");
        let tcp = encode_channel_data(0x4001, b"hello", true);
        assert_eq!(&tcp[..], b"\x40\x01\x00\x05hello\0\0\0");
        for m in [udp, tcp] {
            let (ch, data) = decode_channel_data(&m).unwrap();
            assert_eq!((ch, &data[..]), (0x4001, &b"hello"[..]));
        }
    }

    #[test]
    fn rejects_bad_framing() {
        assert!(decode_channel_data(&Bytes::from_static(b"\x40\x00\x00")).is_none());
        assert!(decode_channel_data(&Bytes::from_static(b"\x50\x00\x00\x00")).is_none());
        assert!(decode_channel_data(&Bytes::from_static(b"\x40\x00\x00\x02a")).is_none());
        assert!(decode_channel_data(&Bytes::from_static(b"\x40\x00\x00\x00abcd")).is_none());
    }
}
