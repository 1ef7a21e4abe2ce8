//! Live reload of the real `floe serve` binary: its `--config` file is edited and read
//! again on SIGHUP and on `POST /reload` of the admin API. floe's own `TurnClient` actor
//! is the TURN client and a UDP echo socket on 127.0.0.1 the peer.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{echo_peer, Client, FloeServe, ServeOpts, TempDir};

/// Bounds every wait; only catches hangs.
const LIMIT: Duration = Duration::from_secs(30);

/// Writes the config file whole (a temporary file renamed over it).
fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `floe serve --config FILE` with `text` in FILE and no `--user` flag.
fn start(dir: &TempDir, text: &str, opts: ServeOpts) -> (FloeServe, PathBuf) {
    let path = dir.path().join("floe.toml");
    write_config(&path, text);
    let opts = ServeOpts {
        users: Vec::new(),
        ..opts
    }
    .metrics()
    .arg("--config")
    .arg(path.to_str().unwrap());
    (FloeServe::start(opts), path)
}

/// Waits until `floe_config_reloads_total{result}` reaches `n`.
fn wait_reloads(floe: &FloeServe, result: &str, n: u64) {
    floe.wait_metric(
        &format!("floe_config_reloads_total{{result=\"{result}\"}}"),
        |v| v >= n,
    );
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

#[actix_rt::test]
async fn sighup_reloads_users_and_quotas_while_a_live_allocation_relays_on() {
    let dir = TempDir::new("floe-reload");
    let (mut floe, path) = start(
        &dir,
        "user = [\"bob:secret\", \"carol:pw\"]\nuser-quota = 3\n",
        ServeOpts::default(),
    );
    let peer = echo_peer().await;
    let mut bob = Client::connect(floe.addr(), "bob", "secret").await;
    assert_eq!(bob.try_allocate().await, None);
    bob.channel_to(peer).await;
    bob.echo(peer, b"before").await;

    // bob out, dave in, one allocation a user; `threads` cannot change live.
    write_config(
        &path,
        "user = [\"carol:pw\", \"dave:pw\"]\nuser-quota = 1\nthreads = 97\n",
    );
    let pid = nix::unistd::Pid::from_raw(floe.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_reloads(&floe, "ok", 1);
    floe.assert_running();

    let mut dave = Client::connect(floe.addr(), "dave", "pw").await;
    assert_eq!(
        dave.try_allocate().await,
        None,
        "a user added by the reload"
    );
    let mut bob2 = Client::connect(floe.addr(), "bob", "secret").await;
    assert_eq!(
        bob2.try_allocate().await,
        Some(401),
        "a user the reload took out"
    );
    // bob's live allocation relays on, though he can no longer refresh it.
    bob.echo(peer, b"after").await;
    assert_eq!(bob.refresh().await, Some(401));
    bob.echo(peer, b"still").await;
    // The new user quota.
    let mut carol = Client::connect(floe.addr(), "carol", "pw").await;
    assert_eq!(carol.try_allocate().await, None);
    let mut carol2 = Client::connect(floe.addr(), "carol", "pw").await;
    assert_eq!(carol2.try_allocate().await, Some(486));

    let log = floe.log();
    assert!(
        log.contains("threads") && log.contains("cannot change while running"),
        "no warning about threads in\n{log}"
    );
    assert_eq!(
        floe.metric("floe_config_reloads_total{result=\"error\"}"),
        0
    );
}

#[actix_rt::test]
async fn post_reload_rejects_a_broken_file_and_flags_still_override_the_file() {
    let dir = TempDir::new("floe-reload");
    // `--user-quota 1` on the command line wins over the file's 5, before and after.
    let (floe, path) = start(
        &dir,
        "user = [\"bob:secret\"]\nuser-quota = 5\n",
        ServeOpts::default().admin().arg("--user-quota").arg("1"),
    );
    let peer = echo_peer().await;
    let mut bob = Client::connect(floe.addr(), "bob", "secret").await;
    assert_eq!(bob.try_allocate().await, None);
    bob.channel_to(peer).await;

    // Not TOML: 400 with the error, the running config stays.
    write_config(&path, "user = [\"erin:pw\"\n");
    let (code, body) = floe.admin("POST", "/reload", None);
    assert_eq!(code, 400, "{body}");
    let answer = json(&body);
    assert_eq!(answer["reloaded"], false);
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("floe.toml"), "{error}");
    // TOML that does not validate: rejected too.
    write_config(&path, "user = [\"erin:pw\"]\nmax-permissions = 0\n");
    let (code, body) = floe.admin("POST", "/reload", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("max-permissions"), "{body}");
    wait_reloads(&floe, "error", 2);
    let mut erin = Client::connect(floe.addr(), "erin", "pw").await;
    assert_eq!(
        erin.try_allocate().await,
        Some(401),
        "the broken file was not taken"
    );
    bob.echo(peer, b"old config").await;

    write_config(&path, "user = [\"erin:pw\"]\nuser-quota = 5\n");
    let (code, body) = floe.admin("POST", "/reload", None);
    assert_eq!(code, 200, "{body}");
    let answer = json(&body);
    assert_eq!(
        (answer["reloaded"].clone(), answer["allocations"].clone()),
        (Value::Bool(true), Value::from(1))
    );
    assert_eq!(answer["kept"], serde_json::json!([]));
    assert_eq!(floe.metric("floe_config_reloads_total{result=\"ok\"}"), 1);
    let mut erin = Client::connect(floe.addr(), "erin", "pw").await;
    assert_eq!(erin.try_allocate().await, None);
    let mut erin2 = Client::connect(floe.addr(), "erin", "pw").await;
    assert_eq!(
        erin2.try_allocate().await,
        Some(486),
        "--user-quota 1 still wins"
    );
    bob.echo(peer, b"new config").await;
    assert_eq!(floe.admin("GET", "/reload", None).0, 405);
}

/// The TLS certificate is read again: a new TLS connection gets the new one.
#[actix_rt::test]
async fn a_reload_reads_the_tls_certificate_again() {
    let dir = TempDir::new("floe-reload-tls");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let write_pair = |name: &str| {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        ck.cert.der().to_vec()
    };
    let first = write_pair("first.test");
    let tls_port = support::PortBlock::reserve();
    let tls_addr: SocketAddr = format!("127.0.0.1:{}", tls_port.port(1)).parse().unwrap();
    let text = format!(
        "user = [\"bob:secret\"]\ntls-cert = {:?}\ntls-key = {:?}\ntls-listen = [\"{tls_addr}\"]\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let (floe, _path) = start(&dir, &text, ServeOpts::default().admin());
    assert_eq!(peer_certificate(tls_addr).await, first);
    let second = write_pair("second.test");
    let (code, body) = floe.admin("POST", "/reload", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(peer_certificate(tls_addr).await, second);
    // A key that does not load: rejected, the certificate in use stays.
    std::fs::write(&key, "not a key").unwrap();
    let (code, body) = floe.admin("POST", "/reload", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("key"), "{body}");
    assert_eq!(peer_certificate(tls_addr).await, second);
}

/// The leaf certificate a TLS server at `addr` presents (not verified).
async fn peer_certificate(addr: SocketAddr) -> Vec<u8> {
    use floe_actors::turn::client::AcceptAnyCertificate;
    use rustls::pki_types::ServerName;

    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    let deadline = Instant::now() + LIMIT;
    tokio::time::timeout_at(deadline.into(), handshake)
        .await
        .unwrap_or_else(|_| panic!("no TLS handshake with {addr} in {LIMIT:?}"))
}
