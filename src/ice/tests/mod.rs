//! ICE core tests, all on a fake clock with seeded randomness.

mod candidates;
mod wire;
