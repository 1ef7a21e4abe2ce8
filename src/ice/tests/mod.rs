//! ICE core tests, all on a fake clock with seeded randomness.

mod agent;
mod candidates;
mod fuzz;
mod harness;
mod lifecycle;
mod streams;
mod topology;
mod wire;
