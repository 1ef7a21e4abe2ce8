//! RFC 8489: decoding never panics; whatever decodes can be read attribute by
//! attribute, checked for integrity, and re-encoded into a message that decodes to the
//! same attributes and verifies.
#![no_main]

use bytes::{Bytes, BytesMut};
use floe::stun::{Attribute, Message, MessageEncoder};
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"fuzz-key";

fuzz_target!(|input: &[u8]| {
    let Ok(msg) = Message::decode(Bytes::copy_from_slice(input)) else {
        return;
    };
    let _ = msg.verify_integrity(KEY);
    let _ = msg.verify_integrity_sha256(KEY);
    let _ = msg.unknown_comprehension_required();
    let attrs: Vec<Attribute> = msg
        .attributes()
        .filter_map(Result::ok)
        .filter(|a| {
            !matches!(
                a,
                Attribute::MessageIntegrity(_) | Attribute::MessageIntegritySha256(_) | Attribute::Fingerprint(_)
            )
        })
        .collect();
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, msg.typ(), msg.transaction_id());
    for a in &attrs {
        enc.add_attribute(a);
    }
    enc.message_integrity(KEY).message_integrity_sha256(KEY, 32).fingerprint();
    if enc.finish().is_err() {
        return; // grew past 64 KiB
    }
    let again = Message::decode(buf.freeze()).expect("what floe encodes decodes");
    again.verify_integrity(KEY).expect("MESSAGE-INTEGRITY verifies");
    again.verify_integrity_sha256(KEY).expect("MESSAGE-INTEGRITY-SHA256 verifies");
    assert!(again.has_fingerprint());
    let back: Vec<Attribute> = again
        .attributes()
        .filter_map(Result::ok)
        .filter(|a| !matches!(a, Attribute::MessageIntegrity(_) | Attribute::MessageIntegritySha256(_)))
        .collect();
    assert_eq!(back, attrs);
});
