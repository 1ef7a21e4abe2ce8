//! floe-actors: actix actors that own sockets and timers and drive the floe core.
//!
//! The I/O and operator plumbing the server actors build on:
//! - [`udp`]: batched UDP sockets (recvmmsg, GRO, GSO) on the actix-rt reactor;
//! - [`tcp`]: TCP listeners sharing their port across Arbiters;
//! - [`config`] and [`cli`]: `floe serve` settings from TOML and flags;
//! - [`metrics`]: lock-free counters and a Prometheus endpoint;
//! - [`shutdown`]: SIGINT/SIGTERM; [`logging`]: the tracing subscriber;
//! - [`serve`]: what `floe serve` runs with its [`config::ServerConfig`];
//! - [`bench`]: `floe bench`, the load generator that measures servers side by side.
#![warn(missing_docs)]

pub mod bench;
pub mod cli;
pub mod config;
pub mod events;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod shutdown;
pub mod tcp;
pub mod turn;
pub mod udp;
