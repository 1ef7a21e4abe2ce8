//! RFC 8656 §12.4-12.6: ChannelData decode never panics, and whatever decodes re-encodes to
//! the same bytes (padding aside).
#![no_main]

use bytes::{Bytes, BytesMut};
use floe::turn::ChannelData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let packet = Bytes::copy_from_slice(input);
    let Ok(msg) = ChannelData::decode(packet) else {
        assert!(ChannelData::decode_slice(input).is_err());
        return;
    };
    let (channel, data) = ChannelData::decode_slice(input).expect("both decoders agree");
    assert_eq!(channel, msg.channel());
    assert_eq!(data, &msg.data()[..]);

    let end = ChannelData::HEADER_LEN + data.len();
    assert!(input.len() - end <= 3, "at most 3 bytes of padding");

    let mut buf = BytesMut::new();
    msg.encode(&mut buf, false);
    assert_eq!(&buf[..], &input[..end]);

    buf.clear();
    ChannelData::encode_into(channel, data, &mut buf, true).expect("length fits");
    assert_eq!(buf.len() % 4, 0);
    assert_eq!(buf.len(), ChannelData::encoded_len(data.len(), true));
    assert_eq!(&buf[..end], &input[..end]);
});
