//! coturn 4.6 as a real peer: `turnserver`, `turnutils_peer`, `turnutils_uclient` and
//! `turnutils_stunclient`, started as INTEROP.md says, on 127.0.0.1 only.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{
    free_port_pair, run, spawn, wait_stun_ready, ChildGuard, Finished, PortBlock, TempDir,
    RUN_TIMEOUT, STARTUP_TIMEOUT,
};

/// How a [`Coturn`] authenticates TURN clients.
#[derive(Clone, Debug)]
pub enum CoturnAuth {
    /// `--lt-cred-mech --user=USER:PASSWORD`.
    LongTerm { user: String, password: String },
    /// TURN REST API: `--use-auth-secret --static-auth-secret=SECRET`
    /// (see [`rest_api_credentials`]).
    AuthSecret { secret: String },
}

/// TLS for a [`Coturn`]: its certificate chain and private key, as PEM files (coturn
/// reads them when it starts).
#[derive(Clone, Debug)]
pub struct CoturnTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CoturnTls {
    /// A new self-signed certificate for `localhost` and `127.0.0.1`, written to
    /// `cert.pem` and `key.pem` in `dir`. Returns the files and the certificate's PEM, the
    /// root a client has to trust.
    pub fn self_signed(dir: &Path) -> (CoturnTls, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("a self-signed certificate");
        let cert_pem = cert.cert.pem();
        let tls = CoturnTls {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        for (path, pem) in [
            (&tls.cert, &cert_pem),
            (&tls.key, &cert.signing_key.serialize_pem()),
        ] {
            std::fs::write(path, pem).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
        (tls, cert_pem)
    }
}

/// What a [`Coturn`] is started with. The default is INTEROP.md's: long-term credentials
/// `bob:secret`, realm `example.org`, loopback peers allowed, no TLS.
#[derive(Clone, Debug)]
pub struct CoturnOpts {
    pub auth: CoturnAuth,
    pub realm: String,
    /// `--stale-nonce=N`: nonces expire after N seconds (coturn's default without it:
    /// they never do).
    pub stale_nonce: Option<u32>,
    /// `--allow-loopback-peers`, needed to relay to peers on 127.0.0.1.
    pub allow_loopback_peers: bool,
    /// TLS on a port of its own (`--tls-listening-port`, see [`Coturn::tls_addr`]) instead
    /// of `--no-tls`.
    pub tls: Option<CoturnTls>,
    /// More command-line arguments, appended as they are.
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

    /// TLS too, on a port of its own (see [`Coturn::tls_addr`]).
    pub fn tls(mut self, tls: CoturnTls) -> CoturnOpts {
        self.tls = Some(tls);
        self
    }
}

/// A running `turnserver` on 127.0.0.1 (UDP and TCP on one port, TLS on another when
/// asked, relaying on 127.0.0.1 from its own port range), killed on drop.
pub struct Coturn {
    child: ChildGuard,
    port: u16,
    tls_port: Option<u16>,
    relay_ports: RangeInclusive<u16>,
    log: PathBuf,
    opts: CoturnOpts,
    // Dropped after the child: its files and ports are free once it is gone.
    _dir: TempDir,
    _ports: PortBlock,
}

impl Coturn {
    /// Starts `turnserver` and waits until it answers a STUN Binding over UDP and accepts
    /// TCP connections (on its TLS port too, with [`CoturnOpts::tls`]). Panics, with
    /// coturn's log, if it does not come up within [`STARTUP_TIMEOUT`].
    pub fn start(opts: CoturnOpts) -> Coturn {
        // Port 1 of the block listens, port 2 is for TLS (used or not), the rest relay.
        let ports = PortBlock::reserve();
        let port = ports.port(1);
        let tls_port = opts.tls.as_ref().map(|_| ports.port(2));
        let relay_ports = ports.range(3, PortBlock::SIZE - 1);
        let dir = TempDir::new("coturn");
        let log = dir.path().join("turnserver.log");
        let log_file =
            File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));

        let mut args: Vec<String> = vec![
            "-n".into(),
            "--listening-ip=127.0.0.1".into(),
            "--relay-ip=127.0.0.1".into(),
            format!("--listening-port={port}"),
            format!("--min-port={}", relay_ports.start()),
            format!("--max-port={}", relay_ports.end()),
            format!("--realm={}", opts.realm),
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
        if let Some(seconds) = opts.stale_nonce {
            args.push(format!("--stale-nonce={seconds}"));
        }
        if opts.allow_loopback_peers {
            args.push("--allow-loopback-peers".into());
        }
        match (&opts.tls, tls_port) {
            (Some(tls), Some(tls_port)) => {
                args.push(format!("--tls-listening-port={tls_port}"));
                args.push(format!("--cert={}", tls.cert.display()));
                args.push(format!("--pkey={}", tls.key.display()));
            }
            _ => args.push("--no-tls".into()),
        }
        args.extend(
            ["--no-cli", "--no-dtls", "--log-file=stdout", "--simple-log"].map(String::from),
        );
        // Its pid file and SQLite user db default to /var/run and /var/lib/turn: keep them
        // per instance.
        args.push(format!(
            "--pidfile={}",
            dir.path().join("turnserver.pid").display()
        ));
        args.push(format!(
            "--userdb={}",
            dir.path().join("turndb.sqlite").display()
        ));
        args.extend(opts.extra_args.iter().cloned());

        let mut cmd = Command::new("turnserver");
        cmd.args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("cloning the log file"))
            .stderr(log_file);
        let child = spawn(cmd).unwrap_or_else(|e| {
            panic!("cannot start turnserver: {e}\n(install coturn: `apt-get install -y coturn`)")
        });
        let mut child = ChildGuard::new(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        if let Err(e) = wait_stun_ready(addr, STARTUP_TIMEOUT, Some(&mut child.child)) {
            panic!(
                "turnserver {} did not come up: {e}\n--- its log\n{}",
                args.join(" "),
                read_log()
            );
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let tls_addr = tls_port.map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)));
        for tcp_addr in std::iter::once(addr).chain(tls_addr) {
            while TcpStream::connect_timeout(&tcp_addr, Duration::from_secs(1)).is_err() {
                if Instant::now() > deadline {
                    panic!(
                        "turnserver answers STUN on UDP {addr} but does not accept TCP on \
                         {tcp_addr}\n--- its log\n{}",
                        read_log()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Coturn {
            child,
            port,
            tls_port,
            relay_ports,
            log,
            opts,
            _dir: dir,
            _ports: ports,
        }
    }

    /// Its listening address, for UDP and TCP: 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Its listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its TLS address, 127.0.0.1:port, when started with [`CoturnOpts::tls`].
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_port
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// The ports its relayed addresses come from (`--min-port..=--max-port`).
    pub fn relay_ports(&self) -> RangeInclusive<u16> {
        self.relay_ports.clone()
    }

    /// What it was started with.
    pub fn opts(&self) -> &CoturnOpts {
        &self.opts
    }

    /// Its log so far (`--log-file=stdout --simple-log`; errors only unless `-v` is in
    /// `extra_args`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// TURN REST API credentials (coturn's `use-auth-secret`, draft-uberti-behave-turn-rest):
/// username `EXPIRY:USER` (just `EXPIRY` when `user` is empty), with EXPIRY a Unix time
/// `ttl` from now; password `base64(HMAC-SHA1(secret, username))`.
pub fn rest_api_credentials(secret: &str, user: &str, ttl: Duration) -> (String, String) {
    use base64::Engine as _;
    use hmac::Mac as _;
    let expiry = (SystemTime::now() + ttl)
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let username = if user.is_empty() {
        expiry.to_string()
    } else {
        format!("{expiry}:{user}")
    };
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// A running `turnutils_peer` on 127.0.0.1: a UDP echo on `port` (and `port + 1`, its
/// RTCP twin), killed on drop.
pub struct TurnutilsPeer {
    child: ChildGuard,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl TurnutilsPeer {
    /// An echo peer on ports from [`free_port_pair`].
    pub fn spawn() -> TurnutilsPeer {
        TurnutilsPeer::start(free_port_pair())
    }

    /// An echo peer on 127.0.0.1:`port` (it also binds `port + 1`; get the pair from
    /// [`free_port_pair`]). Waits until it echoes a datagram. Note that it binds with
    /// SO_REUSEPORT: a port in use by someone else is not an error to it.
    pub fn start(port: u16) -> TurnutilsPeer {
        let dir = TempDir::new("turnutils-peer");
        let log = dir.path().join("peer.log");
        let log_file =
            File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let mut cmd = Command::new("turnutils_peer");
        cmd.args(["-L", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("cloning the log file"))
            .stderr(log_file);
        let child = spawn(cmd).unwrap_or_else(|e| {
            panic!(
                "cannot start turnutils_peer: {e}\n(install coturn: `apt-get install -y coturn`)"
            )
        });
        let mut child = ChildGuard::new(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a probe socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("setting a read timeout");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut buf = [0u8; 64];
        loop {
            if let Some(status) = child.try_wait() {
                panic!(
                    "turnutils_peer on {addr} exited ({status})\n--- its output\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let _ = socket.send_to(b"floe-probe", addr);
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                if from == addr && &buf[..n] == b"floe-probe" {
                    break;
                }
            }
            if Instant::now() > deadline {
                panic!("turnutils_peer on {addr} does not echo within {STARTUP_TIMEOUT:?}");
            }
        }
        TurnutilsPeer {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// Its echo address, 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A run of `turnutils_uclient` and the figures from its summary.
#[derive(Debug)]
pub struct UclientReport {
    pub finished: Finished,
    /// From `Total lost packets N (P%), total send dropped D (Q%)`.
    pub lost_packets: Option<u64>,
    pub send_dropped: Option<u64>,
    /// From the final `start_mclient: tot_send_msgs=S, tot_recv_msgs=R`.
    pub sent_messages: Option<u64>,
    pub received_messages: Option<u64>,
}

impl UclientReport {
    fn parse(finished: Finished) -> UclientReport {
        let mut report = UclientReport {
            lost_packets: None,
            send_dropped: None,
            sent_messages: None,
            received_messages: None,
            finished,
        };
        for line in report.finished.stdout.lines() {
            if let Some(rest) = after(line, "Total lost packets ") {
                report.lost_packets = leading_number(rest);
                report.send_dropped = after(rest, "total send dropped ").and_then(leading_number);
            } else if let Some(rest) = after(line, "start_mclient: tot_send_msgs=") {
                // The final totals; progress lines start with "msz=".
                report.sent_messages = leading_number(rest);
                report.received_messages = after(rest, "tot_recv_msgs=").and_then(leading_number);
            }
        }
        report
    }

    /// Panics unless it exited 0, lost no packet, dropped no send, and sent and received
    /// `expected_messages` messages (its `-m` × `-n`; the same with `-y`).
    pub fn assert_no_loss(&self, expected_messages: u64) {
        let ok = self.finished.success()
            && self.lost_packets == Some(0)
            && self.send_dropped == Some(0)
            && self.sent_messages == Some(expected_messages)
            && self.received_messages == Some(expected_messages);
        assert!(
            ok,
            "turnutils_uclient: expected {expected_messages} messages sent and received with \
             0 lost; got lost={:?} send-dropped={:?} sent={:?} received={:?}\n{}",
            self.lost_packets,
            self.send_dropped,
            self.sent_messages,
            self.received_messages,
            self.finished.describe()
        );
    }
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

fn leading_number(text: &str) -> Option<u64> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Runs `turnutils_uclient` with `args` as they are (bounded by [`RUN_TIMEOUT`]), and
/// parses its summary. It exits 0 even when every packet was lost: check the figures
/// ([`UclientReport::assert_no_loss`]).
pub fn turnutils_uclient(args: &[&str]) -> UclientReport {
    let mut cmd = Command::new("turnutils_uclient");
    cmd.args(args);
    UclientReport::parse(run(cmd, RUN_TIMEOUT))
}

/// INTEROP.md's `turnutils_uclient` command line, built up:
/// `-u bob -w secret -e PEER_IP -r PEER_PORT -m 10 -n 200 -l 120 -c [flags] -p PORT IP`.
#[derive(Clone, Debug)]
pub struct Uclient {
    server: SocketAddr,
    user: String,
    password: String,
    rest_secret: Option<String>,
    peer: Option<SocketAddr>,
    clients: u32,
    messages: u32,
    length: u32,
    flags: Vec<String>,
}

impl Uclient {
    /// Against `server`, as `bob`/`secret`, 10 clients × 200 messages of 120 bytes, no
    /// RTCP (`-c`), over UDP with channels.
    pub fn new(server: SocketAddr) -> Uclient {
        Uclient {
            server,
            user: "bob".into(),
            password: "secret".into(),
            rest_secret: None,
            peer: None,
            clients: 10,
            messages: 200,
            length: 120,
            flags: vec!["-c".into()],
        }
    }

    /// `-u USER -w PASSWORD`.
    pub fn user(mut self, user: &str, password: &str) -> Uclient {
        self.user = user.into();
        self.password = password.into();
        self
    }

    /// `-W SECRET`: TURN REST API credentials (the user name becomes `EXPIRY:USER`, with
    /// EXPIRY a day ahead).
    pub fn rest_secret(mut self, secret: &str) -> Uclient {
        self.rest_secret = Some(secret.into());
        self
    }

    /// `-e IP -r PORT`: the echo peer (not used with `-y`).
    pub fn peer(mut self, peer: SocketAddr) -> Uclient {
        self.peer = Some(peer);
        self
    }

    /// `-m N`.
    pub fn clients(mut self, clients: u32) -> Uclient {
        self.clients = clients;
        self
    }

    /// `-n N`, per client.
    pub fn messages(mut self, messages: u32) -> Uclient {
        self.messages = messages;
        self
    }

    /// `-l BYTES`.
    pub fn length(mut self, length: u32) -> Uclient {
        self.length = length;
        self
    }

    /// One more flag: `-s` (Send indications), `-t` (TCP), `-y` (client to client) ...
    pub fn flag(mut self, flag: &str) -> Uclient {
        self.flags.push(flag.into());
        self
    }

    /// The messages a clean run sends and receives in all: `-m` × `-n`.
    pub fn expected_messages(&self) -> u64 {
        u64::from(self.clients) * u64::from(self.messages)
    }

    /// The command-line arguments.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["-u".to_string(), self.user.clone()];
        match &self.rest_secret {
            Some(secret) => args.extend(["-W".to_string(), secret.clone()]),
            None => args.extend(["-w".to_string(), self.password.clone()]),
        }
        if let Some(peer) = self.peer {
            args.extend([
                "-e".to_string(),
                peer.ip().to_string(),
                "-r".to_string(),
                peer.port().to_string(),
            ]);
        }
        args.extend([
            "-m".to_string(),
            self.clients.to_string(),
            "-n".to_string(),
            self.messages.to_string(),
            "-l".to_string(),
            self.length.to_string(),
        ]);
        args.extend(self.flags.iter().cloned());
        args.extend([
            "-p".to_string(),
            self.server.port().to_string(),
            self.server.ip().to_string(),
        ]);
        args
    }

    /// Runs it (bounded by [`RUN_TIMEOUT`]).
    pub fn run(&self) -> UclientReport {
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        turnutils_uclient(&args)
    }
}

/// `127.0.0.1:5000`, `[::1]:5000`, or `::1:5000` as turnutils_stunclient prints IPv6.
fn parse_host_port(text: &str) -> Option<SocketAddr> {
    text.parse().ok().or_else(|| {
        let (ip, port) = text.rsplit_once(':')?;
        Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
    })
}

/// A run of `turnutils_stunclient`.
#[derive(Debug)]
pub struct StunclientReport {
    pub finished: Finished,
    /// From its `IPv4. UDP reflexive addr: 127.0.0.1:55857` line (IPv6:
    /// `IPv6. UDP reflexive addr: ::1:48244`, no brackets).
    pub reflexive: Option<SocketAddr>,
}

/// Runs `turnutils_stunclient -p PORT IP` against `server`. It waits forever for an
/// answer that does not come, so it is killed after [`STARTUP_TIMEOUT`].
pub fn turnutils_stunclient(server: SocketAddr) -> StunclientReport {
    let mut cmd = Command::new("turnutils_stunclient");
    cmd.args(["-p", &server.port().to_string(), &server.ip().to_string()]);
    let finished = run(cmd, STARTUP_TIMEOUT);
    let reflexive = finished
        .stdout
        .lines()
        .find_map(|line| after(line, "reflexive addr: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(parse_host_port);
    StunclientReport {
        finished,
        reflexive,
    }
}
