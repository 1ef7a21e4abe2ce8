//! Input drivers shared by the cargo-fuzz targets in `fuzz/` and the proptests of the
//! test suite (the short run CI does). Each reads an arbitrary byte string as a program:
//! every step picks an action (a well-formed, authenticated message built here so the
//! run gets past authentication, a mutated one, raw bytes, data from a peer, time
//! passing) and the driver checks the core's outputs against invariants after each.
//!
//! Not part of floe's API: compiled for tests and with the `fuzzing` feature only.

mod client;
mod ice;
mod server;

pub use client::turn_client;
pub use ice::ice_agent;
pub use server::{turn_server_tcp, turn_server_udp};

/// How deep a run got, counted from the core's outputs: lets a test check that random
/// programs get past authentication to the states worth fuzzing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// Allocations made (TURN), or agents connected (ICE).
    pub allocations: usize,
    /// Permissions installed.
    pub permissions: usize,
    /// Channels bound.
    pub channels: usize,
    /// Data relayed or received, either way.
    pub data: usize,
}

impl std::ops::AddAssign for Reached {
    fn add_assign(&mut self, o: Reached) {
        self.allocations += o.allocations;
        self.permissions += o.permissions;
        self.channels += o.channels;
        self.data += o.data;
    }
}

/// Reads a fuzzer's bytes as a sequence of choices; once they run out, every choice
/// is 0 and [`Input::is_empty`] ends the program.
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// One of `n` choices.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n.max(1)
    }

    /// A length byte then up to that many bytes.
    pub(crate) fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8()).min(self.data.len());
        let (b, rest) = self.data.split_at(n);
        self.data = rest;
        b
    }

    /// One of `items`.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// `runs` random programs of up to `len` bytes from a fixed seed through `driver`: what
/// they reached between them.
#[cfg(test)]
pub(crate) fn reached_by_random_programs(
    driver: fn(&[u8]) -> Reached,
    runs: usize,
    len: usize,
) -> Reached {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut total = Reached::default();
    for _ in 0..runs {
        let n = rng.gen_range(0..len);
        let program: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
        total += driver(&program);
    }
    total
}
