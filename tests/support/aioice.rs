//! aioice 0.13 as a real peer, through the scripts in `tests/support/`:
//! - `aioice_agent.py`: one ICE agent speaking INTEROP.md's JSON lines on stdin/stdout;
//! - `aioice_relay.py`: two agents in one process, one relay-only through a TURN server,
//!   echoing data through the relay.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::{json_lines, repo_root, run, support_dir, Finished};

/// The Python that has aioice: `.venv/bin/python` at the repository root (what `.ci/run`
/// creates), or `$FLOE_AIOICE_PYTHON` when set.
pub fn aioice_python() -> PathBuf {
    match std::env::var_os("FLOE_AIOICE_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => repo_root().join(".venv").join("bin").join("python"),
    }
}

pub(super) fn aioice_importable() -> bool {
    static IMPORTABLE: OnceLock<bool> = OnceLock::new();
    *IMPORTABLE.get_or_init(|| {
        let python = aioice_python();
        if !python.exists() {
            return false;
        }
        let mut cmd = Command::new(python);
        cmd.args(["-c", "import aioice"]);
        run(cmd, Duration::from_secs(60)).success()
    })
}

/// `aioice_python() -u SCRIPT ARGS...`, with SCRIPT relative to `tests/support/`.
pub fn python_command(script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(aioice_python());
    cmd.arg("-u").arg(support_dir().join(script)).args(args);
    cmd
}

/// A finished Python script and its stdout's JSON lines.
#[derive(Debug)]
pub struct PythonRun {
    pub finished: Finished,
    pub json: Vec<Value>,
}

impl PythonRun {
    /// The objects whose `"event"` is `name`.
    pub fn events(&self, name: &str) -> Vec<&Value> {
        self.json
            .iter()
            .filter(|v| v.get("event").and_then(Value::as_str) == Some(name))
            .collect()
    }
}

/// Runs a script from `tests/support/` with aioice's Python, stdin closed, killed after
/// `timeout`; parses its stdout as JSON lines.
pub fn run_python(script: &str, args: &[&str], timeout: Duration) -> PythonRun {
    let finished = run(python_command(script, args), timeout);
    let json = json_lines(&finished.stdout);
    PythonRun { finished, json }
}

/// The options of `aioice_agent.py`, as an argument list.
#[derive(Clone, Debug, Default)]
pub struct AgentOpts {
    pub controlling: bool,
    pub stun: Option<SocketAddr>,
    /// TURN server, user, password.
    pub turn: Option<(SocketAddr, String, String)>,
    pub turn_tcp: bool,
    pub relay_only: bool,
    pub send: Option<String>,
    /// `--components N` (1 when `None`).
    pub components: Option<u16>,
    /// Seconds before the agent gives up (its default: 30).
    pub timeout: Option<u32>,
}

impl AgentOpts {
    /// The controlling agent.
    pub fn controlling() -> AgentOpts {
        AgentOpts {
            controlling: true,
            ..AgentOpts::default()
        }
    }

    /// The controlled agent.
    pub fn controlled() -> AgentOpts {
        AgentOpts::default()
    }

    /// `--turn HOST:PORT --user U --password P`.
    pub fn turn(mut self, server: SocketAddr, user: &str, password: &str) -> AgentOpts {
        self.turn = Some((server, user.into(), password.into()));
        self
    }

    /// `--relay-only`.
    pub fn relay_only(mut self) -> AgentOpts {
        self.relay_only = true;
        self
    }

    /// `--turn-tcp`.
    pub fn turn_tcp(mut self) -> AgentOpts {
        self.turn_tcp = true;
        self
    }

    /// `--send TEXT`.
    pub fn send(mut self, text: &str) -> AgentOpts {
        self.send = Some(text.into());
        self
    }

    /// The arguments of `aioice_agent.py`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![if self.controlling {
            "--controlling".to_string()
        } else {
            "--controlled".to_string()
        }];
        if let Some(stun) = self.stun {
            args.extend(["--stun".into(), stun.to_string()]);
        }
        if let Some((server, user, password)) = &self.turn {
            args.extend([
                "--turn".into(),
                server.to_string(),
                "--user".into(),
                user.clone(),
                "--password".into(),
                password.clone(),
            ]);
        }
        if self.turn_tcp {
            args.push("--turn-tcp".into());
        }
        if self.relay_only {
            args.push("--relay-only".into());
        }
        if let Some(text) = &self.send {
            args.extend(["--send".into(), text.clone()]);
        }
        if let Some(n) = self.components {
            args.extend(["--components".into(), n.to_string()]);
        }
        if let Some(seconds) = self.timeout {
            args.extend(["--timeout".into(), seconds.to_string()]);
        }
        args
    }

    /// `aioice_agent.py` with these options, ready for [`super::LineProcess::spawn`].
    pub fn command(&self) -> Command {
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        python_command("aioice_agent.py", &args)
    }
}
