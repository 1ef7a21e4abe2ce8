//! One TURN Allocate (RFC 8656 §7.1) over UDP built by hand with floe's codec, signed
//! with long-term credentials (RFC 8489 §9.2) when a nonce is given: for tests that
//! send what a client actor would not (made-up users, floods) and read the bare answer.

use std::net::{SocketAddr, UdpSocket};

use bytes::{Bytes, BytesMut};
use floe::stun::attribute::{Nonce, Realm, RequestedTransport, Username};
use floe::stun::{IntegrityKey, Message, MessageEncoder, Method, PasswordAlgorithm, TransactionId};

use super::REALM;

/// Long-term credentials of a signed Allocate: user, password and the server's nonce.
pub struct Signed<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub nonce: &'a str,
}

/// Sends one Allocate for a UDP relay from `socket` to `server`, signed when `auth` is
/// given, and returns its answer; `None` when none came within the socket's read
/// timeout. A late answer to an earlier request may come first: it is skipped.
pub fn raw_allocate(
    socket: &UdpSocket,
    server: SocketAddr,
    auth: Option<Signed<'_>>,
) -> Option<Message> {
    let tid = TransactionId::random(&mut rand::thread_rng());
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::ALLOCATE.request(), tid);
    enc.add(&RequestedTransport(RequestedTransport::UDP));
    if let Some(Signed {
        user,
        password,
        nonce,
    }) = auth
    {
        let key = IntegrityKey::long_term(PasswordAlgorithm::Md5, user, REALM, password)
            .expect("realm and password that OpaqueString accepts");
        enc.add(&Username::new(user))
            .add(&Realm::new(REALM))
            .add(&Nonce::new(nonce.to_owned()))
            .message_integrity(key.as_bytes());
    }
    enc.fingerprint();
    enc.finish().expect("an Allocate fits");
    socket.send_to(&buf, server).ok()?;
    let mut answer = [0u8; 2048];
    loop {
        let n = socket.recv(&mut answer).ok()?;
        match Message::decode(Bytes::copy_from_slice(&answer[..n])) {
            Ok(m) if m.transaction_id() == tid => return Some(m),
            _ => continue,
        }
    }
}
