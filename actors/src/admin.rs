//! The admin HTTP API of `floe serve` (`--admin ADDR:PORT`): health and readiness for
//! orchestrators, the Prometheus metrics, the allocations (`/sessions`) and ending them,
//! draining, and reloading the configuration.
//!
//! | request | answer |
//! |---|---|
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 while new allocations are taken, 503 while draining |
//! | `GET /metrics` | the Prometheus text of `--metrics` |
//! | `GET /sessions[?user=NAME]` | a JSON array, one [`Session`](crate::turn::Session) per allocation |
//! | `DELETE /sessions/{id}` | ends that allocation (404 if there is none) |
//! | `DELETE /sessions?user=NAME` | ends that user's allocations |
//! | `POST /drain` | starts draining (202) |
//! | `POST /reload` | reloads the configuration (200), or says why not (400) |
//!
//! With a token (`--admin-token`), every path but `/healthz` and `/readyz` needs
//! `Authorization: Bearer TOKEN` (401 without): probes stay simple, and what reads or
//! changes sessions does not.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::config::Secret;
use crate::http::{read_request, Request, Response, JSON};
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::turn::{ServerHandle, SessionFilter, SessionId};

/// Time a client has to send its request and read the answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The switch that starts a drain, shared by whoever may pull it (the admin API, the
/// SIGTERM handler) and the loop that carries it out.
#[derive(Debug, Clone, Default)]
pub struct DrainSwitch {
    inner: Arc<DrainInner>,
}

#[derive(Debug, Default)]
struct DrainInner {
    on: AtomicBool,
    pulled: Notify,
}

impl DrainSwitch {
    /// A switch not pulled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the drain; returns false if it had started already.
    pub fn pull(&self) -> bool {
        let first = !self.inner.on.swap(true, Ordering::SeqCst);
        if first {
            self.inner.pulled.notify_one();
        }
        first
    }

    /// Whether the drain has started.
    pub fn is_pulled(&self) -> bool {
        self.inner.on.load(Ordering::SeqCst)
    }

    /// Waits until the switch is pulled (at once if it was).
    pub async fn pulled(&self) {
        if !self.is_pulled() {
            self.inner.pulled.notified().await;
        }
    }
}

/// What the admin API serves.
#[derive(Clone)]
pub struct AdminState {
    /// The running server.
    pub server: ServerHandle,
    /// Its metrics.
    pub metrics: Metrics,
    /// The bearer token asked for, if any.
    pub token: Option<Secret>,
    /// Pulled by `POST /drain`.
    pub drain: DrainSwitch,
    /// What `POST /reload` runs; without it, the path is a 404.
    pub reload: Option<Reloader>,
}

/// Why the admin API could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The API runs on the tokio runtime of the calling thread; there was none.
    #[error("no tokio runtime on this thread: start the admin API inside an actix-rt System")]
    NoRuntime,
    /// The address could not be bound.
    #[error("cannot serve the admin API on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// The running admin API; it stops when dropped.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// Binds `addr` and serves `state` on the current runtime until dropped.
    pub fn start(addr: SocketAddr, state: AdminState) -> Result<Self, AdminError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(AdminError::NoRuntime);
        }
        let bind_err = |source| AdminError::Bind { addr, source };
        let std_listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        std_listener.set_nonblocking(true).map_err(bind_err)?;
        let listener = TcpListener::from_std(std_listener).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let task = tokio::spawn(accept_loop(listener, Arc::new(state)));
        Ok(AdminServer { local_addr, task })
    }

    /// The bound address (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let state = state.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(CONNECTION_TIMEOUT, serve(stream, &state)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "admin request failed"),
                        Err(_) => tracing::debug!(%peer, "admin request timed out"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin API cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(mut stream: TcpStream, state: &AdminState) -> io::Result<()> {
    let (response, head_only) = match read_request(&mut stream).await? {
        Some(request) => (answer(&request, state).await, request.method == "HEAD"),
        None => (Response::text("400 Bad Request", "bad request\n"), false),
    };
    response.write_to(&mut stream, head_only).await
}

/// Whether `authorization` carries the bearer `token`, compared in constant time.
fn authorized(token: &Secret, authorization: Option<&str>) -> bool {
    let Some(given) = authorization.and_then(|a| {
        let (scheme, value) = a.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(value.trim())
    }) else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.expose().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json(status: &'static str, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            Response::new(status, JSON, body)
        }
        Err(e) => Response::text("500 Internal Server Error", &format!("{e}\n")),
    }
}

fn method_not_allowed(allow: &str) -> Response {
    let mut r = Response::text("405 Method Not Allowed", "method not allowed\n");
    r.headers.push(format!("Allow: {allow}"));
    r
}

/// The answer to one request.
async fn answer(req: &Request, state: &AdminState) -> Response {
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    let path = req.path.as_str();
    match path {
        "/healthz" if get => return Response::text("200 OK", "ok\n"),
        "/readyz" if get => {
            return if state.drain.is_pulled() {
                Response::text("503 Service Unavailable", "draining\n")
            } else {
                Response::text("200 OK", "ready\n")
            };
        }
        "/healthz" | "/readyz" => return method_not_allowed("GET, HEAD"),
        _ => {}
    }
    if let Some(token) = &state.token {
        if !authorized(token, req.authorization.as_deref()) {
            let mut r = Response::text("401 Unauthorized", "a bearer token is required\n");
            r.headers
                .push("WWW-Authenticate: Bearer realm=\"floe\"".into());
            return r;
        }
    }
    let method = req.method.as_str();
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Response::new(
            "200 OK",
            crate::metrics::PROMETHEUS_TYPE,
            state.metrics.render_prometheus(),
        ),
        (_, "/metrics") => method_not_allowed("GET, HEAD"),
        ("GET" | "HEAD", "/sessions") => {
            let sessions = state.server.sessions(req.param("user")).await;
            json("200 OK", &sessions)
        }
        ("DELETE", "/sessions") => match req.param("user") {
            Some(user) if !user.is_empty() => {
                let n = state
                    .server
                    .end_sessions(SessionFilter::User(user.to_owned()))
                    .await;
                json("200 OK", &serde_json::json!({ "deleted": n }))
            }
            _ => Response::text(
                "400 Bad Request",
                "DELETE /sessions needs ?user=NAME (or DELETE /sessions/{id})\n",
            ),
        },
        (_, "/sessions") => method_not_allowed("GET, HEAD, DELETE"),
        ("POST", "/drain") => {
            let started = state.drain.pull();
            // Refusing before the answer: an Allocate after a 202 is refused.
            let allocations = state.server.set_draining(true).await;
            json(
                "202 Accepted",
                &serde_json::json!({ "draining": true, "started": started, "allocations": allocations }),
            )
        }
        (_, "/drain") => method_not_allowed("POST"),
        ("POST", "/reload") if state.reload.is_some() => {
            let reloader = state.reload.as_ref().expect("checked");
            match reloader.reload().await {
                Ok(report) => json(
                    "200 OK",
                    &serde_json::json!({ "reloaded": true, "allocations": report.allocations, "kept": report.kept }),
                ),
                Err(e) => json(
                    "400 Bad Request",
                    &serde_json::json!({ "reloaded": false, "error": e.to_string() }),
                ),
            }
        }
        (_, "/reload") if state.reload.is_some() => method_not_allowed("POST"),
        (_, p) if p.starts_with("/sessions/") => {
            if method != "DELETE" {
                return method_not_allowed("DELETE");
            }
            let Ok(id) = p["/sessions/".len()..].parse::<SessionId>() else {
                return Response::text("400 Bad Request", "a session id is THREAD-ID\n");
            };
            match state.server.end_sessions(SessionFilter::Id(id)).await {
                0 => Response::text("404 Not Found", "no such session\n"),
                n => json("200 OK", &serde_json::json!({ "deleted": n })),
            }
        }
        _ => Response::text(
            "404 Not Found",
            "not found; try /healthz, /readyz, /metrics, /sessions, /drain, /reload\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_must_match_exactly() {
        let t = Secret::new("s3cret");
        assert!(authorized(&t, Some("Bearer s3cret")));
        assert!(authorized(&t, Some("bearer  s3cret ")));
        assert!(!authorized(&t, Some("Bearer s3cre")));
        assert!(!authorized(&t, Some("Bearer s3cretx")));
        assert!(!authorized(&t, Some("Basic s3cret")));
        assert!(!authorized(&t, Some("s3cret")));
        assert!(!authorized(&t, None));
    }

    #[actix_rt::test]
    async fn the_drain_switch_wakes_its_waiter_once() {
        let d = DrainSwitch::new();
        assert!(!d.is_pulled());
        let waiter = {
            let d = d.clone();
            tokio::spawn(async move { d.pulled().await })
        };
        assert!(d.pull());
        assert!(!d.pull(), "already pulled");
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        // Pulled before anyone waits: no wait at all.
        tokio::time::timeout(Duration::from_secs(5), d.pulled())
            .await
            .unwrap();
    }
}
