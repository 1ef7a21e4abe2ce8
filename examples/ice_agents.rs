//! Two ICE agents in one process, exchanging their descriptions and candidates through
//! channels (their event streams), printing every event under the seed's names
//! (OnICECandidate, OnICECandidatePairNominated ...), and exchanging a message.
//!
//! It runs once with host candidates on loopback, then, when a TURN server is named,
//! once relay-only through it:
//!
//! ```text
//! cargo run --example ice_agents
//! cargo run --example ice_agents -- --turn 127.0.0.1:3478 --user bob --password secret
//! cargo run --example ice_agents -- --turn 127.0.0.1:3478 --user bob --password secret --tcp
//! ```
//!
//! Gathering is restricted to loopback addresses; the TURN server must allow loopback
//! peers (`floe serve --allow-loopback-peers`, coturn `--allow-loopback-peers`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use floe::ice::{IceEvent as CoreEvent, IceRole};
use floe_actors::ice::{
    AgentConfig, GatherConfig, IceAgent, IceAgentHandle, IceEvent, TurnServerConfig,
};

/// Two ICE agents in one process.
#[derive(Debug, Parser)]
struct Args {
    /// TURN server for a second, relay-only run
    #[arg(long, value_name = "HOST:PORT", requires_all = ["user", "password"])]
    turn: Option<SocketAddr>,
    /// TURN username
    #[arg(long)]
    user: Option<String>,
    /// TURN password
    #[arg(long)]
    password: Option<String>,
    /// Reach the TURN server over TCP
    #[arg(long)]
    tcp: bool,
}

fn print(name: &str, started: Instant, e: &IceEvent) {
    let t = started.elapsed().as_secs_f64() * 1000.0;
    let what = match e {
        IceEvent::Candidate { candidate: c, .. } => format!("a=candidate:{}", c.to_sdp()),
        IceEvent::CandidateError {
            server,
            kind,
            code,
            reason,
        } => {
            format!("{server}: {kind:?} {code:?} {reason}")
        }
        IceEvent::Core {
            event: CoreEvent::PairNominated { local, remote },
            ..
        }
        | IceEvent::Core {
            event: CoreEvent::PairFailed { local, remote },
            ..
        }
        | IceEvent::Core {
            event: CoreEvent::SelectedPairChanged { local, remote },
            ..
        } => {
            format!(
                "{} ({}) <-> {} ({})",
                local.addr(),
                local.kind().as_sdp(),
                remote.addr(),
                remote.kind().as_sdp()
            )
        }
        IceEvent::Core {
            event: CoreEvent::RoleChanged(role),
            ..
        } => format!("{role:?}"),
        IceEvent::Data { data: d, .. } => format!("{:?}", String::from_utf8_lossy(d)),
        _ => String::new(),
    };
    println!("{t:8.1} ms  {name}  {:<30} {what}", e.seed_name());
}

/// One run: both agents gather, trickle their candidates to each other, check, and
/// send one message each once connected. Returns whether both messages arrived.
async fn run(a: AgentConfig, b: AgentConfig) -> bool {
    let agents = [IceAgent::spawn(a), IceAgent::spawn(b)];
    let names = ["agent-1 (controlling)", "agent-2 (controlled) "];
    let mut streams = [agents[0].events(), agents[1].events()];
    for agent in &agents {
        agent.gather();
    }
    let d = [
        agents[0].local_description().await,
        agents[1].local_description().await,
    ];
    for (i, agent) in agents.iter().enumerate() {
        let other = &d[1 - i].credentials;
        println!(
            "{}  ufrag {} pwd {}",
            names[i], d[i].credentials.ufrag, d[i].credentials.pwd
        );
        agent.set_remote(other.ufrag.clone(), other.pwd.clone(), Vec::new());
    }
    let started = Instant::now();
    for agent in &agents {
        agent.start(); // ProcessCandidates
    }
    let mut received = [false, false];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let on_event =
        |i: usize, e: IceEvent, received: &mut [bool; 2], agents: &[IceAgentHandle; 2]| {
            print(names[i], started, &e);
            let other = &agents[1 - i];
            match e {
                IceEvent::Candidate { candidate: c, .. } => other.add_remote_candidate(c),
                IceEvent::GatheringComplete => other.end_of_remote_candidates(),
                IceEvent::Core {
                    event: CoreEvent::Connected,
                    ..
                } => {
                    let me = agents[i].clone();
                    let text = format!("hello from {}", names[i].trim());
                    actix_rt::spawn(async move {
                        if let Err(e) = me.send(text).await {
                            eprintln!("send: {e}");
                        }
                    });
                }
                IceEvent::Data { data: _, .. } => received[i] = true,
                _ => {}
            }
        };
    let [s0, s1] = &mut streams;
    while !(received[0] && received[1]) {
        tokio::select! {
            Some(e) = s0.recv() => on_event(0, e, &mut received, &agents),
            Some(e) = s1.recv() => on_event(1, e, &mut received, &agents),
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    for agent in &agents {
        agent.stop();
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    received[0] && received[1]
}

fn config(role: IceRole) -> AgentConfig {
    let mut c = AgentConfig::new(role);
    c.gather = GatherConfig::loopback_only();
    c
}

#[actix_rt::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    println!("== host candidates on loopback");
    let mut ok = run(config(IceRole::Controlling), config(IceRole::Controlled)).await;
    if let (Some(addr), Some(user), Some(password)) = (args.turn, &args.user, &args.password) {
        println!("\n== relay-only through the TURN server {addr}");
        let mut turn = TurnServerConfig::udp(addr, user.clone(), password.clone());
        if args.tcp {
            turn = turn.over_tcp();
        }
        let relay_only = |role| {
            let mut c = config(role);
            c.gather.relay_only = true;
            c.turn.push(turn.clone());
            c
        };
        ok &= run(
            relay_only(IceRole::Controlling),
            relay_only(IceRole::Controlled),
        )
        .await;
    }
    if ok {
        println!("\nboth runs exchanged their messages");
        ExitCode::SUCCESS
    } else {
        println!("\na message did not arrive");
        ExitCode::FAILURE
    }
}
