//! SIGINT and SIGTERM for the actix-rt (tokio) runtime, and SIGHUP (reload).
//!
//! Create [`ShutdownSignals`] and [`HangupSignal`] early: the handlers are installed when
//! they are created, and from then on the signals no longer kill the process but wake
//! their `recv`.

use std::io;

/// The signal that asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (what `kill`, systemd and container runtimes send).
    Terminate,
}

impl std::fmt::Display for ShutdownSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShutdownSignal::Interrupt => "SIGINT",
            ShutdownSignal::Terminate => "SIGTERM",
        })
    }
}

/// Why the signal handlers could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// Signal handling runs on the tokio runtime of the calling thread; there was none.
    #[error("no tokio runtime on this thread: install signal handlers inside an actix-rt System")]
    NoRuntime,
    /// The OS refused the SIGHUP handler.
    #[error("cannot install the SIGHUP handler: {0}")]
    InstallHangup(io::Error),
    /// The OS refused the handler.
    #[error("cannot install the {signal} handler: {source}")]
    Install {
        /// The signal.
        signal: ShutdownSignal,
        /// The OS error.
        source: io::Error,
    },
}

/// Installed SIGINT and SIGTERM handlers.
#[derive(Debug)]
pub struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers on the current runtime.
    pub fn new() -> Result<Self, ShutdownError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ShutdownError::NoRuntime);
        }
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let install = |kind, which| {
                signal(kind).map_err(|source| ShutdownError::Install {
                    signal: which,
                    source,
                })
            };
            Ok(ShutdownSignals {
                interrupt: install(SignalKind::interrupt(), ShutdownSignal::Interrupt)?,
                terminate: install(SignalKind::terminate(), ShutdownSignal::Terminate)?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    /// Waits for the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) -> ShutdownSignal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => ShutdownSignal::Interrupt,
                _ = self.terminate.recv() => ShutdownSignal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => ShutdownSignal::Interrupt,
                Err(_) => std::future::pending().await,
            }
        }
    }
}

/// An installed SIGHUP handler: the signal asks `floe serve` to reload its configuration.
#[derive(Debug)]
pub struct HangupSignal {
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl HangupSignal {
    /// Installs the handler on the current runtime.
    pub fn new() -> Result<Self, ShutdownError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ShutdownError::NoRuntime);
        }
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let hangup = signal(SignalKind::hangup()).map_err(ShutdownError::InstallHangup)?;
            Ok(HangupSignal { hangup })
        }
        #[cfg(not(unix))]
        Ok(HangupSignal {})
    }

    /// Waits for the next SIGHUP (for ever where there is none).
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if self.hangup.recv().await.is_some() {
            return;
        }
        std::future::pending::<()>().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// kill(2) with our own pid and a signal whose handler tokio installed.
    #[cfg(unix)]
    fn raise(signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::this(), signal).unwrap();
    }

    #[cfg(unix)]
    #[actix_rt::test]
    async fn sigterm_and_sigint_are_reported() {
        let mut signals = ShutdownSignals::new().unwrap();
        raise(nix::sys::signal::Signal::SIGTERM);
        let got = tokio::time::timeout(Duration::from_secs(5), signals.recv())
            .await
            .unwrap();
        assert_eq!(got, ShutdownSignal::Terminate);
        raise(nix::sys::signal::Signal::SIGINT);
        let got = tokio::time::timeout(Duration::from_secs(5), signals.recv())
            .await
            .unwrap();
        assert_eq!(got, ShutdownSignal::Interrupt);
        assert_eq!(got.to_string(), "SIGINT");
    }

    #[cfg(unix)]
    #[actix_rt::test]
    async fn sighup_is_reported() {
        let mut hangup = HangupSignal::new().unwrap();
        raise(nix::sys::signal::Signal::SIGHUP);
        tokio::time::timeout(Duration::from_secs(5), hangup.recv())
            .await
            .unwrap();
    }

    #[test]
    fn outside_a_runtime_is_an_error() {
        assert!(matches!(
            ShutdownSignals::new(),
            Err(ShutdownError::NoRuntime)
        ));
    }
}
