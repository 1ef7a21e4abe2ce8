//! Socket options that `quinn-udp` sets for QUIC and floe turns off or toggles, through the
//! safe calls of `socket2` where it has the option, else `nix` and `rustix`.

use std::io;
use std::os::fd::AsFd;

/// Stops the per-datagram control messages `quinn-udp` asks for and floe never reads:
/// receive timestamps (a clock read each), the TOS byte (ECN), and, on a socket bound to
/// one address (`bound_to_one_ip`), packet info (about 5% of a receive). Best effort: a
/// socket that keeps them still works.
pub(super) fn quiet_receive_cmsgs(socket: &impl AsFd, ipv6: bool, bound_to_one_ip: bool) {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        let sock = socket2::SockRef::from(socket);
        let _ = setsockopt(socket, sockopt::ReceiveTimestampns, &false);
        let _ = sock.set_recv_tos_v4(false);
        if ipv6 {
            let _ = sock.set_recv_tclass_v6(false);
        }
        if bound_to_one_ip {
            let _ = setsockopt(socket, sockopt::Ipv4PacketInfo, &false);
            if ipv6 {
                let _ = setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &false);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, ipv6, bound_to_one_ip);
}

/// Turns UDP GRO (which `quinn-udp` turns on) on or off.
pub(super) fn set_gro(socket: &impl AsFd, gro: bool) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        setsockopt(socket, sockopt::UdpGroSegment, &gro)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, gro);
    Ok(())
}

/// Sets or clears DF on what the socket sends. `quinn-udp` sets DF; a relay clears it
/// unless the client asked for DONT-FRAGMENT (RFC 8656 §14).
pub(super) fn set_dont_fragment(
    socket: &impl AsFd,
    ipv4_socket: bool,
    dont_fragment: bool,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        use rustix::net::sockopt::{
            set_ip_mtu_discover, set_ipv6_mtu_discover, Ipv4PathMtuDiscovery as V4,
            Ipv6PathMtuDiscovery as V6,
        };
        // PROBE sets DF and ignores the cached path MTU, as quinn-udp does; DONT clears DF.
        let (v4, v6) = if dont_fragment {
            (V4::PROBE, V6::PROBE)
        } else {
            (V4::DONT, V6::DONT)
        };
        if ipv4_socket {
            set_ip_mtu_discover(socket, v4)?;
        } else {
            // IPv4-mapped traffic on a dual-stack socket follows the IPv4 option.
            let _ = set_ip_mtu_discover(socket, v4);
            set_ipv6_mtu_discover(socket, v6)?;
            setsockopt(socket, sockopt::Ipv6DontFrag, &dont_fragment)?;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, ipv4_socket, dont_fragment);
    Ok(())
}
