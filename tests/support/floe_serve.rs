//! `floe serve` as a child process on 127.0.0.1 for the integration tests: its own
//! [`PortBlock`] (listen port, metrics port, relay range), its log in a temporary
//! directory, and helpers to read its metrics, RSS and open file descriptors.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{spawn, wait_stun_ready, ChildGuard, PortBlock, TempDir, STARTUP_TIMEOUT};

/// The realm every `floe serve` of the tests uses (INTEROP.md's).
pub const REALM: &str = "example.org";
/// Bounds one exchange with the server (a scrape, a wait for a metric); only catches hangs.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(20);

/// What a [`FloeServe`] is started with: INTEROP.md's user `bob:secret` in realm
/// `example.org`, loopback peers allowed.
#[derive(Clone, Debug)]
pub struct ServeOpts {
    pub users: Vec<String>,
    pub auth_secret: Option<String>,
    pub allow_loopback_peers: bool,
    pub metrics: bool,
    /// `--admin 127.0.0.1:PORT`, with `--admin-token` when `admin_token` is set.
    pub admin: bool,
    pub admin_token: Option<String>,
    pub extra: Vec<String>,
    /// Environment variables set for floe (on top of the test's).
    pub env: Vec<(String, String)>,
}

impl Default for ServeOpts {
    fn default() -> ServeOpts {
        ServeOpts {
            users: vec!["bob:secret".into()],
            auth_secret: None,
            allow_loopback_peers: true,
            metrics: false,
            admin: false,
            admin_token: None,
            extra: Vec::new(),
            env: Vec::new(),
        }
    }
}

impl ServeOpts {
    /// TURN REST API credentials (`--auth-secret`) instead of a static user.
    pub fn auth_secret(secret: &str) -> ServeOpts {
        ServeOpts {
            users: Vec::new(),
            auth_secret: Some(secret.into()),
            ..ServeOpts::default()
        }
    }

    /// The server's defaults for peers: no `--allow-loopback-peers`.
    pub fn safe_peers(mut self) -> ServeOpts {
        self.allow_loopback_peers = false;
        self
    }

    /// `--metrics 127.0.0.1:PORT`.
    pub fn metrics(mut self) -> ServeOpts {
        self.metrics = true;
        self
    }

    /// `--admin 127.0.0.1:PORT` (the admin HTTP API).
    pub fn admin(mut self) -> ServeOpts {
        self.admin = true;
        self
    }

    /// `--admin 127.0.0.1:PORT --admin-token TOKEN`.
    pub fn admin_token(mut self, token: &str) -> ServeOpts {
        self.admin = true;
        self.admin_token = Some(token.into());
        self
    }

    pub fn arg(mut self, arg: &str) -> ServeOpts {
        self.extra.push(arg.into());
        self
    }

    /// Sets environment variable `name` for floe.
    pub fn env(mut self, name: &str, value: &str) -> ServeOpts {
        self.env.push((name.into(), value.into()));
        self
    }
}

/// A running `floe serve` on 127.0.0.1 (UDP and TCP on one port, relays on 127.0.0.1 from
/// its own port range), killed on drop.
pub struct FloeServe {
    pub child: ChildGuard,
    port: u16,
    pub relay_ports: RangeInclusive<u16>,
    metrics: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    log: PathBuf,
    // Dropped after the child.
    _dir: TempDir,
    _ports: PortBlock,
}

impl FloeServe {
    /// Starts the binary this package builds and waits until it answers a STUN Binding
    /// over UDP and accepts TCP connections. When one of its ports turns out to be taken
    /// (by a process that does not keep to [`PortBlock`]s), tries another block.
    pub fn start(opts: ServeOpts) -> FloeServe {
        const ATTEMPTS: usize = 5;
        // Held until the end, so that each attempt gets a block of its own.
        let mut taken = Vec::new();
        for attempt in 1..=ATTEMPTS {
            match FloeServe::try_start(&opts, PortBlock::reserve()) {
                Ok(floe) => return floe,
                Err((ports, why)) if attempt < ATTEMPTS => {
                    println!("floe serve: a port was taken, trying another block\n{why}");
                    taken.push(ports);
                }
                Err((_, why)) => panic!("{why}"),
            }
        }
        unreachable!("the last attempt panics")
    }

    /// One attempt of [`start`](Self::start) on `ports`; gives them back, with floe's
    /// log, when floe could not bind one of them. Panics on any other failure.
    pub fn try_start(opts: &ServeOpts, ports: PortBlock) -> Result<FloeServe, (PortBlock, String)> {
        let port = ports.port(1);
        let metrics = opts
            .metrics
            .then(|| SocketAddr::from((Ipv4Addr::LOCALHOST, ports.port(2))));
        let admin = opts
            .admin
            .then(|| SocketAddr::from((Ipv4Addr::LOCALHOST, ports.port(3))));
        let relay_ports = ports.range(10, PortBlock::SIZE - 1);
        let dir = TempDir::new("floe-serve");
        let log = dir.path().join("floe.log");
        let log_file =
            File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));

        let mut args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--realm".into(),
            REALM.into(),
            "--min-port".into(),
            relay_ports.start().to_string(),
            "--max-port".into(),
            relay_ports.end().to_string(),
        ];
        for user in &opts.users {
            args.extend(["--user".into(), user.clone()]);
        }
        if let Some(secret) = &opts.auth_secret {
            args.extend(["--auth-secret".into(), secret.clone()]);
        }
        if opts.allow_loopback_peers {
            args.push("--allow-loopback-peers".into());
        }
        if let Some(addr) = metrics {
            args.extend(["--metrics".into(), addr.to_string()]);
        }
        if let Some(addr) = admin {
            args.extend(["--admin".into(), addr.to_string()]);
        }
        if let Some(token) = &opts.admin_token {
            args.extend(["--admin-token".into(), token.clone()]);
        }
        args.extend(opts.extra.iter().cloned());

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_floe"));
        cmd.args(&args)
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("cloning the log file"))
            .stderr(log_file);
        let child = spawn(cmd).unwrap_or_else(|e| panic!("cannot start floe serve: {e}"));
        let mut child = ChildGuard::new(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        if let Err(e) = wait_stun_ready(addr, STARTUP_TIMEOUT, Some(&mut child.child)) {
            let why = format!(
                "floe {} did not come up: {e}\n--- its log\n{}",
                args.join(" "),
                read_log()
            );
            if child.try_wait().is_some() && why.contains("Address already in use") {
                return Err((ports, why));
            }
            panic!("{why}");
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let probe = loop {
            if let Ok(probe) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                break probe;
            }
            assert!(
                Instant::now() < deadline,
                "floe answers STUN on UDP {addr} but not TCP\n--- its log\n{}",
                read_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // Until the server has accepted and closed the probe, it holds one of 127.0.0.1's
        // TCP slots, which tests of the per-IP cap count on being free.
        closed_after_eof(probe);
        for http in metrics.iter().chain(&admin) {
            while TcpStream::connect_timeout(http, Duration::from_secs(1)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "floe serves no HTTP on {http}\n--- its log\n{}",
                    read_log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(FloeServe {
            child,
            port,
            relay_ports,
            metrics,
            admin,
            log,
            _dir: dir,
            _ports: ports,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Where its admin API listens (started with [`ServeOpts::admin`]).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics, with its log, if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait() {
            panic!("floe serve exited ({status})\n--- its log\n{}", self.log());
        }
    }

    /// Its Prometheus metrics (started with [`ServeOpts::metrics`]): `name{labels}` → value.
    pub fn metrics(&self) -> HashMap<String, u64> {
        let addr = self.metrics.expect("started with --metrics");
        let mut stream = TcpStream::connect_timeout(&addr, EXCHANGE_LIMIT)
            .unwrap_or_else(|e| panic!("connecting to the metrics endpoint {addr}: {e}"));
        stream.set_read_timeout(Some(EXCHANGE_LIMIT)).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: floe\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .unwrap_or_else(|e| panic!("reading the metrics: {e}"));
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        body.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    /// One metric, 0 when absent.
    pub fn metric(&self, name: &str) -> u64 {
        self.metrics().get(name).copied().unwrap_or(0)
    }

    /// Waits until metric `name` satisfies `want`, and returns it. floe updates its
    /// counters just after it answers, so a scrape can trail a response by a moment.
    /// Panics after [`EXCHANGE_LIMIT`].
    pub fn wait_metric(&self, name: &str, want: impl Fn(u64) -> bool) -> u64 {
        let deadline = Instant::now() + EXCHANGE_LIMIT;
        loop {
            let now = self.metric(name);
            if want(now) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is still {now} after {EXCHANGE_LIMIT:?}\n{:?}",
                self.metrics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One request to its admin API (started with [`ServeOpts::admin`]), with
    /// `Authorization: Bearer TOKEN` when `token` is given: (status code, body).
    pub fn admin(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let addr = self.admin.expect("started with --admin");
        let mut stream = TcpStream::connect_timeout(&addr, EXCHANGE_LIMIT)
            .unwrap_or_else(|e| panic!("connecting to the admin API {addr}: {e}"));
        stream.set_read_timeout(Some(EXCHANGE_LIMIT)).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: floe\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .unwrap_or_else(|e| panic!("reading the answer to {method} {path}: {e}"));
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        let code = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|h| h.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        (code, body.to_owned())
    }

    /// Its resident set size in KiB (`VmRSS` in /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("reading /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in\n{status}"))
    }

    /// Its open file descriptors (entries of /proc/PID/fd).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .expect("reading /proc/PID/fd")
    }
}

/// Half-closes `stream` and reads until the server closes its side too (or
/// [`EXCHANGE_LIMIT`] passes).
fn closed_after_eof(stream: TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(EXCHANGE_LIMIT));
    let mut buf = [0u8; 512];
    while matches!((&stream).read(&mut buf), Ok(n) if n > 0) {}
}
