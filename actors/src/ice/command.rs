//! `floe ice`: one [`IceAgent`] speaking INTEROP.md's JSON-lines protocol.
//!
//! stdout, one JSON object a line:
//!
//! ```text
//! {"ufrag":"...","pwd":"...","role":"controlling"}       the description, first
//! {"candidate":"<RFC 8839 candidate-attribute value>"}    one per local candidate
//! {"end-of-candidates":true}
//! {"event":"nominated","local":"...","remote":"...","elapsed_ms":6.4}
//! {"event":"connected"}
//! {"event":"data","data":"..."}                           each datagram received
//! {"event":"failed","reason":"..."}                       then exit status 1
//! ```
//!
//! (and `candidate-error`, `pair-failed`, `selected-pair`, `role`, `disconnected`
//! events). `elapsed_ms` is the time from `Start` (when the remote description
//! arrived) to the nomination.
//!
//! stdin: the remote's description, candidates and end-of-candidates, in any order and
//! at any time (trickle); lines with an `"event"` key are ignored. Checks start when
//! the remote description arrives; `"ice-lite":true` on it says the remote is lite.
//!
//! With `--send TEXT` the agent sends TEXT once connected, again every 0.5 s until
//! something arrives, and exits 0 once it has both sent and received (after a second
//! more, so that the remote's last checks are answered). Without it, it exits 0 once
//! connected and stdin is closed. Failure or the `--timeout` exits 1; bad arguments 2.

use std::io::{BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use floe::ice::{Candidate, IceEvent as CoreEvent, IceRole, Nomination};
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::{AgentConfig, GatherConfig, IceAgent, IceAgentHandle, IceEvent, TurnServerConfig};
use crate::cli::IceArgs;
use crate::logging::init_logging;

/// How long the agent stays after it has sent and received.
const LINGER: Duration = Duration::from_secs(1);
/// How often `--send` TEXT is sent again until something arrives.
const RESEND: Duration = Duration::from_millis(500);

fn resolve(what: &str, text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("--{what} {text}: {e}"))?
        .next()
        .ok_or_else(|| format!("--{what} {text}: no address"))
}

/// The agent's configuration from the flags.
pub fn agent_config(args: &IceArgs) -> Result<AgentConfig, String> {
    let role = if args.controlled {
        IceRole::Controlled
    } else {
        IceRole::Controlling
    };
    let mut config = AgentConfig::new(role);
    if let Some(ta) = args.ta {
        config.ice.ta = Duration::from_millis(ta);
    }
    if args.aggressive_nomination {
        config.ice.nomination = Nomination::Aggressive;
    }
    config.gather = if args.loopback {
        GatherConfig::loopback_only()
    } else {
        GatherConfig::default()
    };
    config.gather.relay_only = args.relay_only;
    for s in &args.stun {
        config.stun.push(resolve("stun", s)?);
    }
    if let Some(turn) = &args.turn {
        let addr = resolve("turn", turn)?;
        let user = args.user.clone().unwrap_or_default();
        let password = args.password.clone().unwrap_or_default();
        let mut t = TurnServerConfig::udp(addr, user, password);
        if args.turn_tcp {
            t = t.over_tcp();
        }
        config.turn.push(t);
    }
    Ok(config)
}

/// Runs `floe ice`.
pub fn run(args: &IceArgs) -> ExitCode {
    if let Err(e) = init_logging(args.log.as_deref().unwrap_or("warn")) {
        eprintln!("floe ice: {e}");
        return ExitCode::from(2);
    }
    let config = match agent_config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("floe ice: {e}");
            return ExitCode::from(2);
        }
    };
    let send = args.send.clone();
    let timeout = Duration::from_secs(args.timeout.max(1));
    let code = actix_rt::System::new().block_on(session(config, send, timeout));
    ExitCode::from(code)
}

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn js(s: &str) -> String {
    Value::from(s).to_string()
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

/// Applies one line from the remote; returns whether it was the description.
fn remote_line(agent: &IceAgentHandle, line: &str) -> bool {
    let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(line.trim()) else {
        if !line.trim().is_empty() {
            tracing::warn!(%line, "ignoring a line that is not a JSON object");
        }
        return false;
    };
    if msg.contains_key("event") {
        return false;
    }
    if let (Some(ufrag), Some(pwd)) = (
        msg.get("ufrag").and_then(Value::as_str),
        msg.get("pwd").and_then(Value::as_str),
    ) {
        // RFC 8445 §6.1.1: a lite peer says so (`a=ice-lite`); this agent then controls.
        if msg.get("ice-lite").and_then(Value::as_bool) == Some(true) {
            agent.set_remote_lite(ufrag, pwd, Vec::new());
        } else {
            agent.set_remote(ufrag, pwd, Vec::new());
        }
        return true;
    }
    if let Some(text) = msg.get("candidate").and_then(Value::as_str) {
        match text.parse::<Candidate>() {
            Ok(c) => agent.add_remote_candidate(c),
            Err(e) => tracing::warn!(candidate = %text, error = %e, "ignoring a remote candidate"),
        }
    } else if msg.get("end-of-candidates").and_then(Value::as_bool) == Some(true) {
        agent.end_of_remote_candidates();
    }
    false
}

fn pair_line(event: &str, local: &Candidate, remote: &Candidate) -> String {
    format!(
        r#"{{"event":{},"local":{},"remote":{}}}"#,
        js(event),
        js(&local.to_sdp()),
        js(&remote.to_sdp())
    )
}

async fn session(config: AgentConfig, send: Option<String>, timeout: Duration) -> u8 {
    let agent = IceAgent::spawn(config);
    let mut events = agent.events();
    agent.gather();
    let description = agent.local_description().await;
    emit(&format!(
        r#"{{"ufrag":{},"pwd":{},"role":{}}}"#,
        js(&description.credentials.ufrag),
        js(&description.credentials.pwd),
        js(role_name(description.role))
    ));

    let mut lines = stdin_lines();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut resend = tokio::time::interval(RESEND);
    let mut started: Option<Instant> = None;
    let (mut stdin_open, mut connected, mut sent, mut received) = (true, false, false, false);
    let mut finish_at: Option<tokio::time::Instant> = None;

    let code = loop {
        let linger = async {
            match finish_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            line = lines.recv(), if stdin_open => match line {
                Some(line) => {
                    if remote_line(&agent, &line) && started.is_none() {
                        started = Some(Instant::now());
                        agent.start();
                    }
                }
                None => {
                    stdin_open = false;
                    if send.is_none() && connected {
                        break 0;
                    }
                }
            },
            event = events.recv() => {
                let Some(event) = event else {
                    emit(r#"{"event":"failed","reason":"the agent stopped"}"#);
                    break 1;
                };
                match event {
                    IceEvent::Candidate(c) => emit(&format!(r#"{{"candidate":{}}}"#, js(&c.to_sdp()))),
                    IceEvent::GatheringComplete => emit(r#"{"end-of-candidates":true}"#),
                    IceEvent::CandidateError { server, kind, code, reason } => emit(&format!(
                        r#"{{"event":"candidate-error","server":{},"kind":{},"code":{},"reason":{}}}"#,
                        js(&server.to_string()),
                        js(&format!("{kind:?}")),
                        code.map_or("null".to_owned(), |c| c.to_string()),
                        js(&reason)
                    )),
                    IceEvent::Core(CoreEvent::PairNominated { local, remote }) => {
                        let mut line = pair_line("nominated", &local, &remote);
                        if let Some(t) = started {
                            line.pop();
                            line.push_str(&format!(
                                r#","elapsed_ms":{:.3}}}"#,
                                t.elapsed().as_secs_f64() * 1000.0
                            ));
                        }
                        emit(&line);
                    }
                    IceEvent::Core(CoreEvent::PairFailed { local, remote }) => emit(&pair_line("pair-failed", &local, &remote)),
                    IceEvent::Core(CoreEvent::SelectedPairChanged { local, remote }) => emit(&pair_line("selected-pair", &local, &remote)),
                    IceEvent::Core(CoreEvent::RoleChanged(role)) => emit(&format!(r#"{{"event":"role","role":{}}}"#, js(role_name(role)))),
                    IceEvent::Core(CoreEvent::Connected) => {
                        emit(r#"{"event":"connected"}"#);
                        connected = true;
                        match &send {
                            Some(text) => sent |= agent.send(text.clone()).await.is_ok(),
                            None if !stdin_open => break 0,
                            None => {}
                        }
                    }
                    IceEvent::Core(CoreEvent::Disconnected) => emit(r#"{"event":"disconnected"}"#),
                    IceEvent::Core(CoreEvent::Failed) => {
                        emit(r#"{"event":"failed","reason":"ICE failed: no pair could be nominated, or consent was lost"}"#);
                        break 1;
                    }
                    IceEvent::Data(data) => {
                        emit(&format!(r#"{{"event":"data","data":{}}}"#, js(&String::from_utf8_lossy(&data))));
                        received = true;
                    }
                    IceEvent::Core(e) => tracing::debug!(event = ?e, "ICE"),
                }
            },
            _ = resend.tick(), if connected && send.is_some() && !received => {
                if let Some(text) = &send {
                    sent |= agent.send(text.clone()).await.is_ok();
                }
            },
            _ = linger => break 0,
            _ = &mut deadline => {
                emit(&format!(r#"{{"event":"failed","reason":"timeout after {} s"}}"#, timeout.as_secs()));
                break 1;
            },
        }
        if sent && received && finish_at.is_none() {
            // One more copy in case the remote's first ones were lost, then linger.
            if let Some(text) = &send {
                let _ = agent.send(text.clone()).await;
            }
            finish_at = Some(tokio::time::Instant::now() + LINGER);
        }
    };
    agent.stop();
    // Let TURN allocations be deleted (Refresh with LIFETIME 0).
    tokio::time::sleep(Duration::from_millis(250)).await;
    code
}
