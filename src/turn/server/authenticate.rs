//! RFC 8489 §9.2: long-term credentials on the server side: the challenge, the checks of
//! REALM, NONCE and PASSWORD-ALGORITHM, and MESSAGE-INTEGRITY(-SHA256).

use std::time::Instant;

use super::allocation::FiveTuple;
use super::auth::{AuthRequest, Authenticator, Authorization, NonceStatus, Secret};
use super::event::ServerEvent;
use super::Server;
use crate::stun::attribute::*;
use crate::stun::credentials::IntegrityKey;
use crate::stun::Message;
use crate::stun::PasswordAlgorithm as Algorithm;
use crate::turn::TurnError;

/// The algorithms offered in PASSWORD-ALGORITHMS, in order of preference.
const PASSWORD_ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

/// A successful authentication: who, and the key that signs the response.
#[derive(Clone)]
pub(super) struct Authenticated {
    pub(super) username: String,
    pub(super) key: IntegrityKey,
    pub(super) sha256: bool,
}

impl Server {
    /// RFC 8489 §9.2.4: long-term credentials. Sends the error itself and returns
    /// `None` when the request does not authenticate.
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
    ) -> Option<Authenticated> {
        let has_mi = msg.has_integrity() || msg.has_integrity_sha256();
        if !has_mi {
            // §9.2.4 step 1: challenge, and keep no state.
            self.challenge(now, ft, msg, 401, None);
            return None;
        }
        let realm = msg.get::<Realm>().and_then(Result::ok);
        let nonce = msg.get::<Nonce>().and_then(Result::ok);
        let username = match (msg.get::<Username>(), msg.get::<Userhash>()) {
            (Some(Ok(u)), _) => Some(u.as_str().to_owned()),
            (None, Some(Ok(Userhash(h)))) => {
                self.userhashes.get(&h).cloned().or(Some(String::new()))
            }
            _ => None,
        };
        let (Some(realm), Some(nonce), Some(username)) = (realm, nonce, username) else {
            self.error(
                now,
                ft,
                msg,
                &TurnError::BadRequest("missing USERNAME, REALM or NONCE"),
                None,
                |_| {},
            );
            return None;
        };
        if realm.as_str() != self.config.realm {
            self.challenge(now, ft, msg, 401, Some(&username));
            return None;
        }
        if self.nonces.check(now, ft.client.ip(), nonce.as_str()) == NonceStatus::Stale {
            self.challenge(now, ft, msg, 438, Some(&username));
            return None;
        }
        // RFC 8489 §9.2.4 (password algorithms): a request that answers our list must echo
        // it and pick one of it; one that carries neither is MD5.
        let algorithm = match (
            msg.get::<PasswordAlgorithms>(),
            msg.get::<PasswordAlgorithm>(),
        ) {
            (None, None) => Algorithm::Md5,
            (Some(Ok(list)), Some(Ok(chosen))) if self.config.password_algorithms => {
                let ours: Vec<PasswordAlgorithmEntry> =
                    PASSWORD_ALGORITHMS.iter().map(|a| a.entry()).collect();
                match chosen {
                    a if list.0 == ours && PASSWORD_ALGORITHMS.contains(&a) => a,
                    _ => {
                        self.error(
                            now,
                            ft,
                            msg,
                            &TurnError::BadRequest("PASSWORD-ALGORITHMS mismatch"),
                            None,
                            |_| {},
                        );
                        return None;
                    }
                }
            }
            _ => {
                self.error(
                    now,
                    ft,
                    msg,
                    &TurnError::BadRequest("PASSWORD-ALGORITHM without our list"),
                    None,
                    |_| {},
                );
                return None;
            }
        };
        let request = AuthRequest {
            username: &username,
            realm: &self.config.realm,
            client: ft.client,
            method: msg.method(),
            unix_time: self.config.unix_time_at_epoch
                + now.saturating_duration_since(self.config.epoch).as_secs(),
        };
        let secrets = match self.config.credentials.authorize(&request) {
            Authorization::Allow(s) if !username.is_empty() => s,
            _ => {
                // Spend what a known user costs, so timing does not tell who exists.
                if let Some(key) = Secret::Password(String::from("-")).key(
                    algorithm,
                    &username,
                    &self.config.realm,
                ) {
                    let _ = msg.verify_integrity(key.as_bytes());
                }
                self.challenge(now, ft, msg, 401, Some(&username));
                return None;
            }
        };
        let sha256 = msg.has_integrity_sha256();
        for secret in &secrets {
            let Some(key) = secret.key(algorithm, &username, &self.config.realm) else {
                continue;
            };
            let ok = if sha256 {
                msg.verify_integrity_sha256(key.as_bytes()).is_ok()
            } else {
                msg.verify_integrity(key.as_bytes()).is_ok()
            };
            if ok {
                return Some(Authenticated {
                    username,
                    key,
                    sha256,
                });
            }
        }
        self.challenge(now, ft, msg, 401, Some(&username));
        None
    }

    /// A 401 or 438 with REALM, a fresh NONCE and, when offered, PASSWORD-ALGORITHMS.
    pub(super) fn challenge(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
        code: u16,
        username: Option<&str>,
    ) {
        // Over the rate, not even the event: a flood costs neither bytes out nor memory.
        if !self.admit_unauthenticated(now, ft) {
            return;
        }
        if username.is_some() || code == 438 {
            self.events.push_back(ServerEvent::AuthFailed {
                client: ft.client,
                username: username.map(str::to_owned),
                code,
            });
        }
        let err = if code == 438 {
            TurnError::StaleNonce
        } else {
            TurnError::Unauthorized
        };
        let realm = Realm::new(self.config.realm.clone());
        let nonce = Nonce::new(self.nonces.issue(now, ft.client.ip()));
        let algorithms = self
            .config
            .password_algorithms
            .then(|| PasswordAlgorithms(PASSWORD_ALGORITHMS.iter().map(|a| a.entry()).collect()));
        self.send_error(ft, msg, &err, None, |e| {
            e.add(&realm).add(&nonce);
            if let Some(a) = &algorithms {
                e.add(a);
            }
        });
    }
}
