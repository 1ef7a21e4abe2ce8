//! ICE core unit tests, all on a fake clock with seeded randomness. Two agents talking to
//! each other are tested through the public API in `tests/core_ice.rs`.

mod candidates;
mod fuzz;
mod pacer;
mod renomination;
mod wire;

/// The core's test pairs (`tests/core`), compiled here for the proptests of `fuzz`.
#[path = "../../../tests/core/mod.rs"]
mod pairs;
