//! libnice as a real peer, through `tests/support/libnice_agent.py`: one libnice agent
//! (GObject introspection, Debian packages `gir1.2-nice-0.1 python3-gi`) speaking
//! INTEROP.md's JSON lines on stdin/stdout, run by the system Python.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::{run, support_dir};

/// The Python that has libnice's introspection: `/usr/bin/python3` (the Debian
/// packages install it there), or `$FLOE_LIBNICE_PYTHON` when set.
pub fn libnice_python() -> PathBuf {
    match std::env::var_os("FLOE_LIBNICE_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => PathBuf::from("/usr/bin/python3"),
    }
}

pub(super) fn libnice_importable() -> bool {
    static IMPORTABLE: OnceLock<bool> = OnceLock::new();
    *IMPORTABLE.get_or_init(|| {
        let python = libnice_python();
        if !python.exists() {
            return false;
        }
        let mut cmd = Command::new(python);
        cmd.args([
            "-c",
            "import gi; gi.require_version('Nice', '0.1'); from gi.repository import Nice",
        ]);
        run(cmd, Duration::from_secs(60)).success()
    })
}

/// `libnice_agent.py` in `role` with more arguments (`--send TEXT`, `--restart-after S`
/// ...), ready for [`super::LineProcess::spawn`].
pub fn libnice_agent(controlling: bool, args: &[&str]) -> Command {
    let mut cmd = Command::new(libnice_python());
    cmd.env("PYTHONFAULTHANDLER", "1");
    cmd.arg("-u")
        .arg(support_dir().join("libnice_agent.py"))
        .arg(if controlling {
            "--controlling"
        } else {
            "--controlled"
        })
        .args(args);
    cmd
}
