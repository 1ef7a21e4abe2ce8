//! The TLS certificates of a running server: swapped by a reload, and by a watcher that
//! looks at the files every `tls-watch-interval` seconds, so that a renewal (certbot
//! replacing `fullchain.pem` and `privkey.pem`) reaches new connections without a
//! signal. Open connections keep the certificate they were given.
//!
//! The watcher compares each file's modification time, size and inode (`stat`, through
//! symlinks, so certbot's `live/` links count) with those at the last load. A change is
//! acted on once the files have looked the same at two consecutive looks, so that a
//! certificate written a moment before its key is read together with it. Files that do
//! not load are logged and counted (`floe_tls_reloads_total{result="error"}`), and the
//! running certificates stay; they are tried again when the files change again.

use std::fs::Metadata;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, SystemTime};

use super::{TlsError, TlsFiles, TlsServer};
use crate::metrics::Metrics;

/// How the TLS files looked: per file, cert and key in turn, `None` when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<Option<FileStamp>>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    /// Device and inode: a file renamed over the old one (or a link moved) is new even
    /// with the same size and time.
    inode: (u64, u64),
}

impl Stamp {
    fn of(files: &[TlsFiles]) -> Self {
        Stamp(
            files
                .iter()
                .flat_map(|f| [f.cert(), f.key()])
                .map(|path| std::fs::metadata(path).ok().map(|m| FileStamp::of(&m)))
                .collect(),
        )
    }
}

impl FileStamp {
    fn of(m: &Metadata) -> Self {
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        };
        #[cfg(not(unix))]
        let inode = (0, 0);
        FileStamp {
            modified: m.modified().ok(),
            len: m.len(),
            inode,
        }
    }
}

/// Certificates read from their files, to be installed with [`SharedTls::replace`].
#[derive(Debug)]
pub struct LoadedTls {
    server: Arc<TlsServer>,
    files: Vec<TlsFiles>,
    stamp: Stamp,
}

impl LoadedTls {
    /// Reads every pair (see [`TlsServer::load`]).
    pub fn load(files: &[TlsFiles]) -> Result<Self, TlsError> {
        // Looked at before reading: a change during the read shows at the next look.
        let stamp = Stamp::of(files);
        let server = Arc::new(TlsServer::load(files)?);
        Ok(LoadedTls {
            server,
            files: files.to_vec(),
            stamp,
        })
    }
}

/// The TLS certificates every listener serves; clones share them.
#[derive(Clone)]
pub struct SharedTls(Arc<Inner>);

struct Inner {
    server: RwLock<Arc<TlsServer>>,
    watched: Mutex<Watched>,
}

struct Watched {
    files: Vec<TlsFiles>,
    /// The files as last read (whether they loaded or not).
    read: Stamp,
    /// A change seen at the last look, not acted on yet.
    seen: Option<Stamp>,
}

impl SharedTls {
    /// Shares `loaded`.
    pub fn new(loaded: LoadedTls) -> Self {
        SharedTls(Arc::new(Inner {
            server: RwLock::new(loaded.server),
            watched: Mutex::new(Watched {
                files: loaded.files,
                read: loaded.stamp,
                seen: None,
            }),
        }))
    }

    /// The certificates for the next connection.
    pub fn current(&self) -> Arc<TlsServer> {
        self.0
            .server
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Installs `loaded` for the connections to come, and watches its files from now on.
    pub fn replace(&self, loaded: LoadedTls) {
        let mut watched = self.watched();
        self.install(loaded.server);
        *watched = Watched {
            files: loaded.files,
            read: loaded.stamp,
            seen: None,
        };
    }

    /// One look at the files: `None` when they have not changed, or changed since the
    /// previous look (waiting for them to settle); else the result of reading them again,
    /// installed when it loads.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let mut watched = self.watched();
        let now = Stamp::of(&watched.files);
        if now == watched.read {
            watched.seen = None;
            return None;
        }
        if watched.seen.as_ref() != Some(&now) {
            watched.seen = Some(now);
            return None;
        }
        watched.seen = None;
        match LoadedTls::load(&watched.files) {
            Ok(loaded) => {
                watched.read = loaded.stamp;
                self.install(loaded.server);
                Some(Ok(()))
            }
            Err(e) => {
                watched.read = now;
                Some(Err(e))
            }
        }
    }

    /// Looks at the files every `every` on the current actix runtime and reloads them
    /// when they change, logging and counting each reload in `metrics`; stops once every
    /// clone of this `SharedTls` is gone.
    pub fn watch(&self, every: Duration, metrics: Metrics) {
        let weak: Weak<Inner> = Arc::downgrade(&self.0);
        actix_rt::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                match SharedTls(inner).reload_if_changed() {
                    None => {}
                    Some(Ok(())) => {
                        metrics.tls_reload(true);
                        tracing::info!("TLS files changed: certificates reloaded");
                    }
                    Some(Err(e)) => {
                        metrics.tls_reload(false);
                        tracing::error!(error = %e, "TLS files changed but do not load; keeping the running certificates");
                    }
                }
            }
        });
    }

    fn install(&self, server: Arc<TlsServer>) {
        *self.0.server.write().unwrap_or_else(|e| e.into_inner()) = server;
    }

    fn watched(&self) -> MutexGuard<'_, Watched> {
        self.0.watched.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec![name.into()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        for (path, text) in [
            (&cert, ck.cert.pem()),
            (&key, ck.signing_key.serialize_pem()),
        ] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        (cert, key)
    }

    #[test]
    fn a_change_is_read_once_settled_and_a_bad_one_keeps_the_old_certificates() {
        let dir = std::env::temp_dir().join(format!("floe-tls-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = write_pair(&dir, "one.test");
        let tls = SharedTls::new(LoadedTls::load(&[TlsFiles::new(cert.clone(), key)]).unwrap());
        let first = tls.current();
        assert!(tls.reload_if_changed().is_none(), "nothing changed");

        write_pair(&dir, "two.test");
        assert!(tls.reload_if_changed().is_none(), "a change waits one look");
        assert!(matches!(tls.reload_if_changed(), Some(Ok(()))));
        let second = tls.current();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(tls.reload_if_changed().is_none());

        std::fs::write(&cert, "not a certificate").unwrap();
        assert!(tls.reload_if_changed().is_none());
        assert!(matches!(tls.reload_if_changed(), Some(Err(_))));
        assert!(
            Arc::ptr_eq(&tls.current(), &second),
            "the old certificates stay"
        );
        assert!(
            tls.reload_if_changed().is_none(),
            "not retried until changed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
