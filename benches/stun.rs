//! The STUN codec of floe, side by side with the crates.io `stun-rs` crate and
//! webrtc-rs `stun`, doing the same work on the same bytes.
//!
//! - `decode_verify`: a TURN Allocate request as a browser or a coturn client sends it
//!   (REQUESTED-TRANSPORT UDP, LIFETIME, SOFTWARE, USERNAME, REALM, NONCE,
//!   MESSAGE-INTEGRITY with the long-term MD5 key, FINGERPRINT) is decoded from bytes;
//!   USERNAME, REALM, NONCE, REQUESTED-TRANSPORT and LIFETIME are read; MESSAGE-INTEGRITY
//!   (with a key derived once, outside the loop) and FINGERPRINT are verified.
//! - `encode`: a Binding success response with XOR-MAPPED-ADDRESS and FINGERPRINT is
//!   written into a buffer that is reused across iterations.
//!
//! Before measuring, every implementation is checked: each accepts the request, reads the
//! same values, rejects it with a wrong key and with a flipped byte, and all three encoders
//! produce the same bytes.
//!
//! Run: `cargo bench -p floe-benches --bench stun -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion};

use floe::stun::attribute::{
    Lifetime, Nonce, Realm, RequestedTransport, Software, Username, XorMappedAddress,
};
use floe::stun::{IntegrityKey, Message, MessageEncoder, Method, PasswordAlgorithm, TransactionId};

const USERNAME: &str = "1735689600:alice";
const REALM: &str = "turn.example.org";
const PASSWORD: &str = "Qm9iIGlzIG5vdCBoZXJl";
/// A coturn-style 16-hex-digit nonce.
const NONCE: &str = "4a8e1c9f0d2b7e63";
const SOFTWARE: &str = "floe-bench client 0.1";
const LIFETIME: u32 = 600;
const TID: [u8; 12] = [
    0x5a, 0x11, 0x7c, 0x02, 0x93, 0xe4, 0x48, 0x0b, 0x6f, 0xd1, 0x2c, 0x85,
];
const MAPPED: &str = "203.0.113.77:54321";

/// What each implementation hands back after decoding and verifying: the values a TURN
/// server reads from an Allocate request (lengths stand for the strings).
#[derive(Debug, PartialEq, Eq)]
struct Read {
    username: usize,
    realm: usize,
    nonce: usize,
    transport: u8,
    lifetime: u32,
}

fn expected() -> Read {
    Read {
        username: USERNAME.len(),
        realm: REALM.len(),
        nonce: NONCE.len(),
        transport: 17,
        lifetime: LIFETIME,
    }
}

/// The Allocate request, built once with floe's encoder.
fn allocate_request(key: &IntegrityKey) -> Bytes {
    let mut buf = BytesMut::with_capacity(256);
    let mut enc = MessageEncoder::new(&mut buf, Method::ALLOCATE.request(), TransactionId(TID));
    enc.add(&RequestedTransport(RequestedTransport::UDP))
        .add(&Lifetime(LIFETIME))
        .add(&Software::new(SOFTWARE))
        .add(&Username::new(USERNAME))
        .add(&Realm::new(REALM))
        .add(&Nonce::new(NONCE))
        .message_integrity(key.as_bytes())
        .fingerprint();
    enc.finish().expect("encode the Allocate request");
    buf.freeze()
}

// ---------------------------------------------------------------- floe

fn floe_decode_verify(raw: &Bytes, key: &[u8]) -> Result<Read, String> {
    let msg = Message::decode(raw.clone()).map_err(|e| e.to_string())?;
    if !msg.has_fingerprint() {
        return Err("no FINGERPRINT".into());
    }
    msg.verify_integrity(key).map_err(|e| e.to_string())?;
    let get_err = |what: &str| format!("{what} missing or invalid");
    let username = msg
        .get::<Username>()
        .and_then(Result::ok)
        .ok_or_else(|| get_err("USERNAME"))?;
    let realm = msg
        .get::<Realm>()
        .and_then(Result::ok)
        .ok_or_else(|| get_err("REALM"))?;
    let nonce = msg
        .get::<Nonce>()
        .and_then(Result::ok)
        .ok_or_else(|| get_err("NONCE"))?;
    let transport = msg
        .get::<RequestedTransport>()
        .and_then(Result::ok)
        .ok_or_else(|| get_err("REQUESTED-TRANSPORT"))?;
    let lifetime = msg
        .get::<Lifetime>()
        .and_then(Result::ok)
        .ok_or_else(|| get_err("LIFETIME"))?;
    Ok(Read {
        username: username.as_str().len(),
        realm: realm.as_str().len(),
        nonce: nonce.as_str().len(),
        transport: transport.0,
        lifetime: lifetime.0,
    })
}

fn floe_encode(buf: &mut BytesMut, tid: TransactionId, addr: SocketAddr) {
    buf.clear();
    let mut enc = MessageEncoder::new(buf, Method::BINDING.success(), tid);
    enc.add(&XorMappedAddress(addr)).fingerprint();
    enc.finish().expect("encode");
}

// ---------------------------------------------------------------- stun-rs

mod stunrs {
    use std::net::SocketAddr;

    use stun_rs::attributes::stun::{Fingerprint, Nonce, Realm, UserName, XorMappedAddress};
    use stun_rs::attributes::turn::{LifeTime, RequestedTrasport};
    use stun_rs::methods::BINDING;
    use stun_rs::{
        Algorithm, AlgorithmId, DecoderContextBuilder, HMACKey, MessageClass, MessageDecoder,
        MessageDecoderBuilder, MessageEncoder, MessageEncoderBuilder, StunMessageBuilder,
        TransactionId,
    };

    use super::Read;

    /// The long-term key, derived once. stun-rs derives it from the strings (it has no
    /// constructor from raw key bytes); `check` asserts it equals floe's.
    pub fn key(user: &str, realm: &str, pass: &str) -> HMACKey {
        HMACKey::new_long_term(user, realm, pass, Algorithm::from(AlgorithmId::MD5))
            .expect("stun-rs key")
    }

    /// stun-rs checks MESSAGE-INTEGRITY and FINGERPRINT while it decodes, with the key
    /// held in the decoder's context.
    pub fn decoder(key: HMACKey) -> MessageDecoder {
        let ctx = DecoderContextBuilder::default()
            .with_key(key)
            .with_validation()
            .build();
        MessageDecoderBuilder::default().with_context(ctx).build()
    }

    pub fn decode_verify(decoder: &MessageDecoder, raw: &[u8]) -> Result<Read, String> {
        let (msg, _) = decoder.decode(raw).map_err(|e| format!("{e:?}"))?;
        fn attr<'m>(
            r: Option<&'m stun_rs::StunAttribute>,
            what: &str,
        ) -> Result<&'m stun_rs::StunAttribute, String> {
            r.ok_or_else(|| format!("{what} missing"))
        }
        let e = |e: stun_rs::StunError| format!("{e:?}");
        // Decoding with validation checks a FINGERPRINT that is present; the request
        // must carry one, as in floe's `has_fingerprint`.
        attr(msg.get::<Fingerprint>(), "FINGERPRINT")?;
        let username = attr(msg.get::<UserName>(), "USERNAME")?
            .as_user_name()
            .map_err(e)?;
        let realm = attr(msg.get::<Realm>(), "REALM")?.as_realm().map_err(e)?;
        let nonce = attr(msg.get::<Nonce>(), "NONCE")?.as_nonce().map_err(e)?;
        let transport = attr(msg.get::<RequestedTrasport>(), "REQUESTED-TRANSPORT")?
            .as_requested_trasport()
            .map_err(e)?;
        let lifetime = attr(msg.get::<LifeTime>(), "LIFETIME")?
            .as_life_time()
            .map_err(e)?;
        Ok(Read {
            username: username.as_str().len(),
            realm: realm.as_str().len(),
            nonce: nonce.as_str().len(),
            transport: transport.protocol().as_u8(),
            lifetime: lifetime.as_u32(),
        })
    }

    pub fn encoder() -> MessageEncoder {
        MessageEncoderBuilder::default().build()
    }

    /// stun-rs builds a message value, then encodes it into a caller's buffer.
    pub fn encode(
        encoder: &MessageEncoder,
        buf: &mut [u8],
        tid: [u8; 12],
        addr: SocketAddr,
    ) -> usize {
        let msg = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
            .with_transaction_id(TransactionId::from(tid))
            .with_attribute(XorMappedAddress::from(addr))
            .with_attribute(Fingerprint::default())
            .build();
        encoder.encode(buf, &msg).expect("stun-rs encode")
    }
}

// ---------------------------------------------------------------- webrtc-rs stun

mod webrtc {
    use std::net::SocketAddr;

    use stun::agent::TransactionId;
    use stun::attributes::{
        ATTR_LIFETIME, ATTR_NONCE, ATTR_REALM, ATTR_REQUESTED_TRANSPORT, ATTR_USERNAME,
    };
    use stun::fingerprint::FINGERPRINT;
    use stun::integrity::MessageIntegrity;
    use stun::message::{Message, Setter, BINDING_SUCCESS};
    use stun::textattrs::TextAttribute;
    use stun::xoraddr::XorMappedAddress;

    use super::Read;

    /// The long-term key, derived once (MD5 of "user:realm:pass").
    pub fn key(user: &str, realm: &str, pass: &str) -> MessageIntegrity {
        MessageIntegrity::new_long_term_integrity(user.into(), realm.into(), pass.into())
    }

    /// Decodes into a reused `Message` (`write` copies the datagram into its buffer and
    /// decodes it), then checks MESSAGE-INTEGRITY and FINGERPRINT.
    ///
    /// `stun` has no REQUESTED-TRANSPORT or LIFETIME types (they live in webrtc-rs
    /// `turn`, whose getters do exactly this: `m.get(..)`, a length check, a
    /// big-endian read).
    pub fn decode_verify(
        m: &mut Message,
        key: &MessageIntegrity,
        raw: &[u8],
    ) -> Result<Read, String> {
        let e = |e: stun::Error| e.to_string();
        m.write(raw).map_err(e)?;
        key.check(m).map_err(e)?;
        FINGERPRINT.check(m).map_err(e)?;
        let username = TextAttribute::get_from_as(m, ATTR_USERNAME).map_err(e)?;
        let realm = TextAttribute::get_from_as(m, ATTR_REALM).map_err(e)?;
        let nonce = TextAttribute::get_from_as(m, ATTR_NONCE).map_err(e)?;
        let transport = m.get(ATTR_REQUESTED_TRANSPORT).map_err(e)?;
        if transport.len() != 4 {
            return Err("REQUESTED-TRANSPORT: wrong length".into());
        }
        let lifetime = m.get(ATTR_LIFETIME).map_err(e)?;
        let lifetime: [u8; 4] = lifetime
            .as_slice()
            .try_into()
            .map_err(|_| "LIFETIME: wrong length".to_string())?;
        Ok(Read {
            username: username.text.len(),
            realm: realm.text.len(),
            nonce: nonce.text.len(),
            transport: transport[0],
            lifetime: u32::from_be_bytes(lifetime),
        })
    }

    /// Re-encodes into a reused `Message`: what `Message::build` does, without boxing
    /// each setter.
    pub fn encode(m: &mut Message, tid: [u8; 12], addr: SocketAddr) {
        m.reset();
        m.write_header();
        BINDING_SUCCESS.add_to(m).expect("type");
        TransactionId(tid).add_to(m).expect("tid");
        XorMappedAddress {
            ip: addr.ip(),
            port: addr.port(),
        }
        .add_to(m)
        .expect("XOR-MAPPED-ADDRESS");
        FINGERPRINT.add_to(m).expect("FINGERPRINT");
    }
}

// ---------------------------------------------------------------- checks and benches

/// The request with one bit of its FINGERPRINT value flipped: MESSAGE-INTEGRITY still
/// holds, so only a FINGERPRINT check rejects it.
fn bad_fingerprint(raw: &Bytes) -> Bytes {
    let mut v = raw.to_vec();
    *v.last_mut().unwrap() ^= 1;
    v.into()
}

fn decode_verify(c: &mut Criterion) {
    let key = IntegrityKey::long_term(PasswordAlgorithm::Md5, USERNAME, REALM, PASSWORD).unwrap();
    let wrong = IntegrityKey::long_term(PasswordAlgorithm::Md5, USERNAME, REALM, "not it").unwrap();
    let raw = allocate_request(&key);
    let bad_fp = bad_fingerprint(&raw);

    // floe
    assert_eq!(floe_decode_verify(&raw, key.as_bytes()), Ok(expected()));
    assert!(floe_decode_verify(&raw, wrong.as_bytes()).is_err());
    assert!(floe_decode_verify(&bad_fp, key.as_bytes()).is_err());

    // stun-rs
    let srs_key = stunrs::key(USERNAME, REALM, PASSWORD);
    assert_eq!(srs_key.as_bytes(), key.as_bytes(), "same long-term key");
    let srs = stunrs::decoder(srs_key);
    let srs_wrong = stunrs::decoder(stunrs::key(USERNAME, REALM, "not it"));
    assert_eq!(stunrs::decode_verify(&srs, &raw), Ok(expected()));
    assert!(stunrs::decode_verify(&srs_wrong, &raw).is_err());
    assert!(stunrs::decode_verify(&srs, &bad_fp).is_err());

    // webrtc-rs stun
    let w_key = webrtc::key(USERNAME, REALM, PASSWORD);
    assert_eq!(w_key.0, key.as_bytes(), "same long-term key");
    let w_wrong = webrtc::key(USERNAME, REALM, "not it");
    let mut w_msg = stun::message::Message::new();
    assert_eq!(
        webrtc::decode_verify(&mut w_msg, &w_key, &raw),
        Ok(expected())
    );
    assert!(webrtc::decode_verify(&mut w_msg, &w_wrong, &raw).is_err());
    assert!(webrtc::decode_verify(&mut w_msg, &w_key, &bad_fp).is_err());

    let mut g = c.benchmark_group(format!("decode_verify_allocate_{}B", raw.len()));
    g.bench_function("floe", |b| {
        b.iter(|| floe_decode_verify(black_box(&raw), black_box(key.as_bytes())))
    });
    g.bench_function("stun-rs", |b| {
        b.iter(|| stunrs::decode_verify(black_box(&srs), black_box(&raw)))
    });
    g.bench_function("webrtc-stun", |b| {
        b.iter(|| webrtc::decode_verify(&mut w_msg, black_box(&w_key), black_box(&raw)))
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let addr: SocketAddr = MAPPED.parse().unwrap();
    assert!(matches!(addr.ip(), IpAddr::V4(_)));

    let mut floe_buf = BytesMut::with_capacity(1500);
    floe_encode(&mut floe_buf, TransactionId(TID), addr);
    let reference = floe_buf.to_vec();
    let decoded = Message::decode(Bytes::from(reference.clone())).unwrap();
    assert!(decoded.has_fingerprint());
    assert_eq!(
        decoded.get::<XorMappedAddress>(),
        Some(Ok(XorMappedAddress(addr)))
    );

    let srs_enc = stunrs::encoder();
    let mut srs_buf = [0u8; 1500];
    let n = stunrs::encode(&srs_enc, &mut srs_buf, TID, addr);
    assert_eq!(
        &srs_buf[..n],
        &reference[..],
        "stun-rs writes the same bytes"
    );

    let mut w_msg = stun::message::Message::new();
    webrtc::encode(&mut w_msg, TID, addr);
    assert_eq!(w_msg.raw, reference, "webrtc-rs stun writes the same bytes");

    let mut g = c.benchmark_group(format!("encode_binding_success_{}B", reference.len()));
    g.bench_function("floe", |b| {
        b.iter(|| {
            floe_encode(
                &mut floe_buf,
                black_box(TransactionId(TID)),
                black_box(addr),
            );
            black_box(&floe_buf[..]);
        })
    });
    g.bench_function("stun-rs", |b| {
        b.iter(|| {
            let n = stunrs::encode(&srs_enc, &mut srs_buf, black_box(TID), black_box(addr));
            black_box(&srs_buf[..n]);
        })
    });
    g.bench_function("webrtc-stun", |b| {
        b.iter(|| {
            webrtc::encode(&mut w_msg, black_box(TID), black_box(addr));
            black_box(&w_msg.raw[..]);
        })
    });
    g.finish();
}

criterion_group!(benches, decode_verify, encode);
criterion_main!(benches);
