//! `floe ice`: one [`IceAgent`](crate::ice::IceAgent) speaking INTEROP.md's JSON-lines protocol.
//!
//! stdout, one JSON object a line (the signalling lines have no `"event"` key):
//!
//! ```text
//! {"ufrag":"...","pwd":"...","role":"controlling"}       the credentials, first
//! {"candidate":"<RFC 8839 candidate-attribute value>"}    one per local candidate
//! {"end-of-candidates":true}                              RFC 8838 §8.2
//! {"event":"nominated","stream":0,"component":1,"local":"...","remote":"...","elapsed_ms":6.4}
//! {"event":"connected","stream":0}                        every component selected
//! {"event":"data","stream":0,"component":1,"data":"..."}  each datagram received
//! {"event":"restart","by":"local"}                        then new credentials lines
//! {"event":"consent-lost","stream":0,"component":1,...}   RFC 7675, then failed
//! {"event":"failed","reason":"..."}                       then exit status 1
//! ```
//!
//! (and `candidate-error`, `pair-failed`, `selected-pair`, `role`, `disconnected`
//! events). `elapsed_ms` is the time from `Start` (when the remote credentials
//! arrived) to the nomination.
//!
//! stdin: the remote's credentials, candidates and end-of-candidates, in any order and
//! at any time (trickle); lines with an `"event"` key are ignored. Checks start when
//! the remote credentials arrive; `"ice-lite":true` on them says the remote is lite,
//! `"renomination":true` that it offers renomination (printed on ours with
//! `--renomination`). With `--continual-gathering` no end-of-candidates is printed.
//!
//! Streams: with `--streams N`, each signalling line carries `"stream": N` (a line
//! without one is for stream 0): a credentials line, candidates and end-of-candidates
//! per stream, each stream with its own ufrag and pwd. `--components M` gathers a host
//! candidate (and a relayed one) per component; a candidate's component is its own.
//!
//! ICE restart (RFC 8445 §9): a new credentials line for a stream whose credentials are
//! known is a restart. `--restart-after S` restarts once, S seconds after connecting:
//! new credentials lines, the candidates again, end-of-candidates; the first credentials
//! line then says `"restart-after":S` so that the peer stays to answer. The peer answers
//! a restart with new credentials of its own, once. Data stays on the old pairs until
//! new ones are selected; no `failed` event comes of it.
//!
//! With `--send TEXT` the agent sends TEXT on every stream and component once
//! connected, again every 0.5 s until something arrives on each, and exits 0 once it
//! has both sent and received — after the restart, when one is due — and a second more,
//! so that the remote's last checks are answered. Without it, it exits 0 once connected
//! and stdin is closed. Failure or the `--timeout` exits 1; bad arguments 2.
//!
//! ICE-TCP (RFC 6544): `--tcp` adds a passive and an active TCP host candidate per
//! stream and host IP (component 1), ranked below the UDP ones; `--tcp-only` gathers
//! those alone, so that every signalled candidate is `tcp` with a `tcptype`. The peer
//! exiting closes a TCP pair's connection at once (consent is lost, then `failed`):
//! with `--send`, once the agent has sent and received, that still exits 0.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use floe::ice::{IceRole, Nomination};

use super::session::{session, SessionOptions};
use super::{AgentConfig, GatherConfig, TurnServerConfig};
use crate::cli::IceArgs;
use crate::logging::init_logging;

fn resolve(what: &str, text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("--{what} {text}: {e}"))?
        .next()
        .ok_or_else(|| format!("--{what} {text}: no address"))
}

/// A positive number of seconds.
fn seconds(what: &str, s: f64) -> Result<Duration, String> {
    match Duration::try_from_secs_f64(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("--{what} {s}: not a positive number of seconds")),
    }
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
    config.ice.renomination = args.renomination;
    if let Some(s) = args.consent_interval {
        config.ice.consent_interval = Some(seconds("consent-interval", s)?);
    }
    if let Some(s) = args.consent_timeout {
        config.ice.consent_timeout = seconds("consent-timeout", s)?;
    }
    if let Some(s) = args.restart_after {
        seconds("restart-after", s)?;
    }
    config.streams = usize::from(args.streams);
    config.components = args.components;
    config.gather = if args.loopback {
        GatherConfig::loopback_only()
    } else {
        GatherConfig::default()
    };
    config.gather.relay_only = args.relay_only;
    if let Some(s) = args.continual_gathering {
        config.gather.continual = Some(seconds("continual-gathering", s)?);
    }
    config.gather.mdns = args.mdns;
    config.gather.tcp = args.tcp;
    config.gather.tcp_only = args.tcp_only;
    if args.tcp_only && args.components > 1 {
        return Err(
            "--tcp-only gathers component 1 only (RFC 6544: one component a connection)".into(),
        );
    }
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
    let options = SessionOptions {
        send: args.send.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
        restart_after: args.restart_after.map(Duration::from_secs_f64),
        streams: config.streams,
        components: config.components,
        renomination: config.ice.renomination,
    };
    let code = actix_rt::System::new().block_on(session(config, options));
    ExitCode::from(code)
}
