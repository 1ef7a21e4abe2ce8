//! Two ICE agents in one process, exchanging their descriptions and candidates through
//! channels (their event streams), printing every event under the seed's names
//! (OnICECandidate, OnICECandidatePairNominated ...), and exchanging messages.
//!
//! It runs once with host candidates on loopback; once with two streams of two
//! components (RTP and RTCP, each stream with its own credentials) and an ICE restart
//! after the first messages; then, when a TURN server is named, once relay-only
//! through it:
//!
//! ```text
//! cargo run --example ice_agents
//! cargo run --example ice_agents -- --turn 127.0.0.1:3478 --user bob --password secret
//! cargo run --example ice_agents -- --turn 127.0.0.1:3478 --user bob --password secret --tcp
//! ```
//!
//! Gathering is restricted to loopback addresses; the TURN server must allow loopback
//! peers (`floe serve --allow-loopback-peers`, coturn `--allow-loopback-peers`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use floe::ice::{IceEvent as CoreEvent, IceRole};
use floe_actors::ice::{
    AgentConfig, Description, GatherConfig, IceAgent, IceAgentHandle, IceEvent, TurnServerConfig,
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
        IceEvent::Candidate { candidate, .. } => format!("a=candidate:{}", candidate.to_sdp()),
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
        IceEvent::Data {
            component, data, ..
        } => format!("component {component}: {:?}", String::from_utf8_lossy(data)),
        _ => String::new(),
    };
    let stream = e.stream().map_or(String::new(), |s| format!("[{s}]"));
    println!(
        "{t:8.1} ms  {name}  {:<30} {stream:>3} {what}",
        e.seed_name()
    );
}

/// Signals `from`'s credentials and candidates of every stream to `to`.
fn signal(from: &Description, to: &IceAgentHandle) {
    for (stream, d) in from.streams.iter().enumerate() {
        let c = &d.credentials;
        to.set_remote_of(stream, c.ufrag.clone(), c.pwd.clone(), d.candidates.clone());
    }
}

/// Sends one message on every stream and component.
fn send_all(agent: &IceAgentHandle, streams: usize, components: u16, text: String) {
    let agent = agent.clone();
    actix_rt::spawn(async move {
        for stream in 0..streams {
            for component in 1..=components {
                if let Err(e) = agent.send_on(stream, component, text.clone()).await {
                    eprintln!("send on {stream}/{component}: {e}");
                }
            }
        }
    });
}

/// One run: both agents gather, trickle their candidates to each other, check, and
/// send one message each on every stream and component once connected. With
/// `restart`, agent 1 then restarts ICE (RFC 8445 §9), agent 2 answers with new
/// credentials of its own, and both send again once the new pairs are selected.
/// Returns whether every message arrived.
async fn run(a: AgentConfig, b: AgentConfig, restart: bool) -> bool {
    let (streams, components) = (a.streams, a.components);
    let agents = [IceAgent::spawn(a), IceAgent::spawn(b)];
    let names = ["agent-1 (controlling)", "agent-2 (controlled) "];
    let (mut events_1, mut events_2) = (agents[0].events(), agents[1].events());
    for agent in &agents {
        agent.gather();
    }
    let d = [
        agents[0].local_description().await,
        agents[1].local_description().await,
    ];
    for (i, agent) in agents.iter().enumerate() {
        for (stream, s) in d[i].streams.iter().enumerate() {
            let c = &s.credentials;
            println!(
                "{}  stream {stream}: ufrag {} pwd {}",
                names[i], c.ufrag, c.pwd
            );
        }
        signal(&d[1 - i], agent);
    }
    let started = Instant::now();
    for agent in &agents {
        agent.start(); // ProcessCandidates
    }
    let want = streams * usize::from(components);
    let mut connected: [HashSet<usize>; 2] = Default::default();
    let mut received: [HashSet<(usize, u16)>; 2] = Default::default();
    let mut restarted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if received.iter().all(|r| r.len() == want) {
            if !restart || restarted {
                break;
            }
            // RFC 8445 §9: agent 1 restarts; agent 2 sees new credentials and answers.
            restarted = true;
            connected = Default::default();
            received = Default::default();
            let fresh = agents[0].restart().await;
            println!("{}  ICE restart", names[0]);
            let answer = agents[1].restart().await;
            println!("{}  ICE restart (answer)", names[1]);
            signal(&fresh, &agents[1]);
            signal(&answer, &agents[0]);
            for agent in &agents {
                for stream in 0..streams {
                    agent.end_of_remote_candidates_of(stream);
                }
            }
        }
        let (i, e) = tokio::select! {
            Some(e) = events_1.recv() => (0, e),
            Some(e) = events_2.recv() => (1, e),
            _ = tokio::time::sleep_until(deadline) => break,
        };
        print(names[i], started, &e);
        let other = &agents[1 - i];
        match e {
            IceEvent::Candidate { stream, candidate } => {
                other.add_remote_candidate_to(stream, candidate)
            }
            IceEvent::GatheringComplete => {
                for stream in 0..streams {
                    other.end_of_remote_candidates_of(stream);
                }
            }
            IceEvent::Core {
                stream,
                event: CoreEvent::Connected,
            } => {
                connected[i].insert(stream);
                if connected[i].len() == streams {
                    let text = format!("hello from {}", names[i].trim());
                    send_all(&agents[i], streams, components, text);
                }
            }
            IceEvent::Data {
                stream, component, ..
            } => {
                received[i].insert((stream, component));
            }
            _ => {}
        }
    }
    for agent in &agents {
        agent.stop();
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    received.iter().all(|r| r.len() == want)
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
    let mut ok = run(
        config(IceRole::Controlling),
        config(IceRole::Controlled),
        false,
    )
    .await;
    println!("\n== two streams of RTP and RTCP, each with its own credentials; an ICE restart");
    let av = |role| {
        let mut c = config(role);
        c.streams = 2;
        c.components = 2;
        c
    };
    ok &= run(av(IceRole::Controlling), av(IceRole::Controlled), true).await;
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
            false,
        )
        .await;
    }
    if ok {
        println!("\nevery run exchanged its messages");
        ExitCode::SUCCESS
    } else {
        println!("\na message did not arrive");
        ExitCode::FAILURE
    }
}
