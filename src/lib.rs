//! floe: STUN, TURN and ICE as a sans-IO protocol core.
//!
//! Nothing in this crate opens a socket or reads a clock. Every state machine takes
//! `now: Instant` and bytes in, and hands back transmits, events and one deadline.
//! The actix layer lives in the `floe-actors` crate.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod cidr;
pub mod demux;
pub mod framing;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod ice;
pub mod mdns;
pub mod rfc4571;
pub mod stun;
pub mod transmit;
pub mod turn;

pub use transmit::{Transmit, Transport};

// The test pairs of `tests/core`, which the ICE proptests share, name the crate `floe`.
#[cfg(test)]
extern crate self as floe;
