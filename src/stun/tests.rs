//! Malformed input, integrity placement and property round trips of the STUN codec.

use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::attribute::*;
use super::*;

const TID: TransactionId = TransactionId([9; 12]);

fn encode(attrs: &[Attribute], finish: impl FnOnce(&mut MessageEncoder<'_>)) -> Bytes {
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::ALLOCATE.request(), TID);
    for a in attrs {
        enc.add_attribute(a);
    }
    finish(&mut enc);
    enc.finish().unwrap();
    buf.freeze()
}

#[test]
fn nomination_is_a_24_bit_value_of_type_0xc001() {
    // draft-thatcher-ice-renomination-01 §3, libwebrtc's STUN_ATTR_NOMINATION.
    let raw = encode(&[Nomination(0x0001_0203).into()], |_| {});
    assert_eq!(&raw[20..28], &[0xC0, 0x01, 0, 4, 0, 1, 2, 3]);
    let msg = Message::decode(raw).unwrap();
    assert_eq!(
        msg.get::<Nomination>().unwrap().unwrap(),
        Nomination(0x0001_0203)
    );
    assert!(Attribute::is_known(Nomination::TYPE));
    assert!(!Nomination::TYPE.is_comprehension_required());
    // The reserved top byte is ignored.
    let v = Bytes::from_static(&[0xFF, 0, 0, 7]);
    assert_eq!(Nomination::decode(&v, &TID).unwrap(), Nomination(7));
}

fn header(len: u16) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u16(0x0001);
    b.put_u16(len);
    b.put_u32(MAGIC_COOKIE);
    b.put_slice(&TID.0);
    b
}

#[test]
fn truncated_header_at_every_length() {
    let full = encode(&[], |_| {});
    for n in 0..HEADER_LEN {
        assert!(matches!(
            Message::decode(full.slice(..n)),
            Err(StunError::Truncated { .. })
        ));
    }
}

#[test]
fn length_not_multiple_of_four() {
    let mut b = header(6);
    b.put_slice(&[0; 6]);
    assert_eq!(
        Message::decode(b.freeze()).unwrap_err(),
        StunError::UnalignedLength(6)
    );
}

#[test]
fn declared_length_longer_or_shorter_than_datagram() {
    let mut b = header(8);
    b.put_slice(&[0; 4]);
    assert!(matches!(
        Message::decode(b.freeze()),
        Err(StunError::Truncated { .. })
    ));
    let mut b = header(0);
    b.put_slice(&[0; 4]);
    assert!(matches!(
        Message::decode(b.freeze()),
        Err(StunError::LengthMismatch { .. })
    ));
}

#[test]
fn not_stun_and_bad_cookie() {
    let mut b = header(0);
    b[0] = 0x80;
    assert_eq!(
        Message::decode(b.clone().freeze()).unwrap_err(),
        StunError::NotStun(0x80)
    );
    b[0] = 0;
    b[4] = 0;
    assert!(matches!(
        Message::decode(b.freeze()),
        Err(StunError::BadMagicCookie(_))
    ));
}

#[test]
fn attribute_overrunning_the_message() {
    let mut b = header(8);
    b.put_u16(0x8022);
    b.put_u16(5); // 5 bytes + 3 padding = 8, but only 4 follow
    b.put_slice(&[b'a'; 4]);
    assert_eq!(
        Message::decode(b.freeze()).unwrap_err(),
        StunError::AttributeOverrun {
            typ: 0x8022,
            len: 5
        }
    );
    // A TLV header cut short.
    let mut b = header(4);
    b.put_u16(0x8022);
    b.put_u16(0xFFFF);
    assert!(matches!(
        Message::decode(b.freeze()),
        Err(StunError::AttributeOverrun { .. })
    ));
}

#[test]
fn three_byte_xor_mapped_address() {
    let mut b = header(8);
    b.put_u16(0x0020);
    b.put_u16(3);
    b.put_slice(&[0, 1, 2, 0]);
    let msg = Message::decode(b.freeze()).unwrap();
    assert!(matches!(
        msg.get::<XorMappedAddress>().unwrap(),
        Err(StunError::InvalidAttribute { typ: 0x0020, .. })
    ));
}

#[test]
fn bad_fingerprint_and_fingerprint_not_last() {
    let good = encode(&[Software::new("x").into()], |e| {
        e.fingerprint();
    });
    let mut bad = BytesMut::from(&good[..]);
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert_eq!(
        Message::decode(bad.freeze()).unwrap_err(),
        StunError::BadFingerprint
    );
    // Flip a covered byte instead.
    let mut bad = BytesMut::from(&good[..]);
    bad[24] ^= 1;
    assert_eq!(
        Message::decode(bad.freeze()).unwrap_err(),
        StunError::BadFingerprint
    );

    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING.request(), TID);
    enc.fingerprint().add(&Software::new("after"));
    enc.finish().unwrap();
    assert_eq!(
        Message::decode(buf.freeze()).unwrap_err(),
        StunError::FingerprintNotLast
    );
}

#[test]
fn attributes_after_integrity_are_ignored_except_fingerprint() {
    let key = b"key";
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING.request(), TID);
    enc.add(&Username::new("u"))
        .message_integrity(key)
        .add(&Software::new("ignored"))
        .fingerprint();
    enc.finish().unwrap();
    let msg = Message::decode(buf.freeze()).unwrap();
    assert!(msg.get::<Software>().is_none());
    assert!(msg.has_fingerprint());
    msg.verify_integrity(key).unwrap();
}

#[test]
fn both_integrities_on_one_message() {
    let key = [7u8; 16];
    let msg = Message::decode(encode(&[Username::new("u").into()], |e| {
        e.message_integrity(&key)
            .message_integrity_sha256(&key, 32)
            .fingerprint();
    }))
    .unwrap();
    msg.verify_integrity(&key).unwrap();
    msg.verify_integrity_sha256(&key).unwrap();
    assert!(msg.verify_integrity_sha256(&[8u8; 16]).is_err());
}

#[test]
fn truncated_sha256_integrity() {
    let key = [1u8; 32];
    for len in [16, 20, 24, 28, 32] {
        let raw = encode(&[Realm::new("r").into()], |e| {
            e.message_integrity_sha256(&key, len);
        });
        assert_eq!(raw.len(), HEADER_LEN + 8 + 4 + len);
        let msg = Message::decode(raw).unwrap();
        msg.verify_integrity_sha256(&key).unwrap();
        assert!(msg.verify_integrity_sha256(&[2u8; 32]).is_err());
    }
    // A 12-byte MESSAGE-INTEGRITY-SHA256 is malformed.
    let mut b = header(16);
    b.put_u16(0x001C);
    b.put_u16(12);
    b.put_slice(&[0; 12]);
    assert!(matches!(
        Message::decode(b.freeze()),
        Err(StunError::InvalidAttribute { typ: 0x001C, .. })
    ));
}

#[test]
fn tampered_message_fails_integrity() {
    let key = b"secret";
    let raw = encode(&[Username::new("alice").into()], |e| {
        e.message_integrity(key);
    });
    let mut bad = BytesMut::from(&raw[..]);
    bad[25] ^= 0x20;
    let msg = Message::decode(bad.freeze()).unwrap();
    assert_eq!(msg.verify_integrity(key), Err(StunError::IntegrityMismatch));
    let plain = Message::decode(encode(&[], |_| {})).unwrap();
    assert_eq!(
        plain.verify_integrity(key),
        Err(StunError::MissingIntegrity)
    );
}

#[test]
fn unknown_comprehension_required_attributes_are_reported() {
    let raw = encode(
        &[
            Attribute::Unknown {
                typ: AttributeType(0x7F01),
                value: Bytes::from_static(b"x"),
            },
            Attribute::Unknown {
                typ: AttributeType(0xC001),
                value: Bytes::new(),
            },
            Lifetime(600).into(),
        ],
        |_| {},
    );
    let msg = Message::decode(raw).unwrap();
    assert_eq!(
        msg.unknown_comprehension_required(),
        vec![AttributeType(0x7F01)]
    );
}

#[test]
fn message_type_interleaving() {
    assert_eq!(Method::BINDING.request().to_u16(), 0x0001);
    assert_eq!(Method::BINDING.success().to_u16(), 0x0101);
    assert_eq!(Method::BINDING.error().to_u16(), 0x0111);
    assert_eq!(Method::SEND.indication().to_u16(), 0x0016);
    assert_eq!(Method::DATA.indication().to_u16(), 0x0017);
    assert_eq!(Method::ALLOCATE.error().to_u16(), 0x0113);
    for t in 0..0x4000u16 {
        assert_eq!(MessageType::from_u16(t).to_u16(), t);
    }
}

#[test]
fn error_code_range() {
    let raw = encode(&[ErrorCode::new(438).into()], |_| {});
    let msg = Message::decode(raw).unwrap();
    let e = msg.get::<ErrorCode>().unwrap().unwrap();
    assert_eq!((e.code, e.reason.as_str()), (438, "Stale Nonce"));
    let mut b = header(8);
    b.put_u16(0x0009);
    b.put_u16(4);
    b.put_slice(&[0, 0, 7, 0]);
    let msg = Message::decode(b.freeze()).unwrap();
    assert!(msg.get::<ErrorCode>().unwrap().is_err());
}

/// A message holding one attribute with a raw value.
fn with_raw(typ: u16, value: &[u8]) -> Message {
    let pad = (4 - value.len() % 4) % 4;
    let mut b = header((4 + value.len() + pad) as u16);
    b.put_u16(typ);
    b.put_u16(value.len() as u16);
    b.put_slice(value);
    b.put_bytes(0, pad);
    Message::decode(b.freeze()).unwrap()
}

#[test]
fn channel_number_holds_only_rfc_5766s_range() {
    for (raw, want) in [
        (0x3FFF, None),
        (0x4000, Some(0x4000)),
        (0x4FFF, Some(0x4FFF)),
        (0x5000, Some(0x5000)),
        (0x7FFE, Some(0x7FFE)),
        (0x7FFF, Some(0x7FFF)),
        (0x8000, None),
        (0xFFFF, None),
    ] {
        let [hi, lo] = u16::to_be_bytes(raw);
        let got = with_raw(0x000C, &[hi, lo, 0, 0])
            .get::<ChannelNumber>()
            .unwrap();
        assert_eq!(got.ok().map(ChannelNumber::get), want, "{raw:#06x}");
    }
    // RFC 8656 §18.1: the RFFU bits are ignored on reception.
    let got = with_raw(0x000C, &[0x40, 0x01, 0xAB, 0xCD]).get::<ChannelNumber>();
    assert_eq!(got.unwrap().unwrap().get(), 0x4001);
    assert!(with_raw(0x000C, &[0x40, 0x01])
        .get::<ChannelNumber>()
        .unwrap()
        .is_err());
}

#[test]
fn password_algorithm_holds_only_what_floe_implements() {
    let get = |v: &[u8]| with_raw(0x001D, v).get::<PasswordAlgorithm>().unwrap();
    assert_eq!(get(&[0, 1, 0, 0]).unwrap(), PasswordAlgorithm::Md5);
    assert_eq!(get(&[0, 2, 0, 0]).unwrap(), PasswordAlgorithm::Sha256);
    assert!(get(&[0, 3, 0, 0]).is_err(), "unknown algorithm");
    assert!(get(&[0, 2, 0, 4, 1, 2, 3, 4]).is_err(), "parameters");
    assert!(get(&[0, 2, 0, 0, 0, 0, 0, 0]).is_err(), "trailing bytes");
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
    ]
}

fn text(max_chars: usize) -> impl Strategy<Value = Text> {
    proptest::collection::vec(any::<char>(), 0..max_chars)
        .prop_map(|c| Text::new(c.into_iter().collect::<String>()))
        .prop_filter("fits", |t| t.as_bytes().len() <= 255)
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn family() -> impl Strategy<Value = AddressFamily> {
    prop_oneof![Just(AddressFamily::V4), Just(AddressFamily::V6)]
}

fn algorithm_entry() -> impl Strategy<Value = PasswordAlgorithmEntry> {
    (any::<u16>(), bytes(12))
        .prop_map(|(algorithm, params)| PasswordAlgorithmEntry { algorithm, params })
}

/// Every attribute except MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT, which change how
/// the rest of the message is read and are tested on their own.
fn attribute() -> impl Strategy<Value = Attribute> {
    let addresses = prop_oneof![
        socket_addr().prop_map(|a| MappedAddress(a).into()),
        socket_addr().prop_map(|a| XorMappedAddress(a).into()),
        socket_addr().prop_map(|a| AlternateServer(a).into()),
        socket_addr().prop_map(|a| XorPeerAddress(a).into()),
        socket_addr().prop_map(|a| XorRelayedAddress(a).into()),
        socket_addr().prop_map(|a| ResponseOrigin(a).into()),
        socket_addr().prop_map(|a| OtherAddress(a).into()),
    ];
    let texts = prop_oneof![
        text(60).prop_map(|t| Username(t).into()),
        text(60).prop_map(|t| Realm(t).into()),
        text(60).prop_map(|t| Nonce(t).into()),
        text(60).prop_map(|t| Software(t).into()),
        text(60).prop_map(|t| AlternateDomain(t).into()),
        (300u16..700, text(40)).prop_map(|(code, reason)| ErrorCode { code, reason }.into()),
        (family(), 300u16..700, text(40)).prop_map(|(family, code, reason)| AddressErrorCode {
            family,
            code,
            reason
        }
        .into()),
    ];
    let numbers = prop_oneof![
        any::<u32>().prop_map(|v| Lifetime(v).into()),
        any::<u32>().prop_map(|v| Priority(v).into()),
        any::<u32>().prop_map(|v| ConnectionId(v).into()),
        any::<u64>().prop_map(|v| IceControlled(v).into()),
        any::<u64>().prop_map(|v| IceControlling(v).into()),
        (0..=Nomination::MAX).prop_map(|v| Nomination(v).into()),
        (0x4000u16..=0x7FFF).prop_map(|v| ChannelNumber::new_rfc5766(v).unwrap().into()),
        any::<u16>().prop_map(|v| ResponsePort(v).into()),
        any::<u8>().prop_map(|v| RequestedTransport(v).into()),
        any::<bool>().prop_map(|reserve| EvenPort { reserve }.into()),
        (any::<bool>(), any::<bool>()).prop_map(|(change_ip, change_port)| ChangeRequest {
            change_ip,
            change_port
        }
        .into()),
        (any::<u8>(), any::<u8>(), any::<u32>()).prop_map(|(icmp_type, code, error_data)| Icmp {
            icmp_type,
            code,
            error_data
        }
        .into()),
        family().prop_map(|f| RequestedAddressFamily(f).into()),
        family().prop_map(|f| AdditionalAddressFamily(f).into()),
        any::<[u8; 8]>().prop_map(|t| ReservationToken(t).into()),
        any::<[u8; 32]>().prop_map(|h| Userhash(h).into()),
        Just(DontFragment.into()),
        Just(UseCandidate.into()),
    ];
    let raw = prop_oneof![
        bytes(200).prop_map(|b| Data(b).into()),
        bytes(64).prop_map(|b| Padding(b).into()),
        proptest::collection::vec(any::<u16>().prop_map(AttributeType), 0..8)
            .prop_map(|v| UnknownAttributes(v).into()),
        proptest::collection::vec(algorithm_entry(), 0..4)
            .prop_map(|v| PasswordAlgorithms(v).into()),
        prop_oneof![
            Just(PasswordAlgorithm::Md5),
            Just(PasswordAlgorithm::Sha256)
        ]
        .prop_map(Into::into),
        (any::<u16>(), bytes(40))
            .prop_filter("unknown type", |(t, _)| !Attribute::is_known(
                AttributeType(*t)
            ))
            .prop_map(|(t, value)| Attribute::Unknown {
                typ: AttributeType(t),
                value
            }),
    ];
    prop_oneof![addresses, texts, numbers, raw]
}

proptest! {
    #[test]
    fn every_attribute_round_trips(attrs in proptest::collection::vec(attribute(), 0..12), fp in any::<bool>()) {
        let raw = encode(&attrs, |e| { if fp { e.fingerprint(); } });
        let msg = Message::decode(raw).unwrap();
        prop_assert_eq!(msg.has_fingerprint(), fp);
        let back: Vec<Attribute> = msg.attributes().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(back, attrs);
    }

    #[test]
    fn integrity_round_trips(attrs in proptest::collection::vec(attribute(), 0..6), key in proptest::collection::vec(any::<u8>(), 1..40)) {
        let raw = encode(&attrs, |e| { e.message_integrity(&key).message_integrity_sha256(&key, 32).fingerprint(); });
        let msg = Message::decode(raw).unwrap();
        prop_assert!(msg.verify_integrity(&key).is_ok());
        prop_assert!(msg.verify_integrity_sha256(&key).is_ok());
    }

    #[test]
    fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(msg) = Message::decode(Bytes::from(data)) {
            for a in msg.attributes() { let _ = a; }
            let _ = msg.verify_integrity(b"k");
            let _ = msg.verify_integrity_sha256(b"k");
        }
    }
}
