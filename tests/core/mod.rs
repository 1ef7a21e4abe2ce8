//! The core's sans-IO pairs, after quinn-proto's `Pair`: two cores joined by an in-memory
//! network on a fake clock, driven through floe's public API only.
//!
//! - [`pair::Pair`]: a TURN client core and a TURN server core.
//! - [`agents::AgentPair`]: two ICE agents.
//!
//! Both put datagrams on one [`network::Network`] and run on the one loop of
//! [`network::Sim`]: the clock is a plain `Instant` that only the test moves, jumping to
//! the next deadline either core asks for whenever the network is quiet.

#![allow(dead_code)] // each test binary uses a part of the pairs

pub mod agents;
pub mod network;
pub mod pair;
pub mod tcp_net;
