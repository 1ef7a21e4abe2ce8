//! The session loop of `floe ice`: the JSON lines in and out, `--send`, and ICE restart.
//! The protocol is described in the [`command`](super::command) module.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use floe::ice::{Candidate, IceError, IceEvent as CoreEvent, IceRole};
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::api::{Description, SetRemote};
use super::{AgentConfig, IceAgent, IceAgentHandle, IceEvent};

/// How long the agent stays after it has sent and received.
const LINGER: Duration = Duration::from_secs(1);
/// How often `--send` TEXT is sent again until something arrives.
const RESEND: Duration = Duration::from_millis(500);

/// What `floe ice` does beyond the agent's configuration.
#[derive(Clone, Debug, Default)]
pub(crate) struct SessionOptions {
    /// `--send TEXT`.
    pub send: Option<String>,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--restart-after`: restart once, this long after connecting.
    pub restart_after: Option<Duration>,
    /// `--streams`.
    pub streams: usize,
    /// `--components`.
    pub components: u16,
    /// `--renomination`: offered on the credentials lines.
    pub renomination: bool,
}

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// One JSON object, its keys in the order given.
fn emit_object(fields: Vec<(&str, Value)>) {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
        .collect();
    emit(&format!("{{{}}}", body.join(",")));
}

fn role_name(role: IceRole) -> &'static str {
    match role {
        IceRole::Controlling => "controlling",
        IceRole::Controlled => "controlled",
    }
}

/// stdin's lines, read by a thread; `None` once stdin is closed.
fn stdin_lines() -> UnboundedReceiver<String> {
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A line from the remote, parsed; `stream` is the line's `"stream"` (0 when absent).
enum RemoteLine {
    /// `{"ufrag","pwd"}`: the description (again after an ICE restart).
    Credentials {
        stream: usize,
        ufrag: String,
        pwd: String,
        lite: bool,
        /// `"renomination"`: the remote offers draft-thatcher-ice-renomination-01.
        renomination: bool,
        /// `"restart-after"`: the remote will restart once connected; stay to answer.
        restart_after: bool,
    },
    Candidate(usize, Candidate),
    /// A candidate whose address is an mDNS name: the agent resolves it.
    MdnsCandidate(usize, String),
    EndOfCandidates(usize),
    Ignored,
}

fn parse_remote_line(line: &str) -> RemoteLine {
    let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(line.trim()) else {
        if !line.trim().is_empty() {
            tracing::warn!(%line, "ignoring a line that is not a JSON object");
        }
        return RemoteLine::Ignored;
    };
    if msg.contains_key("event") {
        return RemoteLine::Ignored;
    }
    let stream = match msg.get("stream") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => n,
            None => {
                tracing::warn!(%line, "ignoring a line with a bad stream");
                return RemoteLine::Ignored;
            }
        },
    };
    if let (Some(ufrag), Some(pwd)) = (
        msg.get("ufrag").and_then(Value::as_str),
        msg.get("pwd").and_then(Value::as_str),
    ) {
        return RemoteLine::Credentials {
            stream,
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
            // RFC 8445 §6.1.1: a lite peer says so (`a=ice-lite`); this agent then controls.
            lite: msg.get("ice-lite").and_then(Value::as_bool) == Some(true),
            // Its ice-options include renomination (draft-thatcher-ice-renomination-01).
            renomination: msg.get("renomination").and_then(Value::as_bool) == Some(true),
            restart_after: msg.get("restart-after").is_some_and(|v| !v.is_null()),
        };
    }
    if let Some(text) = msg.get("candidate").and_then(Value::as_str) {
        return match text.parse::<Candidate>() {
            Ok(c) => RemoteLine::Candidate(stream, c),
            Err(IceError::HostnameCandidate(name)) if floe::mdns::is_mdns_name(&name) => {
                RemoteLine::MdnsCandidate(stream, text.to_owned())
            }
            Err(e) => {
                tracing::warn!(candidate = %text, error = %e, "ignoring a remote candidate");
                RemoteLine::Ignored
            }
        };
    }
    if msg.get("end-of-candidates").and_then(Value::as_bool) == Some(true) {
        return RemoteLine::EndOfCandidates(stream);
    }
    RemoteLine::Ignored
}

/// One `floe ice` run.
struct Session {
    agent: IceAgentHandle,
    options: SessionOptions,
    /// When checks started (the remote description arrived).
    started: Option<Instant>,
    /// Each stream's remote credentials in use: a different pair is an ICE restart.
    remote: Vec<Option<(String, String)>>,
    /// The remote said it will restart (`"restart-after"`).
    remote_will_restart: bool,
    /// This side restarted (RFC 8445 §9) and waits for the remote's new credentials.
    awaiting_answer: bool,
    /// A restart happened (either side started it); there is at most one.
    restarted: bool,
    gathering_done: bool,
    stdin_open: bool,
    /// The streams that said `connected` (since the restart, if any).
    connected: HashSet<usize>,
    /// `--send` TEXT went out on every stream and component.
    sent: bool,
    /// The (stream, component)s data arrived on (since the restart, if any).
    received: HashSet<(usize, u16)>,
    /// `--restart-after`: when to restart.
    restart_at: Option<tokio::time::Instant>,
    finish_at: Option<tokio::time::Instant>,
}

/// What the loop does after an event.
enum Next {
    Continue,
    Exit(u8),
}

impl Session {
    fn multi_stream(&self) -> bool {
        self.options.streams > 1
    }

    /// An event line: with several streams it names its stream, with several
    /// components its component (so that a one-stream, one-component session prints the
    /// lines it always did).
    fn event_fields<'a>(
        &self,
        event: &'a str,
        stream: usize,
        component: Option<u16>,
    ) -> Vec<(&'a str, Value)> {
        let mut fields = vec![("event", event.into())];
        if self.multi_stream() {
            fields.push(("stream", stream.into()));
        }
        if let Some(c) = component.filter(|_| self.options.components > 1) {
            fields.push(("component", c.into()));
        }
        fields
    }

    /// A pair event line; the component is the local candidate's.
    fn pair_fields<'a>(
        &self,
        event: &'a str,
        stream: usize,
        local: &Candidate,
        remote: &Candidate,
    ) -> Vec<(&'a str, Value)> {
        let mut fields = self.event_fields(event, stream, Some(local.component()));
        fields.push(("local", local.to_sdp().into()));
        fields.push(("remote", remote.to_sdp().into()));
        fields
    }

    /// A signalling line: with several streams, it names its stream.
    fn signal(&self, stream: usize, mut fields: Vec<(&str, Value)>) {
        if self.multi_stream() {
            fields.push(("stream", stream.into()));
        }
        emit_object(fields);
    }

    fn print_credentials(&self, d: &Description, first: bool) {
        for (stream, sd) in d.streams.iter().enumerate() {
            let mut fields = vec![
                ("ufrag", sd.credentials.ufrag.clone().into()),
                ("pwd", sd.credentials.pwd.clone().into()),
                ("role", role_name(d.role).into()),
            ];
            if self.options.renomination {
                fields.push(("renomination", true.into()));
            }
            if first {
                if let Some(after) = self.options.restart_after {
                    fields.push(("restart-after", after.as_secs_f64().into()));
                }
            }
            self.signal(stream, fields);
        }
    }

    fn end_of_candidates(&self) {
        for stream in 0..self.options.streams.max(1) {
            self.signal(stream, vec![("end-of-candidates", true.into())]);
        }
    }

    fn is_connected(&self) -> bool {
        self.connected.len() >= self.options.streams.max(1)
    }

    fn all_received(&self) -> bool {
        self.received.len()
            >= self.options.streams.max(1) * usize::from(self.options.components.max(1))
    }

    /// Whether a restart is still to come, so that `--send` must not finish yet.
    fn restart_pending(&self) -> bool {
        !self.restarted && (self.options.restart_after.is_some() || self.remote_will_restart)
    }

    /// `--send`: TEXT on every stream and component.
    async fn send_all(&mut self) {
        let Some(text) = self.options.send.clone() else {
            return;
        };
        let mut all = true;
        for stream in 0..self.options.streams.max(1) {
            for component in 1..=self.options.components.max(1) {
                all &= self
                    .agent
                    .send_on(stream, component, text.clone())
                    .await
                    .is_ok();
            }
        }
        self.sent |= all;
    }

    /// RFC 8445 §9: restarts the agent and signals the new credentials and the
    /// candidates again. Data keeps going on the old pairs until new ones are selected;
    /// `--send` sends and receives again on the new ones.
    async fn restart(&mut self, initiator: &str) {
        let d = self.agent.restart().await;
        self.restarted = true;
        self.connected.clear();
        self.sent = false;
        self.received.clear();
        self.finish_at = None;
        self.restart_at = None;
        emit_object(vec![("event", "restart".into()), ("by", initiator.into())]);
        self.print_credentials(&d, false);
        for (stream, sd) in d.streams.iter().enumerate() {
            for c in &sd.candidates {
                self.signal(stream, vec![("candidate", c.to_sdp().into())]);
            }
        }
        if self.gathering_done {
            self.end_of_candidates();
        }
    }

    async fn remote_line(&mut self, line: &str) {
        let streams = self.options.streams.max(1);
        match parse_remote_line(line) {
            RemoteLine::Credentials { stream, .. }
            | RemoteLine::Candidate(stream, _)
            | RemoteLine::MdnsCandidate(stream, _)
            | RemoteLine::EndOfCandidates(stream)
                if stream >= streams =>
            {
                tracing::warn!(%line, "ignoring a line of a stream this agent has not");
            }
            RemoteLine::Credentials {
                stream,
                ufrag,
                pwd,
                lite,
                renomination,
                restart_after,
            } => {
                self.remote_will_restart |= restart_after;
                let new = (ufrag.clone(), pwd.clone());
                if self.remote[stream].as_ref() == Some(&new) {
                    return;
                }
                if self.remote[stream].is_some() {
                    // A new credentials line mid-session is an ICE restart: answer it
                    // with new credentials of our own, once (unless it is the answer
                    // to ours, or another stream's line of the same restart).
                    if self.awaiting_answer {
                        self.awaiting_answer = false;
                    } else if !self.restarted {
                        self.restart("remote").await;
                    }
                }
                self.remote[stream] = Some(new);
                let mut remote = SetRemote::new(stream, ufrag, pwd);
                remote.lite = lite;
                remote.renomination = renomination;
                self.agent.set_remote_description(remote);
                if self.started.is_none() {
                    self.started = Some(Instant::now());
                    self.agent.start();
                }
            }
            RemoteLine::Candidate(stream, c) => self.agent.add_remote_candidate_to(stream, c),
            RemoteLine::MdnsCandidate(stream, sdp) => {
                if let Err(e) = self.agent.add_remote_candidate_sdp(stream, sdp).await {
                    tracing::warn!(error = %e, "ignoring a remote candidate");
                }
            }
            RemoteLine::EndOfCandidates(stream) => self.agent.end_of_remote_candidates_of(stream),
            RemoteLine::Ignored => {}
        }
    }

    async fn event(&mut self, event: IceEvent) -> Next {
        match event {
            IceEvent::Candidate { stream, candidate } => {
                self.signal(stream, vec![("candidate", candidate.to_sdp().into())])
            }
            IceEvent::GatheringComplete => {
                self.gathering_done = true;
                self.end_of_candidates();
            }
            IceEvent::CandidateError {
                server,
                kind,
                code,
                reason,
            } => emit_object(vec![
                ("event", "candidate-error".into()),
                ("server", server.to_string().into()),
                ("kind", format!("{kind:?}").into()),
                ("code", code.map_or(Value::Null, Value::from)),
                ("reason", reason.into()),
            ]),
            IceEvent::Core { stream, event } => return self.core_event(stream, event).await,
            IceEvent::Data {
                stream,
                component,
                data,
            } => {
                let mut fields = self.event_fields("data", stream, Some(component));
                fields.push(("data", String::from_utf8_lossy(&data).into()));
                emit_object(fields);
                self.received.insert((stream, component));
            }
        }
        Next::Continue
    }

    async fn core_event(&mut self, stream: usize, event: CoreEvent) -> Next {
        match event {
            CoreEvent::PairNominated { local, remote } => {
                let mut fields = self.pair_fields("nominated", stream, &local, &remote);
                if let Some(t) = self.started {
                    let ms = (t.elapsed().as_secs_f64() * 1e6).round() / 1e3;
                    fields.push(("elapsed_ms", ms.into()));
                }
                emit_object(fields);
            }
            CoreEvent::PairFailed { local, remote } => {
                emit_object(self.pair_fields("pair-failed", stream, &local, &remote))
            }
            CoreEvent::SelectedPairChanged { local, remote } => {
                emit_object(self.pair_fields("selected-pair", stream, &local, &remote))
            }
            CoreEvent::RoleChanged(role) => emit_object(vec![
                ("event", "role".into()),
                ("role", role_name(role).into()),
            ]),
            CoreEvent::Connected => {
                emit_object(self.event_fields("connected", stream, None));
                self.connected.insert(stream);
                if !self.is_connected() {
                    return Next::Continue;
                }
                if let (Some(after), false) = (self.options.restart_after, self.restarted) {
                    self.restart_at
                        .get_or_insert(tokio::time::Instant::now() + after);
                }
                if self.options.send.is_some() {
                    self.send_all().await;
                } else if !self.stdin_open && !self.restart_pending() {
                    return Next::Exit(0);
                }
            }
            CoreEvent::Disconnected => emit_object(self.event_fields("disconnected", stream, None)),
            CoreEvent::ConsentLost { local, remote } => {
                emit_object(self.pair_fields("consent-lost", stream, &local, &remote))
            }
            CoreEvent::Failed => {
                let mut fields = self.event_fields("failed", stream, None);
                let reason = "ICE failed: no pair could be nominated, or consent was lost";
                fields.push(("reason", reason.into()));
                emit_object(fields);
                // Done (sent and received, lingering): the peer went away first, which
                // over ICE-TCP closes the connection at once (RFC 6544), so no failure.
                return Next::Exit(if self.finish_at.is_some() { 0 } else { 1 });
            }
            e => tracing::debug!(event = ?e, "ICE"),
        }
        Next::Continue
    }

    /// With `--send`: once sent and received on every stream and component (after the
    /// restart, if one is due), one more copy in case the remote's first ones were
    /// lost, then linger.
    async fn maybe_finish(&mut self) {
        if self.sent && self.all_received() && self.finish_at.is_none() && !self.restart_pending() {
            self.send_all().await;
            self.finish_at = Some(tokio::time::Instant::now() + LINGER);
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Runs `floe ice` until it exits; returns the exit status.
pub(crate) async fn session(config: AgentConfig, options: SessionOptions) -> u8 {
    let agent = IceAgent::spawn(config);
    let mut events = agent.events();
    agent.gather();
    let description = agent.local_description().await;
    let timeout = options.timeout;
    let mut s = Session {
        agent: agent.clone(),
        remote: vec![None; options.streams.max(1)],
        options,
        started: None,
        remote_will_restart: false,
        awaiting_answer: false,
        restarted: false,
        gathering_done: false,
        stdin_open: true,
        connected: HashSet::new(),
        sent: false,
        received: HashSet::new(),
        restart_at: None,
        finish_at: None,
    };
    s.print_credentials(&description, true);

    let mut lines = stdin_lines();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut resend = tokio::time::interval(RESEND);

    let code = loop {
        let sending = s.is_connected() && s.options.send.is_some() && !s.all_received();
        tokio::select! {
            line = lines.recv(), if s.stdin_open => match line {
                Some(line) => s.remote_line(&line).await,
                None => {
                    s.stdin_open = false;
                    if s.options.send.is_none() && s.is_connected() && !s.restart_pending() {
                        break 0;
                    }
                }
            },
            event = events.recv() => {
                let Some(event) = event else {
                    emit(r#"{"event":"failed","reason":"the agent stopped"}"#);
                    break 1;
                };
                if let Next::Exit(code) = s.event(event).await {
                    break code;
                }
            },
            _ = resend.tick(), if sending => s.send_all().await,
            _ = sleep_until(s.restart_at) => {
                s.awaiting_answer = true;
                s.restart("local").await;
            },
            _ = sleep_until(s.finish_at) => break 0,
            _ = &mut deadline => {
                emit(&format!(r#"{{"event":"failed","reason":"timeout after {} s"}}"#, timeout.as_secs()));
                break 1;
            },
        }
        s.maybe_finish().await;
    };
    agent.stop();
    // Let TURN allocations be deleted (Refresh with LIFETIME 0).
    tokio::time::sleep(Duration::from_millis(250)).await;
    code
}
