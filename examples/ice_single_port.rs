//! Single-port mode, as an SFU runs it: one `IceUdpMux` on 127.0.0.1, three "SFU side"
//! agents (controlled) on it, each connected to a "browser" agent (controlling, with
//! sockets of its own). Each pair nominates, says hello both ways, and the mux prints
//! what it routed.
//!
//! ```text
//! cargo run --example ice_single_port
//! ```

use std::process::ExitCode;
use std::time::Duration;

use floe::ice::{IceEvent as CoreEvent, IceRole};
use floe_actors::ice::{
    AgentConfig, GatherConfig, IceAgent, IceAgentHandle, IceEvent, IceUdpMux, IceUdpMuxConfig,
    IceUdpMuxHandle,
};

fn config(role: IceRole, mux: Option<&IceUdpMuxHandle>) -> AgentConfig {
    let mut c = AgentConfig::new(role);
    c.gather = GatherConfig::loopback_only();
    c.shared_socket = mux.cloned();
    c
}

/// Connects `browser` and `sfu`, trickling candidates through their event streams;
/// returns once each has received the other's hello.
async fn connect(n: usize, browser: IceAgentHandle, sfu: IceAgentHandle) -> bool {
    let (mut eb, mut es) = (browser.events(), sfu.events());
    browser.gather();
    sfu.gather();
    let (db, ds) = (
        browser.local_description().await,
        sfu.local_description().await,
    );
    browser.set_remote(ds.credentials.ufrag, ds.credentials.pwd, Vec::new());
    sfu.set_remote(db.credentials.ufrag, db.credentials.pwd, Vec::new());
    browser.start();
    sfu.start();
    let mut got = [false, false];
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    while got != [true, true] {
        let (i, e, me, other) = tokio::select! {
            Some(e) = eb.recv() => (0, e, &browser, &sfu),
            Some(e) = es.recv() => (1, e, &sfu, &browser),
            _ = &mut deadline => return false,
        };
        let side = ["browser", "sfu"][i];
        match e {
            IceEvent::Candidate { candidate, .. } => other.add_remote_candidate(candidate),
            IceEvent::GatheringComplete => other.end_of_remote_candidates(),
            IceEvent::Core {
                event: CoreEvent::PairNominated { local, remote },
                ..
            } => println!(
                "pair {n} {side}: nominated {} -> {}",
                local.addr(),
                remote.addr()
            ),
            IceEvent::Core {
                event: CoreEvent::Connected,
                ..
            } => {
                let _ = me.send(format!("hello from {side} {n}")).await;
            }
            IceEvent::Data { data, .. } => {
                println!("pair {n} {side}: {:?}", String::from_utf8_lossy(&data));
                got[i] = true;
            }
            _ => {}
        }
    }
    browser.stop();
    sfu.stop();
    true
}

#[actix_rt::main]
async fn main() -> ExitCode {
    let mux = match IceUdpMux::bind("127.0.0.1:0".parse().unwrap(), IceUdpMuxConfig::default()) {
        Ok(mux) => mux,
        Err(e) => {
            eprintln!("cannot bind the shared socket: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("shared socket: {}", mux.local_addr());
    let mut pairs = Vec::new();
    for n in 0..3 {
        let browser = IceAgent::spawn(config(IceRole::Controlling, None));
        let sfu = IceAgent::spawn(config(IceRole::Controlled, Some(&mux)));
        pairs.push(actix_rt::spawn(connect(n, browser, sfu)));
    }
    let mut ok = true;
    for p in pairs {
        ok &= p.await.unwrap_or(false);
    }
    println!("{:#?}", mux.stats().await);
    mux.stop();
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("a pair did not connect within 30 s");
        ExitCode::FAILURE
    }
}
