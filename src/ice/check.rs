//! The STUN messages of connectivity checks (RFC 8445 §7.1-§7.3): Binding requests,
//! their responses, keepalive indications, and the validation of a received check.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use super::config::IceRole;
use super::IceError;
use crate::stun::attribute::{
    ErrorCode, IceControlled, IceControlling, Nomination, Priority, UnknownAttributes,
    UseCandidate, Username, XorMappedAddress,
};
use crate::stun::{Message, MessageEncoder, Method, TransactionId};

/// What a check request carries (RFC 8445 §7.1).
pub(crate) struct CheckRequest<'a> {
    /// RFC 8445 §7.2.2: "remote ufrag:local ufrag".
    pub username: &'a str,
    /// RFC 8445 §7.1.1: the priority a peer-reflexive candidate from this check would get.
    pub priority: u32,
    /// RFC 8445 §7.1.3: the sender's role and tie-breaker.
    pub role: IceRole,
    pub tie_breaker: u64,
    /// RFC 8445 §7.1.2: the controlling agent nominates.
    pub use_candidate: bool,
    /// draft-thatcher-ice-renomination-01 §3: NOMINATION, when renomination is
    /// negotiated (instead of USE-CANDIDATE).
    pub nomination: Option<u32>,
    /// RFC 8445 §7.2.2: the remote password.
    pub key: &'a [u8],
}

/// RFC 8445 §7.1: a Binding request with USERNAME, PRIORITY, ICE-CONTROLLING or
/// ICE-CONTROLLED, optionally USE-CANDIDATE or NOMINATION, MESSAGE-INTEGRITY and
/// FINGERPRINT.
pub(crate) fn encode_check(tid: TransactionId, req: &CheckRequest<'_>) -> Bytes {
    let mut buf = BytesMut::with_capacity(128);
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING.request(), tid);
    enc.add(&Username::new(req.username));
    enc.add(&Priority(req.priority));
    match req.role {
        IceRole::Controlling => enc.add(&IceControlling(req.tie_breaker)),
        IceRole::Controlled => enc.add(&IceControlled(req.tie_breaker)),
    };
    if req.use_candidate {
        enc.add(&UseCandidate);
    }
    if let Some(n) = req.nomination {
        enc.add(&Nomination(n));
    }
    enc.message_integrity(req.key).fingerprint();
    let _ = enc.finish();
    buf.freeze()
}

/// RFC 8445 §7.3.1.2: a success response: XOR-MAPPED-ADDRESS (the request's source),
/// MESSAGE-INTEGRITY with the local password, FINGERPRINT.
pub(crate) fn encode_success(tid: TransactionId, mapped: SocketAddr, key: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(80);
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING.success(), tid);
    enc.add(&XorMappedAddress(mapped));
    enc.message_integrity(key).fingerprint();
    let _ = enc.finish();
    buf.freeze()
}

/// An error response for a check that failed with `err`. 400 and 401 answer requests
/// that were not authenticated, so they carry FINGERPRINT only (RFC 8489 §9.1.3);
/// 420 and 487 also carry MESSAGE-INTEGRITY with the local password.
pub(crate) fn encode_error(tid: TransactionId, err: &IceError, key: &[u8]) -> Bytes {
    let code = err.error_code().unwrap_or(400);
    let mut buf = BytesMut::with_capacity(80);
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING.error(), tid);
    enc.add(&ErrorCode::new(code));
    if let IceError::UnknownAttributes(types) = err {
        enc.add(&UnknownAttributes(types.clone()));
    }
    if !matches!(code, 400 | 401) {
        enc.message_integrity(key);
    }
    enc.fingerprint();
    let _ = enc.finish();
    buf.freeze()
}

/// RFC 8445 §11: a keepalive, a Binding indication with FINGERPRINT.
pub(crate) fn encode_keepalive(tid: TransactionId) -> Bytes {
    let mut buf = BytesMut::with_capacity(28);
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING.indication(), tid);
    enc.fingerprint();
    let _ = enc.finish();
    buf.freeze()
}

/// What a valid check said (RFC 8445 §7.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReceivedCheck {
    /// RFC 8445 §7.1.1.
    pub priority: u32,
    /// RFC 8445 §7.1.2.
    pub use_candidate: bool,
    /// draft-thatcher-ice-renomination-01 §3: the NOMINATION value, if any.
    pub nomination: Option<u32>,
    /// RFC 8445 §7.1.3: the sender's role and tie-breaker.
    pub role: IceRole,
    pub tie_breaker: u64,
}

/// RFC 8445 §7.3 and RFC 8489 §9.1.3: checks a Binding request addressed to `ufrag`:
/// FINGERPRINT, USERNAME and MESSAGE-INTEGRITY (400 if missing), the USERNAME's left
/// half and the HMAC with the local password (401), comprehension-required attributes
/// (420), then PRIORITY and exactly one of ICE-CONTROLLING / ICE-CONTROLLED (400).
pub(crate) fn validate_check(
    msg: &Message,
    ufrag: &str,
    key: &[u8],
) -> Result<ReceivedCheck, IceError> {
    if !msg.has_fingerprint() {
        return Err(IceError::BadRequest("no FINGERPRINT"));
    }
    if !msg.has_integrity() {
        return Err(IceError::BadRequest("no MESSAGE-INTEGRITY"));
    }
    let username = match msg.get::<Username>() {
        Some(Ok(u)) => u,
        Some(Err(_)) => return Err(IceError::BadRequest("malformed USERNAME")),
        None => return Err(IceError::BadRequest("no USERNAME")),
    };
    match username.as_str().split_once(':') {
        Some((local, _)) if local == ufrag => {}
        _ => return Err(IceError::Unauthorized("USERNAME does not name this agent")),
    }
    if msg.verify_integrity(key).is_err() {
        return Err(IceError::Unauthorized("MESSAGE-INTEGRITY does not match"));
    }
    let unknown = msg.unknown_comprehension_required();
    if !unknown.is_empty() {
        return Err(IceError::UnknownAttributes(unknown));
    }
    let priority = match msg.get::<Priority>() {
        Some(Ok(p)) => p.0,
        Some(Err(_)) => return Err(IceError::BadRequest("malformed PRIORITY")),
        None => return Err(IceError::BadRequest("no PRIORITY")),
    };
    let use_candidate = match msg.get::<UseCandidate>() {
        Some(Ok(_)) => true,
        Some(Err(_)) => return Err(IceError::BadRequest("malformed USE-CANDIDATE")),
        None => false,
    };
    // Comprehension-optional (0xC001): a malformed one is ignored, as an unknown one.
    let nomination = match msg.get::<Nomination>() {
        Some(Ok(n)) => Some(n.0),
        _ => None,
    };
    let (role, tie_breaker) = match (msg.get::<IceControlling>(), msg.get::<IceControlled>()) {
        (Some(Ok(c)), None) => (IceRole::Controlling, c.0),
        (None, Some(Ok(c))) => (IceRole::Controlled, c.0),
        (None, None) => return Err(IceError::BadRequest("no ICE-CONTROLLING or ICE-CONTROLLED")),
        (Some(_), Some(_)) => {
            return Err(IceError::BadRequest(
                "both ICE-CONTROLLING and ICE-CONTROLLED",
            ))
        }
        _ => {
            return Err(IceError::BadRequest(
                "malformed ICE-CONTROLLING/ICE-CONTROLLED",
            ))
        }
    };
    Ok(ReceivedCheck {
        priority,
        use_candidate,
        nomination,
        role,
        tie_breaker,
    })
}
