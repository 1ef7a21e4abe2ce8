//! `floe turn`, the TURN client on the command line, run as the built binary against
//! `floe serve` and coturn's `turnserver` (both started by the tests on 127.0.0.1), with a
//! UDP echo peer on 127.0.0.1: the relayed address is printed, the echo comes back through
//! the channel, the allocation is deleted at the end (floe's admin API lists no session),
//! `--hold` keeps it refreshed until SIGINT, and errors are one line and a non-zero exit.
//! Timeouts only bound hangs, except `--timeout 1` where nothing is meant to answer.

#[path = "support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use support::{
    free_port, json_lines, Coturn, CoturnOpts, CoturnTls, Finished, FloeServe, LineProcess,
    ServeOpts, TempDir, TurnutilsPeer, RUN_TIMEOUT,
};

const FLOE: &str = env!("CARGO_BIN_EXE_floe");
/// Bounds a wait for a line of `floe turn`; only catches hangs.
const LINE_WAIT: Duration = Duration::from_secs(60);

// ---- helpers ----------------------------------------------------------------------------------

/// `floe turn --server SERVER --user bob --password secret ARGS...`.
fn command(server: SocketAddr, args: &[&str]) -> Command {
    let mut cmd = Command::new(FLOE);
    cmd.args(["turn", "--server", &server.to_string()])
        .args(["--user", "bob", "--password", "secret"])
        .args(args);
    cmd
}

/// Runs `floe turn` to its end.
fn floe_turn(server: SocketAddr, args: &[&str]) -> Finished {
    support::run(command(server, args), RUN_TIMEOUT)
}

/// Starts `floe turn` and reads its lines as they come.
fn spawn_floe_turn(server: SocketAddr, args: &[&str]) -> LineProcess {
    LineProcess::spawn("floe turn", command(server, args)).expect("starting floe turn")
}

/// What `floe turn` printed, from its `KEY VALUE` lines.
#[derive(Debug, Default)]
struct Printed {
    relayed: Vec<SocketAddr>,
    mapped: Option<SocketAddr>,
    lifetime: Option<u64>,
    channel: Option<(u16, SocketAddr)>,
    data: Vec<(SocketAddr, String)>,
    refreshed: usize,
    deleted: bool,
}

fn parse(stdout: &str) -> Printed {
    let mut p = Printed::default();
    for line in stdout.lines() {
        let mut words = line.splitn(3, ' ');
        let (key, first, rest) = (words.next(), words.next(), words.next());
        match (key, first) {
            (Some("relayed"), Some(a)) => p.relayed.push(a.parse().unwrap()),
            (Some("mapped"), Some(a)) => p.mapped = Some(a.parse().unwrap()),
            (Some("lifetime"), Some(s)) => p.lifetime = Some(s.parse().unwrap()),
            (Some("channel"), Some(n)) => {
                p.channel = Some((n.parse().unwrap(), rest.unwrap().parse().unwrap()))
            }
            (Some("data"), Some(a)) => {
                p.data
                    .push((a.parse().unwrap(), rest.unwrap_or("").to_owned()));
            }
            (Some("refreshed"), _) => p.refreshed += 1,
            (Some("deleted"), None) => p.deleted = true,
            _ => {}
        }
    }
    p
}

/// Asserts that `floe turn` failed with exit status 1 and one line on stderr containing
/// every one of `words`, and did not panic.
fn assert_one_line_error(run: &Finished, words: &[&str]) {
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        run.describe()
    );
    let stderr = run.stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "{}", run.describe());
    assert!(stderr.starts_with("floe turn: "), "{}", run.describe());
    for w in words {
        assert!(stderr.contains(w), "no {w:?} in {stderr:?}");
    }
    assert!(!stderr.contains("panicked"), "{}", run.describe());
}

/// Who sent the echo what, in order.
type Received = Arc<Mutex<Vec<(SocketAddr, Vec<u8>)>>>;

/// A UDP echo on 127.0.0.1 in the test: answers every datagram to its sender, and remembers
/// who sent what.
struct Echo {
    addr: SocketAddr,
    received: Received,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let received = Received::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (log, done) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    log.lock().unwrap().push((from, buf[..n].to_vec()));
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        });
        Echo {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<(SocketAddr, Vec<u8>)> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The allocations floe's admin API lists.
fn sessions(floe: &FloeServe) -> Vec<Value> {
    let (code, body) = floe.admin("GET", "/sessions", None);
    assert_eq!(code, 200, "{body}");
    match serde_json::from_str(&body) {
        Ok(Value::Array(list)) => list,
        _ => panic!("not a JSON array: {body}"),
    }
}

fn sigint(p: &LineProcess) {
    let pid = nix::unistd::Pid::from_raw(p.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
}

fn exited_with(p: &mut LineProcess) -> ExitStatus {
    p.wait(LINE_WAIT)
        .unwrap_or_else(|| panic!("floe turn did not exit\n{}", p.describe()))
}

// ---- against floe serve -----------------------------------------------------------------------

#[test]
fn floe_serve_udp_allocates_relays_the_echo_and_deletes() {
    let floe = FloeServe::start(ServeOpts::default().admin());
    let echo = Echo::start();
    let peer = echo.addr.to_string();
    let run = floe_turn(floe.addr(), &["--peer", &peer, "--send", "hello floe"]);
    assert!(run.success(), "{}", run.describe());
    assert!(run.stderr.is_empty(), "{}", run.describe());
    let p = parse(&run.stdout);
    assert_eq!(p.relayed.len(), 1, "{}", run.stdout);
    let relayed = p.relayed[0];
    assert!(
        relayed.ip() == Ipv4Addr::LOCALHOST && floe.relay_ports.contains(&relayed.port()),
        "{relayed} is not from floe's relay range"
    );
    assert_eq!(p.mapped.map(|m| m.ip()), Some(Ipv4Addr::LOCALHOST.into()));
    assert_eq!(p.lifetime, Some(600));
    assert_eq!(p.channel, Some((0x4000, echo.addr)));
    assert_eq!(p.data, vec![(echo.addr, "hello floe".to_owned())]);
    assert!(p.deleted, "{}", run.stdout);
    // The text went out of the relayed address, through the channel.
    assert_eq!(echo.received(), vec![(relayed, b"hello floe".to_vec())]);
    assert!(sessions(&floe).is_empty(), "the allocation is deleted");
}

#[test]
fn floe_serve_tcp_with_json_lines() {
    let floe = FloeServe::start(ServeOpts::default().admin());
    let echo = Echo::start();
    let peer = echo.addr.to_string();
    let run = floe_turn(
        floe.addr(),
        &["--tcp", "--json", "--peer", &peer, "--send", "over tcp"],
    );
    assert!(run.success(), "{}", run.describe());
    let lines = json_lines(&run.stdout);
    let events: Vec<&str> = lines.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["allocated", "permission", "channel", "data", "deleted"],
        "{}",
        run.stdout
    );
    let relayed: SocketAddr = lines[0]["relayed"][0].as_str().unwrap().parse().unwrap();
    assert!(floe.relay_ports.contains(&relayed.port()));
    assert!(lines[0]["mapped"].is_string(), "{}", lines[0]);
    assert_eq!(lines[2]["channel"], 0x4000);
    assert_eq!(lines[3]["peer"], echo.addr.to_string());
    assert_eq!(lines[3]["data"], "over tcp");
    assert_eq!(echo.received(), vec![(relayed, b"over tcp".to_vec())]);
    assert!(sessions(&floe).is_empty());
}

#[test]
fn floe_serve_wrong_password_is_one_line_and_exit_1() {
    let floe = FloeServe::start(ServeOpts::default());
    let mut cmd = Command::new(FLOE);
    cmd.args(["turn", "--server", &floe.addr().to_string()])
        .args(["--user", "bob", "--password", "not-the-secret"]);
    let run = support::run(cmd, RUN_TIMEOUT);
    assert_one_line_error(&run, &["Allocate", "401", "wrong user or password"]);
    assert!(run.stdout.is_empty(), "{}", run.describe());
}

#[test]
fn hold_until_sigint_keeps_the_allocation_then_deletes_it() {
    let floe = FloeServe::start(ServeOpts::default().admin().arg("--user-quota=1"));
    let echo = Echo::start();
    let peer = echo.addr.to_string();
    let mut holder = spawn_floe_turn(floe.addr(), &["--peer", &peer, "--hold", "0"]);
    let relayed = holder.wait_for_key("relayed", LINE_WAIT);
    holder.wait_for_key("channel", LINE_WAIT);
    let list = sessions(&floe);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        format!("relayed {}", list[0]["relayed"][0].as_str().unwrap()),
        relayed
    );
    assert_eq!(list[0]["channels"][0]["peer"], peer);

    // The user's one allocation is held: a second one is refused (RFC 8656 §7.2: 486).
    let second = floe_turn(floe.addr(), &[]);
    assert_one_line_error(&second, &["Allocate", "486"]);

    sigint(&holder);
    let status = exited_with(&mut holder);
    assert!(status.success(), "{status}\n{}", holder.describe());
    assert_eq!(
        holder.lines().last().map(String::as_str),
        Some("deleted"),
        "{}",
        holder.describe()
    );
    assert!(holder.stderr().is_empty(), "{}", holder.describe());
    assert!(sessions(&floe).is_empty(), "SIGINT deleted the allocation");
}

#[test]
fn hold_for_seconds_refreshes_past_the_lifetime() {
    // Granted 4 s, refreshed every 2 s (RFC 8656 §8): without the refreshes the allocation
    // would expire during the 6 s hold and floe turn would exit 1.
    let floe = FloeServe::start(ServeOpts::default().admin().arg("--max-lifetime=4"));
    let run = floe_turn(floe.addr(), &["--hold", "6"]);
    assert!(run.success(), "{}", run.describe());
    let p = parse(&run.stdout);
    assert_eq!(p.lifetime, Some(4), "{}", run.stdout);
    assert!(p.refreshed >= 1, "no refresh\n{}", run.stdout);
    assert!(p.deleted, "{}", run.stdout);
    assert!(sessions(&floe).is_empty());
}

#[test]
fn a_silent_peer_is_a_clear_error_and_the_allocation_is_still_deleted() {
    let floe = FloeServe::start(ServeOpts::default().admin());
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let peer = silent.local_addr().unwrap().to_string();
    let run = floe_turn(
        floe.addr(),
        &["--peer", &peer, "--send", "anyone?", "--timeout", "1"],
    );
    assert_one_line_error(&run, &["no data came back from", &peer, "within 1 s"]);
    assert!(parse(&run.stdout).deleted, "{}", run.describe());
    assert!(sessions(&floe).is_empty());
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    // Nothing listens on this port (it is ours, unused).
    let nowhere = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let run = floe_turn(nowhere, &["--tcp"]);
    assert_one_line_error(&run, &["cannot connect to", &nowhere.to_string()]);
    // Over UDP nothing answers; a short RTO makes the transaction time out in about 1.5 s.
    let run = floe_turn(nowhere, &["--rto", "20"]);
    assert_one_line_error(&run, &["Allocate failed", "timed out"]);
}

#[test]
fn floe_serve_tls_verified_with_a_ca_file() {
    let dir = TempDir::new("turn-cli-tls");
    let (tls, _pem) = CoturnTls::self_signed(dir.path());
    let tls_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let floe = FloeServe::start(
        ServeOpts::default()
            .admin()
            .arg(&format!("--tls-cert={}", tls.cert.display()))
            .arg(&format!("--tls-key={}", tls.key.display()))
            .arg(&format!("--tls-listen={tls_addr}")),
    );
    let echo = Echo::start();
    let peer = echo.addr.to_string();
    let ca = format!("--ca-file={}", tls.cert.display());
    let args = ["--tls", &ca, "--tls-name=localhost", "--peer", &peer];
    let run = floe_turn(tls_addr, &[&args[..], &["--send", "over tls"]].concat());
    assert!(run.success(), "{}", run.describe());
    let p = parse(&run.stdout);
    assert_eq!(p.data, vec![(echo.addr, "over tls".to_owned())]);
    assert!(p.deleted);
    assert!(sessions(&floe).is_empty());

    // Without the CA the certificate is not trusted: one line saying so.
    let run = floe_turn(tls_addr, &["--tls", "--tls-name=localhost"]);
    assert_one_line_error(&run, &["TLS with", &tls_addr.to_string()]);
}

// ---- against coturn ---------------------------------------------------------------------------

#[test]
fn coturn_udp_relays_the_echo_and_refuses_a_wrong_password() {
    if !support::require_peers(&["turnserver", "turnutils_peer"]) {
        return;
    }
    let coturn = Coturn::start(CoturnOpts::default());
    let echo = TurnutilsPeer::spawn();
    let peer = echo.addr().to_string();
    let run = floe_turn(coturn.addr(), &["--peer", &peer, "--send", "hello coturn"]);
    assert!(
        run.success(),
        "{}\n--- coturn\n{}",
        run.describe(),
        coturn.log()
    );
    let p = parse(&run.stdout);
    assert_eq!(p.relayed.len(), 1, "{}", run.stdout);
    assert!(coturn.relay_ports().contains(&p.relayed[0].port()));
    assert_eq!(p.mapped.map(|m| m.ip()), Some(Ipv4Addr::LOCALHOST.into()));
    assert_eq!(p.channel, Some((0x4000, echo.addr())));
    assert_eq!(p.data, vec![(echo.addr(), "hello coturn".to_owned())]);
    assert!(p.deleted, "{}", run.stdout);

    let mut cmd = Command::new(FLOE);
    cmd.args(["turn", "--server", &coturn.addr().to_string()])
        .args(["--user", "bob", "--password", "wrong"]);
    let run = support::run(cmd, RUN_TIMEOUT);
    assert_one_line_error(&run, &["Allocate", "401"]);
}

#[test]
fn coturn_tcp_holds_until_sigint_then_deletes() {
    if !support::require_peers(&["turnserver", "turnutils_peer"]) {
        return;
    }
    let coturn = Coturn::start(CoturnOpts::default());
    let echo = TurnutilsPeer::spawn();
    let peer = echo.addr().to_string();
    let mut p = spawn_floe_turn(
        coturn.addr(),
        &["--tcp", "--peer", &peer, "--send", "tcp", "--hold", "0"],
    );
    assert_eq!(
        p.wait_for_key("data", LINE_WAIT),
        format!("data {peer} tcp")
    );
    sigint(&p);
    let status = exited_with(&mut p);
    assert!(
        status.success(),
        "{status}\n{}\n--- coturn\n{}",
        p.describe(),
        coturn.log()
    );
    assert_eq!(p.lines().last().map(String::as_str), Some("deleted"));
}

#[test]
fn coturn_tls_relays_the_echo() {
    if !support::require_peers(&["turnserver", "turnutils_peer"]) {
        return;
    }
    let dir = TempDir::new("turn-cli-coturn-tls");
    let (tls, _pem) = CoturnTls::self_signed(dir.path());
    let coturn = Coturn::start(CoturnOpts::default().tls(tls.clone()));
    let tls_addr = coturn.tls_addr().expect("a TLS port");
    let echo = TurnutilsPeer::spawn();
    let peer = echo.addr().to_string();
    // The certificate names 127.0.0.1 too: verified against the IP, no --tls-name.
    let ca = format!("--ca-file={}", tls.cert.display());
    let run = floe_turn(tls_addr, &["--tls", &ca, "--peer", &peer, "--send", "tls"]);
    assert!(
        run.success(),
        "{}\n--- coturn\n{}",
        run.describe(),
        coturn.log()
    );
    let p = parse(&run.stdout);
    assert_eq!(p.data, vec![(echo.addr(), "tls".to_owned())]);
    assert!(p.deleted, "{}", run.stdout);
}
