//! RFC 5769 and RFC 8489 Appendix B.1 test vectors: decode, verify, re-encode.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use super::*;
use crate::stun::attribute::*;
use crate::stun::credentials::{userhash, IntegrityKey};
use crate::stun::PasswordAlgorithm as Algo;

fn hex(s: &str) -> Bytes {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

const SHORT_TERM_PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const RFC5769_TID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];
/// "マトリックス", already prepared.
const MATRIX_USER: &str = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
/// RFC 5769 §2.4's password "The<U+00AD>M<U+00AA>tr<U+2168>" after SASLprep, which the
/// MESSAGE-INTEGRITY of the vector was computed with.
const MATRIX_PASSWORD: &str = "TheMatrIX";

/// RFC 5769 §2.1: sample request (SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
/// MESSAGE-INTEGRITY, FINGERPRINT; padding bytes are 0x20).
fn sample_request() -> Bytes {
    hex("000100582112a442b7e7a701bc34d686fa87dfae
         802200105354554e207465737420636c69656e74
         002400046e0001ff
         80290008932ff9b151263b36
         000600096576746a3a68367659202020
         000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2
         80280004e57a3bcf")
}

/// RFC 5769 §2.2: sample IPv4 response.
fn sample_ipv4_response() -> Bytes {
    hex("0101003c2112a442b7e7a701bc34d686fa87dfae
         8022000b7465737420766563746f7220
         002000080001a147e112a643
         000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7
         80280004c07d4c96")
}

/// RFC 5769 §2.3: sample IPv6 response.
fn sample_ipv6_response() -> Bytes {
    hex("010100482112a442b7e7a701bc34d686fa87dfae
         8022000b7465737420766563746f7220
         002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9
         00080014a382954e4be67bf11784c97c8292c275bfe3ed41
         80280004c8fb0b4c")
}

/// RFC 5769 §2.4: sample request with long-term authentication.
fn sample_long_term_request() -> Bytes {
    hex("000100602112a44278ad3433c6ad72c029da412e
         00060012e3839ee38388e383aae38383e382afe382b90000
         0015001c662f2f3439396b393534643 64f4c33346f4c39465354767936347341
         0014000b6578616d706c652e6f726700
         00080014f67024656dd64a3e02b8e0712e85c9a28ca89666")
}

#[test]
fn rfc5769_sample_request() {
    let raw = sample_request();
    let msg = Message::decode(raw.clone()).unwrap();
    assert_eq!(msg.typ(), Method::BINDING.request());
    assert_eq!(msg.transaction_id(), TransactionId(RFC5769_TID));
    assert!(msg.has_fingerprint());
    let software = msg.get::<Software>().unwrap().unwrap();
    assert_eq!(software.as_str(), "STUN test client");
    assert_eq!(
        msg.get::<Priority>().unwrap().unwrap(),
        Priority(0x6e0001ff)
    );
    assert_eq!(
        msg.get::<IceControlled>().unwrap().unwrap(),
        IceControlled(0x932ff9b151263b36)
    );
    let username = msg.get::<Username>().unwrap().unwrap();
    assert_eq!(username.as_str(), "evtj:h6vY");
    let key = IntegrityKey::short_term(SHORT_TERM_PASSWORD).unwrap();
    msg.verify_integrity(key.as_bytes()).unwrap();
    assert_eq!(
        msg.verify_integrity(b"wrong"),
        Err(StunError::IntegrityMismatch)
    );

    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, msg.typ(), msg.transaction_id());
    enc.padding_byte(0x20)
        .add(&software)
        .add(&Priority(0x6e0001ff))
        .add(&IceControlled(0x932ff9b151263b36))
        .add(&username)
        .message_integrity(key.as_bytes())
        .fingerprint();
    assert_eq!(enc.finish().unwrap(), raw.len());
    assert_eq!(&buf[..], &raw[..]);
}

fn check_response(raw: Bytes, mapped: &str) {
    let msg = Message::decode(raw.clone()).unwrap();
    assert_eq!(msg.typ(), Method::BINDING.success());
    let addr: SocketAddr = mapped.parse().unwrap();
    assert_eq!(
        msg.get::<XorMappedAddress>().unwrap().unwrap(),
        XorMappedAddress(addr)
    );
    let key = IntegrityKey::short_term(SHORT_TERM_PASSWORD).unwrap();
    msg.verify_integrity(key.as_bytes()).unwrap();

    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, msg.typ(), msg.transaction_id());
    enc.padding_byte(0x20)
        .add(&Software::new("test vector"))
        .add(&XorMappedAddress(addr))
        .message_integrity(key.as_bytes())
        .fingerprint();
    enc.finish().unwrap();
    assert_eq!(&buf[..], &raw[..]);
}

#[test]
fn rfc5769_sample_ipv4_response() {
    check_response(sample_ipv4_response(), "192.0.2.1:32853");
}

#[test]
fn rfc5769_sample_ipv6_response() {
    check_response(
        sample_ipv6_response(),
        "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
    );
}

#[test]
fn rfc5769_sample_long_term_request() {
    let raw = sample_long_term_request();
    let msg = Message::decode(raw.clone()).unwrap();
    assert!(!msg.has_fingerprint());
    let username = msg.get::<Username>().unwrap().unwrap();
    let nonce = msg.get::<Nonce>().unwrap().unwrap();
    let realm = msg.get::<Realm>().unwrap().unwrap();
    assert_eq!(username.as_str(), MATRIX_USER);
    assert_eq!(nonce.as_str(), "f//499k954d6OL34oL9FSTvy64sA");
    assert_eq!(realm.as_str(), "example.org");
    let key =
        IntegrityKey::long_term(Algo::Md5, MATRIX_USER, "example.org", MATRIX_PASSWORD).unwrap();
    msg.verify_integrity(key.as_bytes()).unwrap();
    let wrong =
        IntegrityKey::long_term(Algo::Md5, MATRIX_USER, "example.org", "TheMatrix").unwrap();
    assert!(msg.verify_integrity(wrong.as_bytes()).is_err());

    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, msg.typ(), msg.transaction_id());
    enc.add(&username)
        .add(&nonce)
        .add(&realm)
        .message_integrity(key.as_bytes());
    enc.finish().unwrap();
    assert_eq!(&buf[..], &raw[..]);
}

/// RFC 8489 Appendix B.1 as corrected by errata 6268 (the printed vector's lengths
/// disagree with its contents): USERHASH, NONCE, REALM, PASSWORD-ALGORITHM SHA-256
/// and MESSAGE-INTEGRITY-SHA256.
#[test]
fn rfc8489_b1_sha256_and_userhash() {
    let raw = hex("000100902112a44278ad3433c6ad72c029da412e
         001e00204a3cf38fef6992bda952c6780417da0f248194 15569e60b205c46e41407f1704
         00150029 6f624d61744a6f73324141414366 2f2f3439396b393534643 64f4c33346f4c39465354767936347341 000000
         0014000b6578616d706c652e6f726700
         001d000400020000
         001c0020b5c7bf005b6c52a21c51c5e892f81924136296cb927c43149309278cc6518e65");
    let msg = Message::decode(raw.clone()).unwrap();
    let hash = userhash(MATRIX_USER, "example.org").unwrap();
    assert_eq!(msg.get::<Userhash>().unwrap().unwrap(), Userhash(hash));
    let nonce = msg.get::<Nonce>().unwrap().unwrap();
    assert_eq!(nonce.as_str(), "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA");
    let alg = msg.get::<PasswordAlgorithm>().unwrap().unwrap();
    assert_eq!(alg, Algo::Sha256);

    let key =
        IntegrityKey::long_term(Algo::Sha256, MATRIX_USER, "example.org", MATRIX_PASSWORD).unwrap();
    msg.verify_integrity_sha256(key.as_bytes()).unwrap();
    assert_eq!(
        msg.verify_integrity(key.as_bytes()),
        Err(StunError::MissingIntegrity)
    );
    let md5 =
        IntegrityKey::long_term(Algo::Md5, MATRIX_USER, "example.org", MATRIX_PASSWORD).unwrap();
    assert!(msg.verify_integrity_sha256(md5.as_bytes()).is_err());

    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, msg.typ(), msg.transaction_id());
    enc.add(&Userhash(hash))
        .add(&nonce)
        .add(&Realm::new("example.org"))
        .add(&Algo::Sha256)
        .message_integrity_sha256(key.as_bytes(), 32);
    enc.finish().unwrap();
    assert_eq!(&buf[..], &raw[..]);
}
