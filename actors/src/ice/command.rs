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

fn seconds(what: &str, s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("--{what} {s}: not a duration"))
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
    };
    let code = actix_rt::System::new().block_on(session(config, options));
    ExitCode::from(code)
}
