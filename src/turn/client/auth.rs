//! The client side of the long-term credential mechanism (RFC 8489 §9.2).

use crate::stun::attribute::{ErrorCode, Nonce, PasswordAlgorithms, Realm, Userhash, Username};
use crate::stun::credentials::{opaque_string, userhash, SecurityFeatures};
use crate::stun::{AttributeCodec as _, IntegrityKey, Message, MessageEncoder, PasswordAlgorithm};

/// What the client learnt from a 401 challenge and sends with every later request.
#[derive(Clone, Debug)]
pub(super) struct Auth {
    username: String,
    realm: Realm,
    nonce: Nonce,
    key: IntegrityKey,
    /// RFC 8489 §9.2.4: PASSWORD-ALGORITHMS as the server sent it (echoed), and our pick.
    algorithms: Option<(PasswordAlgorithms, PasswordAlgorithm)>,
    userhash: Option<[u8; 32]>,
}

/// Why a challenge cannot be answered; becomes the reason of an error event.
pub(super) type Refusal = String;

/// RFC 8489 §9.2.5: reads NONCE from a 401 or 438 and applies the bid-down check: a nonce
/// cookie announcing password algorithms without PASSWORD-ALGORITHMS must not be answered.
fn nonce_of(msg: &Message) -> Result<(Nonce, Option<SecurityFeatures>), Refusal> {
    let nonce = match msg.get::<Nonce>() {
        Some(Ok(n)) => n,
        _ => return Err("challenge without a valid NONCE".into()),
    };
    let features = SecurityFeatures::from_nonce(nonce.as_str());
    if features.is_some_and(|f| f.password_algorithms) && !msg.contains(PasswordAlgorithms::TYPE) {
        return Err("nonce announces PASSWORD-ALGORITHMS but the attribute is missing".into());
    }
    Ok((nonce, features))
}

impl Auth {
    /// RFC 8489 §9.2.5: credentials answering a 401 challenge. Takes REALM and NONCE;
    /// with PASSWORD-ALGORITHMS it picks the first algorithm floe supports (MD5 or SHA-256)
    /// and signs with MESSAGE-INTEGRITY-SHA256, otherwise MD5 and MESSAGE-INTEGRITY; sends
    /// USERHASH instead of USERNAME when the nonce cookie announces username anonymity.
    pub(super) fn from_challenge(
        msg: &Message,
        username: &str,
        password: &str,
    ) -> Result<Self, Refusal> {
        let realm = match msg.get::<Realm>() {
            Some(Ok(r)) => r,
            _ => return Err("401 without a valid REALM".into()),
        };
        let (nonce, features) = nonce_of(msg)?;
        let algorithms = match msg.get::<PasswordAlgorithms>() {
            None => None,
            Some(Err(_)) => return Err("malformed PASSWORD-ALGORITHMS".into()),
            Some(Ok(list)) => {
                let Some(chosen) = list
                    .0
                    .iter()
                    .find_map(|e| PasswordAlgorithm::from_code(e.algorithm))
                else {
                    return Err("no supported algorithm in PASSWORD-ALGORITHMS".into());
                };
                Some((list, chosen))
            }
        };
        let algorithm = algorithms
            .as_ref()
            .map_or(PasswordAlgorithm::Md5, |(_, a)| *a);
        let username = opaque_string(username)
            .map_err(|e| format!("username: {e}"))?
            .into_owned();
        let key = IntegrityKey::long_term(algorithm, &username, realm.as_str(), password)
            .map_err(|e| format!("cannot derive the long-term key: {e}"))?;
        let userhash = if features.is_some_and(|f| f.username_anonymity) {
            Some(userhash(&username, realm.as_str()).map_err(|e| format!("USERHASH: {e}"))?)
        } else {
            None
        };
        Ok(Auth {
            username,
            realm,
            nonce,
            key,
            algorithms,
            userhash,
        })
    }

    /// RFC 8489 §9.2.5: takes the new NONCE of a 438 (Stale Nonce).
    pub(super) fn update_nonce(&mut self, msg: &Message) -> Result<(), Refusal> {
        self.nonce = nonce_of(msg)?.0;
        Ok(())
    }

    /// The nonce requests currently carry.
    pub(super) fn nonce(&self) -> &str {
        self.nonce.as_str()
    }

    /// The realm of the credentials.
    pub(super) fn realm(&self) -> &str {
        self.realm.as_str()
    }

    /// RFC 8489 §9.2.4: USERNAME or USERHASH, REALM, NONCE, PASSWORD-ALGORITHMS and
    /// PASSWORD-ALGORITHM when negotiated, then MESSAGE-INTEGRITY(-SHA256). Everything the
    /// integrity must cover has to be added before.
    pub(super) fn sign(&self, enc: &mut MessageEncoder<'_>) {
        match &self.userhash {
            Some(h) => enc.add(&Userhash(*h)),
            None => enc.add(&Username::new(self.username.as_str())),
        };
        enc.add(&self.realm).add(&self.nonce);
        match &self.algorithms {
            Some((list, chosen)) => {
                enc.add(list).add(chosen);
                enc.message_integrity_sha256(self.key.as_bytes(), 32);
            }
            None => {
                enc.message_integrity(self.key.as_bytes());
            }
        }
    }

    /// RFC 8489 §9.2.5: whether a response is authentic. MESSAGE-INTEGRITY-SHA256 or
    /// MESSAGE-INTEGRITY is checked with the key when present; a response with neither is
    /// accepted (servers differ on whether they sign responses).
    pub(super) fn verify(&self, msg: &Message) -> bool {
        if msg.has_integrity_sha256() {
            msg.verify_integrity_sha256(self.key.as_bytes()).is_ok()
        } else if msg.has_integrity() {
            msg.verify_integrity(self.key.as_bytes()).is_ok()
        } else {
            true
        }
    }
}

/// RFC 8489 §9.2.5: a response other than 401 or 438 whose NONCE announces password
/// algorithms but carries no PASSWORD-ALGORITHMS must be ignored (bid-down protection).
pub(super) fn is_bid_down(msg: &Message) -> bool {
    msg.contains(Nonce::TYPE) && nonce_of(msg).is_err()
}

/// RFC 8489 §14.8: the error code and reason of an error response; no code when
/// ERROR-CODE is missing or malformed.
pub(super) fn error_code(msg: &Message) -> (Option<u16>, String) {
    match msg.get::<ErrorCode>() {
        Some(Ok(e)) => (Some(e.code), e.reason.as_str().to_owned()),
        Some(Err(e)) => (None, format!("malformed ERROR-CODE: {e}")),
        None => (None, "error response without ERROR-CODE".into()),
    }
}
