//! Shared support for the integration tests in `tests/`: real peers (coturn, aioice),
//! ports that parallel tests cannot collide on, and child processes bounded in time.
//!
//! Include it from a test file declared in `actors/Cargo.toml`:
//!
//! ```ignore
//! #[path = "support/mod.rs"]
//! mod support;
//!
//! #[test]
//! fn something_against_coturn() {
//!     if !support::require_peers(&["turnserver", "turnutils_uclient"]) {
//!         return; // FLOE_INTEROP=skip and a peer is missing
//!     }
//!     let coturn = support::Coturn::start(support::CoturnOpts::default());
//!     // ... coturn.addr() ...
//! }
//! ```
//!
//! The rules every helper keeps (see INTEROP.md):
//! - traffic goes to 127.0.0.1 only;
//! - every child process is killed when its handle drops, and again (SIGKILL through
//!   `PR_SET_PDEATHSIG`) if the test process dies without unwinding;
//! - every wait is bounded; the bounds are generous (tens of seconds) and only catch hangs,
//!   so a slow machine never fails a test.
#![allow(dead_code, unused_imports)]

mod aioice;
mod chromium;
mod coturn;
mod floe_serve;
mod libnice;
pub mod netns;
mod ports;
mod process;
mod raw_allocate;
mod stun;
mod turn_client;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use aioice::{aioice_python, python_command, run_python, AgentOpts, PythonRun};
pub use chromium::{chromium_binary, pair_until, pair_until_connected, ChromiumOpts, Crossed};
pub use coturn::{
    rest_api_credentials, turnutils_stunclient, turnutils_uclient, Coturn, CoturnAuth, CoturnOpts,
    CoturnTls, StunclientReport, TurnutilsPeer, Uclient, UclientReport,
};
pub use floe_serve::{FloeServe, ServeOpts, REALM};
pub use libnice::{libnice_agent, libnice_python};
pub use ports::{free_port, free_port_pair, PortBlock};
pub use process::{
    json_lines, pair_json_lines, run, spawn, ChildGuard, Finished, LineProcess, PairOutcome,
};
pub use raw_allocate::{raw_allocate, Signed};
pub use stun::{stun_binding, wait_stun_ready};
pub use turn_client::{echo_peer, Client};

/// Bound for a peer to come up (a server answering, a script printing its description).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for one run of a peer tool or script; only there to catch hangs.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The repository root (the parent of `actors/`, whose manifest builds these tests).
pub fn repo_root() -> PathBuf {
    let actors = Path::new(env!("CARGO_MANIFEST_DIR"));
    actors
        .parent()
        .expect("actors/ has a parent directory")
        .to_path_buf()
}

/// `tests/support/` in the repository: where the peer scripts live.
pub fn support_dir() -> PathBuf {
    repo_root().join("tests").join("support")
}

/// The peers a test can ask for: coturn's four programs, and `aioice` (importable from
/// [`aioice_python`]).
pub const PEERS: &[&str] = &[
    "turnserver",
    "turnutils_uclient",
    "turnutils_peer",
    "turnutils_stunclient",
    "aioice",
    "libnice",
    "chromium",
];

/// Whether a peer is installed: a coturn program on `PATH`, or `aioice` importable from
/// the repository's `.venv` (see [`aioice_python`]).
pub fn peer_available(name: &str) -> bool {
    match name {
        "aioice" => aioice::aioice_importable(),
        "libnice" => libnice::libnice_importable(),
        "chromium" => chromium::chromium_binary().is_some(),
        program => find_in_path(program).is_some(),
    }
}

/// How to install a peer, for the failure message.
pub fn install_hint(name: &str) -> &'static str {
    match name {
        "aioice" => {
            "create the venv at the repository root: \
             `python3 -m venv .venv && .venv/bin/pip install aioice==0.13.0`"
        }
        "libnice" => {
            "install libnice's introspection for the system Python: \
             `apt-get install -y gir1.2-nice-0.1 python3-gi`"
        }
        "chromium" => {
            "install Debian's Chromium (or point $FLOE_CHROMIUM at a Chromium binary): \
             `apt-get install -y chromium`"
        }
        name if name == "turnserver" || name.starts_with("turnutils_") => {
            "install coturn: `apt-get install -y coturn`"
        }
        _ => "not a peer this harness knows how to install",
    }
}

/// The INTEROP.md rule for real peers. Returns `true` when every peer is installed.
/// When one is missing: with `FLOE_INTEROP=skip`, prints `skipped: <peer> not installed`
/// and returns `false` (the test then returns early and passes); otherwise panics with a
/// message saying how to install it.
pub fn require_peers(names: &[&str]) -> bool {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !peer_available(name))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("FLOE_INTEROP").as_deref() == Ok("skip") {
        for name in &missing {
            println!("skipped: {name} not installed");
        }
        return false;
    }
    let how: Vec<String> = missing
        .iter()
        .map(|name| format!("  {name}: {}", install_hint(name)))
        .collect();
    panic!(
        "interop peer not installed: {}\n{}\n`.ci/run` (as root on Debian) installs all of them; \
         or set FLOE_INTEROP=skip to skip the interop tests",
        missing.join(", "),
        how.join("\n")
    );
}

/// The full path of an executable on `PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory named after `prefix`, unique to this process and call.
    pub fn new(prefix: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "floe-{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
