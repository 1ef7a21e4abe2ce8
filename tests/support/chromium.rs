//! Headless Chromium as a real peer, through `tests/support/chromium_peer.py`: an
//! RTCPeerConnection driven over the DevTools protocol, speaking INTEROP.md's JSON lines
//! on stdin/stdout (Debian package `chromium`; the script needs only Python's stdlib).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{find_in_path, support_dir, LineProcess};

/// The Chromium binary: `$FLOE_CHROMIUM` when set, else `chromium` on `PATH`.
pub fn chromium_binary() -> Option<PathBuf> {
    match std::env::var_os("FLOE_CHROMIUM") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.exists()),
        None => find_in_path("chromium"),
    }
}

/// The options of `chromium_peer.py`.
#[derive(Clone, Debug, Default)]
pub struct ChromiumOpts {
    /// The offerer (controlling), else the answerer (controlled).
    pub controlling: bool,
    /// A TURN server over UDP with INTEROP.md's user `bob:secret`.
    pub turn: Option<SocketAddr>,
    /// `iceTransportPolicy: 'relay'`.
    pub relay_only: bool,
    /// `--send TEXT`: sent on the data channel once it opens (against another Chromium).
    pub send: Option<String>,
}

impl ChromiumOpts {
    pub fn controlling() -> ChromiumOpts {
        ChromiumOpts {
            controlling: true,
            ..ChromiumOpts::default()
        }
    }

    pub fn controlled() -> ChromiumOpts {
        ChromiumOpts::default()
    }

    /// Relay-only through the TURN server at `turn`.
    pub fn relay_only(mut self, turn: SocketAddr) -> ChromiumOpts {
        self.turn = Some(turn);
        self.relay_only = true;
        self
    }

    pub fn send(mut self, text: &str) -> ChromiumOpts {
        self.send = Some(text.into());
        self
    }

    /// `python3 -u chromium_peer.py ...`, ready for [`LineProcess::spawn`].
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("python3");
        cmd.arg("-u")
            .arg(support_dir().join("chromium_peer.py"))
            .arg(if self.controlling {
                "--controlling"
            } else {
                "--controlled"
            })
            .args(["--timeout", "60"]);
        if let Some(chromium) = chromium_binary() {
            cmd.arg("--chromium").arg(chromium);
        }
        if let Some(turn) = self.turn {
            cmd.args(["--turn", &turn.to_string(), "--user", "bob"])
                .args(["--password", "secret"]);
        }
        if self.relay_only {
            cmd.arg("--relay-only");
        }
        if let Some(text) = &self.send {
            cmd.args(["--send", text]);
        }
        cmd
    }
}

/// How [`pair_until`] ended.
#[derive(Debug)]
pub struct Crossed {
    /// The condition held before either exited or the deadline.
    pub connected: bool,
    /// Exit statuses; `None` for one still running at the deadline (it was killed).
    pub a: Option<ExitStatus>,
    pub b: Option<ExitStatus>,
}

impl Crossed {
    pub fn success(&self) -> bool {
        self.connected && self.a.is_some_and(|s| s.success()) && self.b.is_some_and(|s| s.success())
    }
}

/// [`pair_until`] both have printed `{"event":"connected"}`. Chromium's data channel
/// never opens against floe ice (no DTLS there), so connectivity is the end, not data.
pub fn pair_until_connected(
    a: &mut LineProcess,
    b: &mut LineProcess,
    timeout: Duration,
) -> Crossed {
    pair_until(a, b, timeout, |a, b| {
        !a.events("connected").is_empty() && !b.events("connected").is_empty()
    })
}

/// Crosses two peers speaking INTEROP.md's JSON lines as `pair_json_lines` does (every
/// JSON object without `"event"` goes to the other's stdin, as it comes), until `done`
/// holds; then closes `b`'s stdin and `a`'s once `b` has exited, so each exits on its
/// own (`floe ice` without `--send` once connected and stdin is closed; the Chromium
/// peer after printing its selected pair).
pub fn pair_until(
    a: &mut LineProcess,
    b: &mut LineProcess,
    timeout: Duration,
    done: impl Fn(&LineProcess, &LineProcess) -> bool,
) -> Crossed {
    fn forward(from: &mut LineProcess, to: &mut LineProcess) -> bool {
        let mut moved = false;
        while let Some(line) = from.try_recv_line() {
            moved = true;
            let signalling = serde_json::from_str::<Value>(line.trim())
                .map(|v| v.is_object() && v.get("event").is_none())
                .unwrap_or(false);
            if signalling {
                // The other may have exited already; its status tells the story.
                let _ = to.send_line(&line);
            }
        }
        moved
    }

    let deadline = Instant::now() + timeout;
    let mut connected = false;
    while Instant::now() < deadline && !a.is_eof() && !b.is_eof() {
        let moved = forward(a, b) | forward(b, a);
        if done(a, b) {
            connected = true;
            break;
        }
        if !moved {
            thread::sleep(Duration::from_millis(5));
        }
    }
    // `b` first (the Chromium peer, by the callers' convention): it reads its stats
    // while `a` is still there to answer checks.
    b.close_stdin();
    let left = deadline.saturating_duration_since(Instant::now());
    let status_b = b.wait(left);
    a.close_stdin();
    let left = deadline.saturating_duration_since(Instant::now());
    let status_a = a.wait(left);
    Crossed {
        connected,
        a: status_a,
        b: status_b,
    }
}
