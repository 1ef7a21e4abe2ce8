//! `sendmmsg(2)` through `nix`: datagrams to many destinations in one system call.
//!
//! `quinn-udp` sends one destination per call (with GSO for runs). A relay thread answers
//! many clients per batch, so one `sendmsg` each would cost a system call per datagram.
//! Single datagrams that let the kernel choose the source address go here, up to
//! [`SEND_GROUP`](super::SEND_GROUP) per call; GSO runs and sends with a chosen source
//! address (packet info) still go through `quinn-udp`.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

use super::SEND_GROUP;

thread_local! {
    /// The message headers of one call, kept per thread (they hold raw pointers, so they
    /// are neither `Send` nor reusable across threads).
    static HEADERS: RefCell<MultiHeaders<SockaddrStorage>> =
        RefCell::new(MultiHeaders::preallocate(SEND_GROUP, None));
}

/// Sends `datagrams` (destination already in the socket's family, payload) with one
/// `sendmmsg`. Returns how many the kernel took, counted from the first; an error means
/// the first one failed (the kernel reports an error on a later one by stopping before it).
pub(super) fn send_many(
    socket: &impl AsRawFd,
    datagrams: &[(SocketAddr, &[u8])],
) -> io::Result<usize> {
    let datagrams = &datagrams[..datagrams.len().min(SEND_GROUP)];
    if datagrams.is_empty() {
        return Ok(0);
    }
    let mut addrs = [None::<SockaddrStorage>; SEND_GROUP];
    let mut iovs: [[IoSlice<'_>; 1]; SEND_GROUP] = [[IoSlice::new(&[])]; SEND_GROUP];
    for (i, (destination, payload)) in datagrams.iter().enumerate() {
        addrs[i] = Some(SockaddrStorage::from(*destination));
        iovs[i] = [IoSlice::new(payload)];
    }
    let n = datagrams.len();
    HEADERS.with(|headers| {
        let mut headers = headers.borrow_mut();
        let no_cmsgs: [nix::sys::socket::ControlMessage<'_>; 0] = [];
        sendmmsg(
            socket.as_raw_fd(),
            &mut headers,
            iovs[..n].iter(),
            &addrs[..n],
            no_cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )
        .map(|results| results.count())
        .map_err(io::Error::from)
    })
}
