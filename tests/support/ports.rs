//! Ports on 127.0.0.1 that parallel tests, in one process or many (cargo test threads,
//! nextest processes, other checkouts on the same machine), never hand out twice.
//!
//! Ports come in blocks of [`PortBlock::SIZE`] in 20000..32000, below Linux's ephemeral
//! range (32768..60999 by default), so the kernel does not hand them to anyone's
//! `bind(0)` either. A block is owned by whoever holds a UDP socket bound to its first
//! port: the kernel arbitrates, and the claim vanishes with its holder, even on SIGKILL.
//! coturn and turnutils_peer bind with SO_REUSEPORT, so a collision with them would go
//! unnoticed; owning the block is what keeps them apart.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::Mutex;

const FIRST: u16 = 20000;
const BLOCKS: u16 = 60;

/// A block of ports owned by this process until dropped: the first port is the lock,
/// the others ([`PortBlock::port`] 1..SIZE) are free for the owner to use.
#[derive(Debug)]
pub struct PortBlock {
    base: u16,
    _lock: UdpSocket,
}

impl PortBlock {
    /// Ports in a block, the lock included.
    pub const SIZE: u16 = 200;

    /// Claims a free block. Panics when all are taken (a leak, or far too many tests).
    pub fn reserve() -> PortBlock {
        // Start at a different block in each process, so processes rarely race.
        let start = (std::process::id() as u16).wrapping_mul(7) % BLOCKS;
        for i in 0..BLOCKS {
            let base = FIRST + ((start + i) % BLOCKS) * Self::SIZE;
            if let Ok(lock) = UdpSocket::bind((Ipv4Addr::LOCALHOST, base)) {
                return PortBlock { base, _lock: lock };
            }
        }
        panic!(
            "all {BLOCKS} test port blocks in {FIRST}..{} are taken",
            FIRST + BLOCKS * Self::SIZE
        );
    }

    /// Port `i` of the block, 1 ≤ i < SIZE (0 is the lock).
    pub fn port(&self, i: u16) -> u16 {
        assert!(
            (1..Self::SIZE).contains(&i),
            "port index {i} outside 1..{}",
            Self::SIZE
        );
        self.base + i
    }

    /// Ports `from..=to` of the block, for a relay port range.
    pub fn range(&self, from: u16, to: u16) -> RangeInclusive<u16> {
        self.port(from)..=self.port(to)
    }
}

/// Whether both a UDP and a TCP socket can bind 127.0.0.1:`port` right now.
pub fn bindable(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    UdpSocket::bind(addr).is_ok() && TcpListener::bind(addr).is_ok()
}

struct Pool {
    /// Blocks used up, kept so their ports stay ours for the life of the process.
    spent: Vec<PortBlock>,
    current: Option<(PortBlock, u16)>,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    spent: Vec::new(),
    current: None,
});

/// `count` consecutive ports, free on 127.0.0.1 for UDP and TCP, never handed out again
/// by this process nor to another that uses these helpers.
fn take(count: u16) -> u16 {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if let Some((block, next)) = pool.current.as_mut() {
            while *next + count <= PortBlock::SIZE {
                let first = block.port(*next);
                *next += count;
                if (first..first + count).all(bindable) {
                    return first;
                }
            }
        }
        if let Some((block, _)) = pool.current.take() {
            pool.spent.push(block);
        }
        pool.current = Some((PortBlock::reserve(), 1));
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP, for a server a test starts.
pub fn free_port() -> u16 {
    take(1)
}

/// A port `p` with `p` and `p + 1` free on 127.0.0.1 for UDP and TCP: turnutils_peer
/// binds both (its RTP and RTCP sockets).
pub fn free_port_pair() -> u16 {
    take(2)
}
