//! floe-actors: actix actors that own sockets and timers and drive the floe core.
//!
//! The I/O and operator plumbing the server actors build on:
//! - [`udp`]: batched UDP sockets (recvmmsg, GRO, GSO) on the actix-rt reactor;
//! - [`tcp`]: TCP listeners sharing their port across Arbiters;
//! - [`tls`]: the rustls configuration and handshake of TLS on 5349;
//! - [`config`] and [`cli`]: `floe serve` settings from TOML and flags;
//! - [`host_addrs`]: the host's addresses, which the peer policy refuses as peers;
//! - [`external_ip`]: `external-ip auto`, the relays' public address asked of STUN servers,
//!   and `aws`, `gcp`, `azure`, the public IPv4 asked of the cloud's metadata service;
//! - [`metrics`]: lock-free counters and a Prometheus endpoint;
//! - [`admin`]: the admin HTTP API (health, readiness, sessions, drain, reload);
//! - [`shutdown`]: SIGINT/SIGTERM/SIGHUP; [`logging`]: the tracing subscriber;
//! - [`reload`]: live reload of the configuration (SIGHUP, `POST /reload`);
//! - [`serve`]: what `floe serve` runs with its [`config::ServeConfig`];
//! - [`ice`]: the ICE agent (RFC 8445) as an `IceAgent` actor driving the core `floe::ice::Agent`.
//!
//! The load generator is not here: it is the `floe-bench` tool in `bench/`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod events;
pub mod external_ip;
pub mod host_addrs;
mod http;
pub mod ice;
pub mod logging;
pub mod metrics;
pub mod reload;
pub mod serve;
pub mod shutdown;
pub mod tcp;
pub mod tls;
pub mod turn;
pub mod udp;
