//! Long-term credentials on the server: where keys come from, and stateless nonces.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::stun::credentials::{IntegrityKey, SecurityFeatures};
use crate::stun::Method;
use crate::stun::PasswordAlgorithm;

/// What the server knows about a request when it asks for its key
/// (the seed's `OnSTUNRequestAuthorization`).
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// USERNAME as received.
    pub username: &'a str,
    /// The realm the server challenged with.
    pub realm: &'a str,
    /// The client's transport address.
    pub client: SocketAddr,
    /// The request's method.
    pub method: Method,
    /// Seconds since the Unix epoch, for time-limited credentials.
    pub unix_time: u64,
}

/// A secret the request may have been signed with.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The user's password: works with MD5 and SHA-256 keys.
    Password(String),
    /// A precomputed MD5 long-term key, MD5(username:realm:password), as coturn's
    /// user database stores it. Only MESSAGE-INTEGRITY (SHA-1, MD5 key) can use it.
    Md5Key([u8; 16]),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::Password(_) => "Password(..)",
            Secret::Md5Key(_) => "Md5Key(..)",
        })
    }
}

impl Secret {
    /// The long-term key of this secret for `algorithm`, if it can make one.
    pub fn key(
        &self,
        algorithm: PasswordAlgorithm,
        username: &str,
        realm: &str,
    ) -> Option<IntegrityKey> {
        match self {
            Secret::Password(p) => IntegrityKey::long_term(algorithm, username, realm, p).ok(),
            Secret::Md5Key(k) if algorithm == PasswordAlgorithm::Md5 => {
                Some(IntegrityKey::from_bytes(k.to_vec()))
            }
            Secret::Md5Key(_) => None,
        }
    }
}

/// The answer to an [`AuthRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The user exists; the request is checked against each secret in turn (several
    /// when REST API secrets are being rotated).
    Allow(Vec<Secret>),
    /// Unknown user or refused: the client gets 401.
    Reject,
}

/// Where the server gets long-term keys. Implement it to look users up yourself.
///
/// It is asked on the thread that serves the client, for every authenticated request:
/// answer from memory (a map, a cache refreshed elsewhere). A blocking database or HTTP
/// call here stalls relaying for every client of that thread.
pub trait Authenticator: Send + Sync {
    /// Returns the secrets `request` may be signed with, or refuses.
    fn authorize(&self, request: &AuthRequest<'_>) -> Authorization;
}

impl<F> Authenticator for F
where
    F: Fn(&AuthRequest<'_>) -> Authorization + Send + Sync,
{
    fn authorize(&self, request: &AuthRequest<'_>) -> Authorization {
        self(request)
    }
}

/// Static users: name → password.
#[derive(Debug, Clone, Default)]
pub struct StaticUsers(HashMap<String, String>);

impl StaticUsers {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a user.
    pub fn insert(&mut self, name: impl Into<String>, password: impl Into<String>) {
        self.0.insert(name.into(), password.into());
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The user names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl Authenticator for StaticUsers {
    fn authorize(&self, request: &AuthRequest<'_>) -> Authorization {
        match self.0.get(request.username) {
            Some(p) => Authorization::Allow(vec![Secret::Password(p.clone())]),
            None => Authorization::Reject,
        }
    }
}

/// The TURN REST API (coturn's `use-auth-secret`): the username is `expiry[:user]`
/// with `expiry` in Unix seconds, and the password is
/// `base64(HMAC-SHA1(secret, username))`. Several secrets may be live at once so
/// that they can be rotated.
///
/// A secret taken out by [`rotate`](Self::rotate) stays valid for a grace period, so
/// that credentials minted with it keep working until the clients fetch new ones.
#[derive(Clone, Default)]
pub struct RestApiSecrets {
    live: Vec<String>,
    /// Secrets rotated out, with the Unix second they stop working at.
    retiring: Vec<(String, u64)>,
}

impl std::fmt::Debug for RestApiSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RestApiSecrets({} secrets, {} retiring)",
            self.live.len(),
            self.retiring.len()
        )
    }
}

impl RestApiSecrets {
    /// Secrets, tried in order.
    pub fn new(secrets: impl IntoIterator<Item = impl Into<String>>) -> Self {
        RestApiSecrets {
            live: secrets.into_iter().map(Into::into).collect(),
            retiring: Vec::new(),
        }
    }

    /// Whether there are no secrets, live or retiring.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.retiring.is_empty()
    }

    /// `next`'s secrets, plus those of `self` that `next` drops, valid `grace` longer
    /// from `unix_time`; secrets retiring already keep their own deadline.
    pub fn rotate(&self, next: RestApiSecrets, unix_time: u64, grace: Duration) -> Self {
        let until = unix_time.saturating_add(grace.as_secs());
        let mut retiring: Vec<(String, u64)> = Vec::new();
        let dropped = self.live.iter().map(|s| (s, until));
        let older = self.retiring.iter().map(|(s, t)| (s, *t));
        for (secret, until) in dropped.chain(older) {
            let kept = next.live.contains(secret) || retiring.iter().any(|(s, _)| s == secret);
            if !kept && until > unix_time {
                retiring.push((secret.clone(), until));
            }
        }
        RestApiSecrets {
            live: next.live,
            retiring,
        }
    }

    /// The password a client derives for `username` from `secret`.
    pub fn password(secret: &str, username: &str) -> String {
        let mut mac =
            Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(username.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }
}

impl Authenticator for RestApiSecrets {
    fn authorize(&self, request: &AuthRequest<'_>) -> Authorization {
        let expiry = request.username.split(':').next().unwrap_or("");
        match expiry.parse::<u64>() {
            Ok(expiry) if expiry >= request.unix_time => {
                let retiring = self
                    .retiring
                    .iter()
                    .filter(|(_, until)| request.unix_time < *until);
                let secrets: Vec<Secret> = self
                    .live
                    .iter()
                    .chain(retiring.map(|(s, _)| s))
                    .map(|s| Secret::Password(Self::password(s, request.username)))
                    .collect();
                if secrets.is_empty() {
                    Authorization::Reject
                } else {
                    Authorization::Allow(secrets)
                }
            }
            _ => Authorization::Reject,
        }
    }
}

/// Static users, then REST API secrets, then the application's own lookup.
#[derive(Clone, Default)]
pub struct Credentials {
    /// Static users.
    pub users: StaticUsers,
    /// TURN REST API secrets.
    pub rest_secrets: RestApiSecrets,
    /// The application's lookup, asked last.
    pub custom: Option<Arc<dyn Authenticator>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("users", &self.users.0.len())
            .field("rest_secrets", &self.rest_secrets)
            .field("custom", &self.custom.is_some())
            .finish()
    }
}

impl Authenticator for Credentials {
    fn authorize(&self, request: &AuthRequest<'_>) -> Authorization {
        let mut secrets = Vec::new();
        if let Authorization::Allow(s) = self.users.authorize(request) {
            secrets.extend(s);
        }
        if let Authorization::Allow(s) = self.rest_secrets.authorize(request) {
            secrets.extend(s);
        }
        if let Some(custom) = &self.custom {
            if let Authorization::Allow(s) = custom.authorize(request) {
                secrets.extend(s);
            }
        }
        if secrets.is_empty() {
            Authorization::Reject
        } else {
            Authorization::Allow(secrets)
        }
    }
}

/// Stateless nonces (RFC 8489 §9.2): `[cookie]` + expiry + MAC over expiry and the
/// client's IP, so a 401 creates no state on the server.
///
/// The MAC key rotates: each nonce lifetime has its own key, derived from the server's
/// secret and the period the nonce expires in, so no two periods share a key and the
/// threads of a server agree on it without talking.
#[derive(Clone)]
pub struct NonceIssuer {
    secret: [u8; 32],
    epoch: Instant,
    lifetime: Duration,
    features: Option<SecurityFeatures>,
}

/// What a received nonce is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Issued by this server to this client, and not expired.
    Valid,
    /// Expired, forged, or issued to someone else: answer 438 (RFC 8489 §9.2.4).
    Stale,
}

impl NonceIssuer {
    /// Nonces valid for `lifetime`, keyed with `secret`; `epoch` is any fixed instant
    /// shared by all the server's threads. With `features`, nonces start with the
    /// RFC 8489 security-feature cookie.
    pub fn new(
        secret: [u8; 32],
        epoch: Instant,
        lifetime: Duration,
        features: Option<SecurityFeatures>,
    ) -> Self {
        NonceIssuer {
            secret,
            epoch,
            lifetime,
            features,
        }
    }

    /// The key of the rotation period that `expiry` falls in.
    fn period_key(&self, expiry: u64) -> [u8; 32] {
        let period = expiry / self.lifetime.as_secs().max(1);
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(b"floe nonce key");
        mac.update(&period.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    fn mac(&self, expiry: u64, ip: IpAddr) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.period_key(expiry))
            .expect("HMAC takes any key length");
        mac.update(&expiry.to_be_bytes());
        match ip {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        mac.finalize().into_bytes().into()
    }

    /// A fresh nonce for a client: `[cookie]` and 22 base64url characters (the expiry,
    /// 4 bytes, and 12 bytes of MAC), so that a 401 stays small.
    pub fn issue(&self, now: Instant, client: IpAddr) -> String {
        let expiry = (now.saturating_duration_since(self.epoch) + self.lifetime).as_secs();
        let expiry = u32::try_from(expiry).unwrap_or(u32::MAX);
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&expiry.to_be_bytes());
        raw[4..].copy_from_slice(&self.mac(u64::from(expiry), client)[..12]);
        let mut s = self
            .features
            .map(SecurityFeatures::nonce_prefix)
            .unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(raw, &mut s);
        s
    }

    /// Checks a nonce a client sent back. Works on bytes: a nonce is any UTF-8 the
    /// client chose, and must never be sliced as a `str`.
    pub fn check(&self, now: Instant, client: IpAddr, nonce: &str) -> NonceStatus {
        let prefix = self
            .features
            .map(SecurityFeatures::nonce_prefix)
            .unwrap_or_default();
        // The feature cookie is compared too, so the bits cannot be altered (RFC 8489 §9.2).
        let Some(body) = nonce.as_bytes().strip_prefix(prefix.as_bytes()) else {
            return NonceStatus::Stale;
        };
        let mut raw = [0u8; 16];
        if body.len() != 22
            || base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode_slice(body, &mut raw)
                .ok()
                != Some(16)
        {
            return NonceStatus::Stale;
        }
        let expiry = u64::from(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]));
        let expected = self.mac(expiry, client);
        let fresh = now.saturating_duration_since(self.epoch).as_secs() < expiry;
        if fresh && crate::stun::integrity::ct_eq(&expected[..12], &raw[4..]).is_ok() {
            NonceStatus::Valid
        } else {
            NonceStatus::Stale
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(username: &'a str, unix_time: u64) -> AuthRequest<'a> {
        AuthRequest {
            username,
            realm: "floe",
            client: "192.0.2.1:5000".parse().unwrap(),
            method: Method::ALLOCATE,
            unix_time,
        }
    }

    #[test]
    fn rest_api_password_matches_coturn() {
        // coturn: base64(hmac-sha1(secret, "1700000000:bob")).
        let p = RestApiSecrets::password("north", "1700000000:bob");
        assert_eq!(p.len(), 28);
        let s = RestApiSecrets::new(["old", "north"]);
        match s.authorize(&request("1700000000:bob", 1_600_000_000)) {
            Authorization::Allow(v) => assert_eq!(v[1], Secret::Password(p)),
            Authorization::Reject => panic!("valid REST username refused"),
        }
        assert_eq!(
            s.authorize(&request("1700000000:bob", 1_800_000_000)),
            Authorization::Reject
        );
        assert_eq!(s.authorize(&request("bob", 0)), Authorization::Reject);
    }

    #[test]
    fn nonces_expire_and_bind_to_the_client() {
        let t0 = Instant::now();
        let n = NonceIssuer::new([3; 32], t0, Duration::from_secs(600), None);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let nonce = n.issue(t0, ip);
        assert_eq!(
            n.check(t0 + Duration::from_secs(599), ip, &nonce),
            NonceStatus::Valid
        );
        assert_eq!(
            n.check(t0 + Duration::from_secs(601), ip, &nonce),
            NonceStatus::Stale
        );
        assert_eq!(
            n.check(t0, "192.0.2.2".parse().unwrap(), &nonce),
            NonceStatus::Stale
        );
        assert_eq!(n.check(t0, ip, "garbage"), NonceStatus::Stale);
        // A multi-byte character inside the body must not panic.
        let tricky = format!("{}\u{e9}{}", "a".repeat(10), "a".repeat(10));
        assert_eq!(tricky.len(), 22);
        assert_eq!(n.check(t0, ip, &tricky), NonceStatus::Stale);
        let other = NonceIssuer::new([4; 32], t0, Duration::from_secs(600), None);
        assert_eq!(other.check(t0, ip, &nonce), NonceStatus::Stale);
        // Each lifetime has its own key.
        assert_ne!(n.period_key(600), n.period_key(1200));
        assert_eq!(n.period_key(600), n.period_key(1199));

        let f = SecurityFeatures {
            password_algorithms: true,
            username_anonymity: false,
        };
        let n = NonceIssuer::new([3; 32], t0, Duration::from_secs(600), Some(f));
        let nonce = n.issue(t0, ip);
        assert_eq!(SecurityFeatures::from_nonce(&nonce), Some(f));
        assert_eq!(n.check(t0, ip, &nonce), NonceStatus::Valid);
        // Altered feature bits invalidate the nonce.
        let altered = nonce.replacen("obMatJos2AAAB", "obMatJos2AAAA", 1);
        assert_ne!(altered, nonce);
        assert_eq!(n.check(t0, ip, &altered), NonceStatus::Stale);
    }
}
