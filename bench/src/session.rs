//! The control plane of the TURN workloads, hand-rolled for low overhead: Allocate (with
//! the 401 round of long-term credentials, RFC 8489 §9.2), ChannelBind or
//! CreatePermission to the tool's echo peer, and Refresh with LIFETIME 0 to delete.
//! Requests are retransmitted on a fixed timer and a 438 Stale Nonce is answered with
//! the new nonce, so a busy server slows a setup down instead of failing it.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use floe::stun::attribute::{
    ChannelNumber, ErrorCode, Lifetime, Nonce, Realm, RequestedTransport, Username, XorPeerAddress,
    XorRelayedAddress,
};
use floe::stun::{
    Class, IntegrityKey, Message, MessageEncoder, Method, PasswordAlgorithm, TransactionId,
};
use rand::RngCore;

use floe_actors::udp::{BatchSocket, RecvBuffers};

/// The first channel number (RFC 8656 §12); each allocation binds one channel.
pub(crate) const CHANNEL: u16 = 0x4000;
/// Wait for a response before sending the request again.
const RETRANSMIT_AFTER: Duration = Duration::from_millis(500);
/// Sends of one request before giving up.
const ATTEMPTS: u32 = 5;
/// 438 rounds of one request before giving up.
const STALE_NONCE_ROUNDS: u32 = 3;

/// What an allocation binds to the echo peer after it is made.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PeerSetup {
    /// Nothing (the `allocate` workload).
    None,
    /// A channel (RFC 8656 §11) to the peer.
    Channel(SocketAddr),
    /// A permission (RFC 8656 §9) for the peer, for Send and Data indications.
    Permission(SocketAddr),
}

/// The long-term credentials of a session, after the 401.
#[derive(Debug, Clone)]
struct Auth {
    username: String,
    realm: String,
    nonce: String,
    key: Rc<[u8]>,
}

/// An allocation the tool holds.
pub(crate) struct ClientAllocation {
    pub socket: Rc<BatchSocket>,
    auth: Auth,
}

/// The server and the credentials every session uses.
pub(crate) struct Sessions {
    pub server: SocketAddr,
    username: String,
    password: String,
    /// Keys by realm: MD5 of `user:realm:pass` once, not per allocation.
    keys: RefCell<Vec<(String, Rc<[u8]>)>>,
}

/// A request that went wrong.
#[derive(Debug)]
pub(crate) enum SetupError {
    Timeout(Method),
    Refused(Method, u16, String),
    Malformed(&'static str),
    Socket(String),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Timeout(m) => write!(f, "{m:?}: no response"),
            SetupError::Refused(m, code, why) => write!(f, "{m:?}: error {code} {why}"),
            SetupError::Malformed(what) => write!(f, "bad response: {what}"),
            SetupError::Socket(e) => write!(f, "socket: {e}"),
        }
    }
}

/// One request/response exchange's scratch space, reused by a worker.
pub(crate) struct Exchange {
    bufs: RecvBuffers,
    out: BytesMut,
}

impl Exchange {
    pub(crate) fn new() -> Self {
        Exchange {
            bufs: RecvBuffers::new(4, 2048),
            out: BytesMut::with_capacity(512),
        }
    }
}

fn tid() -> TransactionId {
    TransactionId::random(&mut rand::thread_rng())
}

impl Sessions {
    pub(crate) fn new(server: SocketAddr, username: String, password: String) -> Self {
        Sessions {
            server,
            username,
            password,
            keys: RefCell::new(Vec::new()),
        }
    }

    fn key(&self, realm: &str) -> Result<Rc<[u8]>, SetupError> {
        if let Some((_, k)) = self.keys.borrow().iter().find(|(r, _)| r == realm) {
            return Ok(k.clone());
        }
        let key = IntegrityKey::long_term(
            PasswordAlgorithm::Md5,
            &self.username,
            realm,
            &self.password,
        )
        .map_err(|_| SetupError::Malformed("realm"))?;
        let key: Rc<[u8]> = key.as_bytes().into();
        self.keys.borrow_mut().push((realm.to_owned(), key.clone()));
        Ok(key)
    }

    /// Sends `request` (already in `ex.out`) until a response with `tid` comes back.
    async fn transact(
        &self,
        socket: &BatchSocket,
        ex: &mut Exchange,
        method: Method,
        tid: TransactionId,
    ) -> Result<Message, SetupError> {
        let request = ex.out.split().freeze();
        for _ in 0..ATTEMPTS {
            socket
                .send_to(&request, self.server)
                .await
                .map_err(|e| SetupError::Socket(e.to_string()))?;
            let until = Instant::now() + RETRANSMIT_AFTER;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                let Ok(batch) = tokio::time::timeout(left, socket.recv_batch(&mut ex.bufs)).await
                else {
                    break;
                };
                let batch = batch.map_err(|e| SetupError::Socket(e.to_string()))?;
                let mut found = None;
                for d in batch {
                    if d.source != self.server || d.payload.first().is_none_or(|b| *b > 3) {
                        continue;
                    }
                    if let Ok(m) = Message::decode(Bytes::copy_from_slice(d.payload)) {
                        if m.transaction_id() == tid && m.method() == method {
                            found = Some(m);
                        }
                    }
                }
                if let Some(m) = found {
                    return Ok(m);
                }
            }
        }
        Err(SetupError::Timeout(method))
    }

    /// An authenticated request built by `attrs`, answered with a success; a 438 is
    /// retried with the new nonce.
    async fn authed(
        &self,
        socket: &BatchSocket,
        ex: &mut Exchange,
        auth: &mut Auth,
        method: Method,
        attrs: impl Fn(&mut MessageEncoder<'_>),
    ) -> Result<Message, SetupError> {
        for _ in 0..STALE_NONCE_ROUNDS {
            let id = tid();
            let mut enc = MessageEncoder::new(&mut ex.out, method.request(), id);
            attrs(&mut enc);
            enc.add(&Username::new(auth.username.clone()))
                .add(&Realm::new(auth.realm.clone()))
                .add(&Nonce::new(auth.nonce.clone()))
                .message_integrity(&auth.key);
            enc.finish()
                .map_err(|_| SetupError::Malformed("request too long"))?;
            let resp = self.transact(socket, ex, method, id).await?;
            match resp.class() {
                Class::Success => return Ok(resp),
                Class::Error => {
                    let (code, why) = error_of(&resp);
                    if code == 438 {
                        if let Some(Ok(n)) = resp.get::<Nonce>() {
                            auth.nonce = n.as_str().to_owned();
                            continue;
                        }
                    }
                    return Err(SetupError::Refused(method, code, why));
                }
                _ => return Err(SetupError::Malformed("not a response")),
            }
        }
        Err(SetupError::Refused(
            method,
            438,
            "stale nonce, again".into(),
        ))
    }

    /// Allocate on `socket` (RFC 8656 §7.2), then bind the peer as asked.
    pub(crate) async fn open(
        &self,
        socket: Rc<BatchSocket>,
        ex: &mut Exchange,
        peer: PeerSetup,
    ) -> Result<ClientAllocation, SetupError> {
        // The first Allocate carries no credentials and earns a 401 with REALM and NONCE.
        let id = tid();
        let mut enc = MessageEncoder::new(&mut ex.out, Method::ALLOCATE.request(), id);
        enc.add(&RequestedTransport(RequestedTransport::UDP));
        enc.finish().map_err(|_| SetupError::Malformed("request"))?;
        let resp = self.transact(&socket, ex, Method::ALLOCATE, id).await?;
        let (code, why) = error_of(&resp);
        if resp.class() != Class::Error || code != 401 {
            let why = format!("{why} (a {:?} where a 401 was expected)", resp.class());
            return Err(SetupError::Refused(Method::ALLOCATE, code, why));
        }
        let realm = match resp.get::<Realm>() {
            Some(Ok(r)) => r.as_str().to_owned(),
            _ => return Err(SetupError::Malformed("401 without REALM")),
        };
        let nonce = match resp.get::<Nonce>() {
            Some(Ok(n)) => n.as_str().to_owned(),
            _ => return Err(SetupError::Malformed("401 without NONCE")),
        };
        let mut auth = Auth {
            username: self.username.clone(),
            key: self.key(&realm)?,
            realm,
            nonce,
        };
        let resp = self
            .authed(&socket, ex, &mut auth, Method::ALLOCATE, |e| {
                e.add(&RequestedTransport(RequestedTransport::UDP));
            })
            .await?;
        if !matches!(resp.get::<XorRelayedAddress>(), Some(Ok(_))) {
            return Err(SetupError::Malformed("no XOR-RELAYED-ADDRESS"));
        }
        match peer {
            PeerSetup::None => {}
            PeerSetup::Channel(p) => {
                self.authed(&socket, ex, &mut auth, Method::CHANNEL_BIND, |e| {
                    e.add(&ChannelNumber::new(CHANNEL).expect("a valid channel number"))
                        .add(&XorPeerAddress(p));
                })
                .await?;
            }
            PeerSetup::Permission(p) => {
                self.authed(&socket, ex, &mut auth, Method::CREATE_PERMISSION, |e| {
                    e.add(&XorPeerAddress(p));
                })
                .await?;
            }
        }
        Ok(ClientAllocation { socket, auth })
    }

    /// Refresh with LIFETIME 0 (RFC 8656 §7.3): the server deletes the allocation.
    pub(crate) async fn close(
        &self,
        alloc: &mut ClientAllocation,
        ex: &mut Exchange,
    ) -> Result<(), SetupError> {
        let socket = alloc.socket.clone();
        self.authed(&socket, ex, &mut alloc.auth, Method::REFRESH, |e| {
            e.add(&Lifetime(0));
        })
        .await
        .map(|_| ())
    }
}

fn error_of(m: &Message) -> (u16, String) {
    match m.get::<ErrorCode>() {
        // coturn ends some reason phrases with a NUL.
        Some(Ok(e)) => (
            e.code,
            e.reason
                .as_str()
                .chars()
                .filter(|c| !c.is_control())
                .collect(),
        ),
        _ => (0, String::new()),
    }
}

/// What [`open_all`] did.
pub(crate) struct Opened {
    /// Allocations by index; `None` where the setup failed.
    pub allocations: Vec<Option<ClientAllocation>>,
    pub failures: usize,
    pub first_error: Option<String>,
    /// From the first request to the last response.
    pub elapsed: Duration,
}

/// Opens one allocation on each socket, `window` at a time, giving up on new ones once
/// `limit` has passed. `peer(i)` says what allocation `i` binds.
pub(crate) async fn open_all(
    sessions: &Rc<Sessions>,
    sockets: &[Rc<BatchSocket>],
    window: usize,
    peer: impl Fn(usize) -> PeerSetup + 'static,
    limit: Duration,
) -> Opened {
    let started = Instant::now();
    let deadline = started + limit;
    let next = Rc::new(Cell::new(0usize));
    let results: Rc<RefCell<Vec<Option<ClientAllocation>>>> =
        Rc::new(RefCell::new((0..sockets.len()).map(|_| None).collect()));
    let errors: Rc<RefCell<(usize, Option<String>)>> = Rc::new(RefCell::new((0, None)));
    let sockets: Rc<[Rc<BatchSocket>]> = sockets.into();
    let peer = Rc::new(peer);
    let mut workers = Vec::new();
    for _ in 0..window.clamp(1, sockets.len().max(1)) {
        let (next, results, errors) = (next.clone(), results.clone(), errors.clone());
        let (sockets, sessions, peer) = (sockets.clone(), sessions.clone(), peer.clone());
        workers.push(actix_rt::spawn(async move {
            let mut ex = Exchange::new();
            loop {
                let i = next.get();
                if i >= sockets.len() || Instant::now() >= deadline {
                    break;
                }
                next.set(i + 1);
                let mut socket = sockets[i].clone();
                let mut result = sessions.open(socket, &mut ex, peer(i)).await;
                // A 437 on the first Allocate: the server still keeps state for this
                // 5-tuple, from an earlier run whose socket had the same port. Another
                // port will do.
                for _ in 0..3 {
                    if !matches!(result, Err(SetupError::Refused(_, 437, _))) {
                        break;
                    }
                    socket = match super::client_socket() {
                        Ok(s) => Rc::new(s),
                        Err(_) => break,
                    };
                    result = sessions.open(socket, &mut ex, peer(i)).await;
                }
                match result {
                    Ok(a) => results.borrow_mut()[i] = Some(a),
                    Err(e) => {
                        let mut errs = errors.borrow_mut();
                        errs.0 += 1;
                        errs.1.get_or_insert_with(|| e.to_string());
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed();
    let allocations = std::mem::take(&mut *results.borrow_mut());
    let (failed, first_error) = errors.take();
    let failures = failed + allocations[next.get()..].len();
    Opened {
        allocations,
        failures,
        first_error,
        elapsed,
    }
}

/// Deletes the allocations, `window` at a time, within `limit`; returns how many the
/// server confirmed.
pub(crate) async fn close_all(
    sessions: &Rc<Sessions>,
    allocations: Vec<ClientAllocation>,
    window: usize,
    limit: Duration,
) -> usize {
    let deadline = Instant::now() + limit;
    let n = allocations.len();
    let queue = Rc::new(RefCell::new(allocations));
    let closed = Rc::new(Cell::new(0usize));
    let mut workers = Vec::new();
    for _ in 0..window.clamp(1, n.max(1)) {
        let (queue, closed, sessions) = (queue.clone(), closed.clone(), sessions.clone());
        workers.push(actix_rt::spawn(async move {
            let mut ex = Exchange::new();
            while Instant::now() < deadline {
                let Some(mut a) = queue.borrow_mut().pop() else {
                    break;
                };
                if sessions.close(&mut a, &mut ex).await.is_ok() {
                    closed.set(closed.get() + 1);
                }
            }
        }));
    }
    for w in workers {
        let _ = tokio::time::timeout_at(deadline.into(), w).await;
    }
    closed.get()
}

/// Creates `n` client sockets.
pub(crate) fn sockets(n: usize) -> Result<Vec<Rc<BatchSocket>>, floe_actors::udp::UdpError> {
    (0..n)
        .map(|_| super::client_socket().map(Rc::new))
        .collect()
}

/// A random id for templates that need one.
pub(crate) fn random_tid() -> [u8; 12] {
    let mut t = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut t);
    t
}

/// Allocations set up for a data workload, and what the server's memory did meanwhile.
pub(crate) struct Setup {
    pub sessions: Rc<Sessions>,
    pub allocations: Vec<ClientAllocation>,
    pub failures: usize,
    pub first_error: Option<String>,
    pub setup_s: f64,
    /// Server RSS growth over the setup, per allocation made, in bytes.
    pub bytes_per_allocation: Option<f64>,
}

/// Opens `n` allocations, `window` at a time, allocation `i` bound to `peer(i)`; reads
/// the server's memory before and after.
pub(crate) async fn set_up(
    common: &super::Common,
    n: usize,
    window: usize,
    peer: impl Fn(usize) -> PeerSetup + 'static,
) -> Result<Setup, super::BenchError> {
    use super::proc_stats::sample;
    use super::BenchError;
    let (user, pass) = common.credentials()?;
    let sessions = Rc::new(Sessions::new(common.server, user, pass));
    let sockets = sockets(n)?;
    let before = common
        .pid
        .map(sample)
        .transpose()
        .map_err(BenchError::Server)?;
    let opened = open_all(&sessions, &sockets, window, peer, super::SETUP_LIMIT).await;
    let allocations: Vec<ClientAllocation> = opened.allocations.into_iter().flatten().collect();
    if allocations.is_empty() {
        return Err(BenchError::Server(format!(
            "no allocation from {}: {}",
            common.server,
            opened.first_error.unwrap_or_default()
        )));
    }
    // Let the server finish what the last responses started before reading its memory.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = common
        .pid
        .map(sample)
        .transpose()
        .map_err(BenchError::Server)?;
    let bytes_per_allocation = match (before, after) {
        (Some(b), Some(a)) => Some((a.rss as f64 - b.rss as f64) / allocations.len() as f64),
        _ => None,
    };
    Ok(Setup {
        sessions,
        allocations,
        failures: opened.failures,
        first_error: opened.first_error,
        setup_s: opened.elapsed.as_secs_f64(),
        bytes_per_allocation,
    })
}

/// Longest time deleting the allocations may take at the end.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

/// Deletes the allocations and notes how many the server confirmed.
pub(crate) async fn tear_down(setup: Setup, report: &mut super::Report) {
    let n = setup.allocations.len();
    let closed = close_all(
        &setup.sessions,
        setup.allocations,
        super::SETUP_WINDOW,
        CLOSE_LIMIT,
    )
    .await;
    report.int("deleted", closed as u64);
    if closed < n {
        eprintln!(
            "floe-bench: {} of {n} allocations were not deleted",
            n - closed
        );
    }
}

/// The setup's figures in a report.
pub(crate) fn setup_fields(report: &mut super::Report, setup: &Setup) {
    report
        .int("allocations", setup.allocations.len() as u64)
        .int("allocation_failures", setup.failures as u64)
        .float("setup_s", setup.setup_s)
        .opt_float("server_bytes_per_allocation", setup.bytes_per_allocation);
    if let Some(e) = &setup.first_error {
        report.text("first_error", e.clone());
    }
}
