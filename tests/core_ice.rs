//! The core's own integration tests of ICE: two floe ICE agents on the sans-IO
//! [`AgentPair`] with a fake clock, through the public API of `floe::ice` only.

#[path = "core/mod.rs"]
mod pairs;

#[path = "core_ice/agent.rs"]
mod agent;
#[path = "core_ice/lifecycle.rs"]
mod lifecycle;
#[path = "core_ice/renomination.rs"]
mod renomination;
#[path = "core_ice/streams.rs"]
mod streams;
#[path = "core_ice/tcp.rs"]
mod tcp;
#[path = "core_ice/topology.rs"]
mod topology;

use std::net::SocketAddr;
use std::time::Duration;

use floe::ice::{IceConfig, IceEvent, IceRole};

use pairs::agents::AgentPair;

const MS: Duration = Duration::from_millis(1);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn controlling() -> IceConfig {
    IceConfig::new(IceRole::Controlling)
}

fn controlled() -> IceConfig {
    IceConfig::new(IceRole::Controlled)
}

/// Two agents with one host candidate each, fully signalled.
fn simple(seed: u64) -> AgentPair {
    let mut h = AgentPair::new(controlling(), controlled(), seed);
    h.a.hosts(&["10.0.0.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000"]);
    h.signal();
    h
}

fn is_nominated(e: &IceEvent) -> bool {
    matches!(e, IceEvent::PairNominated { .. })
}

/// Both sides nominated the same pair: A's local is B's remote and vice versa.
fn assert_same_pair(h: &AgentPair) {
    let (al, ar) = h.a.agent.selected_pair().expect("A selected a pair");
    let (bl, br) = h.b.agent.selected_pair().expect("B selected a pair");
    assert_eq!(al.addr(), br.addr());
    assert_eq!(ar.addr(), bl.addr());
}
