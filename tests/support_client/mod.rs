//! A minimal stand-in for the shared interop harness (`tests/support/`, branch `interop`)
//! with the same names — `require_peers`, `Coturn::start(CoturnOpts)`, `Coturn::addr`,
//! `Coturn::log`, `CoturnOpts::{auth_secret, stale_nonce}` — so a test switches to the
//! shared one by changing its `#[path]` line. Only what the TURN client tests need.
//!
//! Rules (INTEROP.md): everything on 127.0.0.1; children are killed on drop; waits are
//! bounded generously and only catch hangs.
#![allow(dead_code)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Bound for a peer to come up.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The INTEROP.md rule: `true` when every program is on `PATH`. When one is missing:
/// with `FLOE_INTEROP=skip` prints `skipped: <peer> not installed` and returns `false`;
/// otherwise panics saying how to install it.
pub fn require_peers(names: &[&str]) -> bool {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| find_in_path(n).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("FLOE_INTEROP").as_deref() == Ok("skip") {
        for name in &missing {
            // coturn's programs are all in Debian's `coturn` package.
            let peer = if name.starts_with("turn") {
                "coturn"
            } else {
                name
            };
            println!("skipped: {peer} not installed");
        }
        return false;
    }
    panic!(
        "interop peer not installed: {}\n  install coturn: `apt-get install -y coturn`\n\
         `.ci/run` (as root on Debian) installs it; or set FLOE_INTEROP=skip to skip the interop tests",
        missing.join(", ")
    );
}

/// The full path of an executable on `PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|c| {
            c.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory named after `prefix`.
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "floe-{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP right now.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding UDP on 127.0.0.1");
        let port = udp.local_addr().expect("local address").port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// How a [`Coturn`] authenticates TURN clients.
#[derive(Clone, Debug)]
pub enum CoturnAuth {
    /// `--lt-cred-mech --user=USER:PASSWORD`.
    LongTerm { user: String, password: String },
    /// TURN REST API: `--use-auth-secret --static-auth-secret=SECRET`.
    AuthSecret { secret: String },
}

/// TLS for a [`Coturn`]: PEM files and the port to listen on.
#[derive(Clone, Debug)]
pub struct CoturnTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What a [`Coturn`] is started with; the default is INTEROP.md's command line.
#[derive(Clone, Debug)]
pub struct CoturnOpts {
    pub auth: CoturnAuth,
    pub realm: String,
    /// `--stale-nonce=N`.
    pub stale_nonce: Option<u32>,
    pub allow_loopback_peers: bool,
    /// TLS on a second port (`--tls-listening-port`) instead of `--no-tls`.
    pub tls: Option<CoturnTls>,
    pub extra_args: Vec<String>,
}

impl Default for CoturnOpts {
    fn default() -> CoturnOpts {
        CoturnOpts {
            auth: CoturnAuth::LongTerm {
                user: "bob".into(),
                password: "secret".into(),
            },
            realm: "example.org".into(),
            stale_nonce: None,
            allow_loopback_peers: true,
            tls: None,
            extra_args: Vec::new(),
        }
    }
}

impl CoturnOpts {
    /// TURN REST API credentials with `secret` instead of a static user.
    pub fn auth_secret(secret: &str) -> CoturnOpts {
        CoturnOpts {
            auth: CoturnAuth::AuthSecret {
                secret: secret.into(),
            },
            ..CoturnOpts::default()
        }
    }

    /// Nonces that go stale after `seconds`.
    pub fn stale_nonce(mut self, seconds: u32) -> CoturnOpts {
        self.stale_nonce = Some(seconds);
        self
    }
}

/// A running `turnserver` on 127.0.0.1, killed on drop.
pub struct Coturn {
    child: Child,
    port: u16,
    tls_port: Option<u16>,
    log: PathBuf,
    _dir: TempDir,
}

impl Coturn {
    /// Starts `turnserver` and waits until it answers a STUN Binding over UDP and accepts
    /// TCP connections (and TLS ones when asked).
    pub fn start(opts: CoturnOpts) -> Coturn {
        let port = free_port();
        let tls_port = opts.tls.as_ref().map(|_| free_port());
        let dir = TempDir::new("coturn");
        let log = dir.path().join("turnserver.log");
        let log_file = File::create(&log).expect("creating coturn's log file");
        let mut args: Vec<String> = vec![
            "-n".into(),
            "--listening-ip=127.0.0.1".into(),
            "--relay-ip=127.0.0.1".into(),
            format!("--listening-port={port}"),
            format!("--realm={}", opts.realm),
            "--no-cli".into(),
            "--no-dtls".into(),
            "--log-file=stdout".into(),
            "--simple-log".into(),
            format!("--pidfile={}", dir.path().join("turnserver.pid").display()),
            format!("--userdb={}", dir.path().join("turndb.sqlite").display()),
        ];
        match &opts.auth {
            CoturnAuth::LongTerm { user, password } => {
                args.push("--lt-cred-mech".into());
                args.push(format!("--user={user}:{password}"));
            }
            CoturnAuth::AuthSecret { secret } => {
                args.push("--use-auth-secret".into());
                args.push(format!("--static-auth-secret={secret}"));
            }
        }
        if let Some(s) = opts.stale_nonce {
            args.push(format!("--stale-nonce={s}"));
        }
        if opts.allow_loopback_peers {
            args.push("--allow-loopback-peers".into());
        }
        match (&opts.tls, tls_port) {
            (Some(tls), Some(p)) => {
                args.push(format!("--tls-listening-port={p}"));
                args.push(format!("--cert={}", tls.cert.display()));
                args.push(format!("--pkey={}", tls.key.display()));
            }
            _ => args.push("--no-tls".into()),
        }
        args.extend(opts.extra_args.iter().cloned());
        let child = Command::new("turnserver")
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("cloning the log file"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start turnserver: {e} (install coturn: `apt-get install -y coturn`)")
            });
        let mut coturn = Coturn {
            child,
            port,
            tls_port,
            log,
            _dir: dir,
        };
        coturn.wait_ready(&args);
        coturn
    }

    fn wait_ready(&mut self, args: &[String]) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut ports = vec![self.port];
        ports.extend(self.tls_port);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "turnserver {} exited ({status})\n--- its log\n{}",
                    args.join(" "),
                    self.log()
                );
            }
            let tcp_up = ports.iter().all(|p| {
                TcpStream::connect_timeout(
                    &SocketAddr::from((Ipv4Addr::LOCALHOST, *p)),
                    Duration::from_millis(200),
                )
                .is_ok()
            });
            if tcp_up && stun_answers(self.addr()) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "turnserver {} did not come up\n--- its log\n{}",
                    args.join(" "),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its UDP and TCP address: 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Its TLS address, when started with TLS.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_port
            .map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a STUN Binding to `server` over UDP gets any answer within 200 ms.
fn stun_answers(server: SocketAddr) -> bool {
    let Ok(socket) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    request.extend_from_slice(&[7; 12]);
    if socket.send_to(&request, server).is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    matches!(socket.recv_from(&mut buf), Ok((n, _)) if n >= 20 && buf[..2] == [0x01, 0x01])
}
