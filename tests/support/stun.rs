//! A STUN Binding written by hand (RFC 8489 §5, §14.2), independent of floe's codec, to
//! tell when a server is up and what it says our address is.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::Child;
use std::time::{Duration, Instant};

const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const MAPPED_ADDRESS: u16 = 0x0001;
const RETRY_INTERVAL: Duration = Duration::from_millis(100);

fn transaction_id() -> [u8; 12] {
    let mut id = [0u8; 12];
    for chunk in id.chunks_mut(4) {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0);
        chunk.copy_from_slice(&h.finish().to_be_bytes()[..4]);
    }
    id
}

/// The 20-byte header of a Binding request: type, length 0, magic cookie, transaction id.
fn binding_request(id: &[u8; 12]) -> [u8; 20] {
    let mut msg = [0u8; 20];
    msg[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    msg[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    msg[8..20].copy_from_slice(id);
    msg
}

/// The address in a Binding success response: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS.
fn mapped_address(msg: &[u8], id: &[u8; 12]) -> Option<SocketAddr> {
    let length = u16::from_be_bytes([msg[2], msg[3]]) as usize;
    let body = msg.get(20..20 + length)?;
    let mut mapped = None;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let value = body.get(at + 4..at + 4 + len)?;
        if kind == XOR_MAPPED_ADDRESS || kind == MAPPED_ADDRESS {
            let xor = kind == XOR_MAPPED_ADDRESS;
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            key[4..].copy_from_slice(id);
            let port_bits = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]);
            let port = if xor { port_bits ^ 0x2112 } else { port_bits };
            let ip = match (value.get(1)?, len) {
                (0x01, 8) => {
                    let mut b = [0u8; 4];
                    for i in 0..4 {
                        b[i] = value[4 + i] ^ if xor { key[i] } else { 0 };
                    }
                    IpAddr::V4(Ipv4Addr::from(b))
                }
                (0x02, 20) => {
                    let mut b = [0u8; 16];
                    for i in 0..16 {
                        b[i] = value[4 + i] ^ if xor { key[i] } else { 0 };
                    }
                    IpAddr::V6(Ipv6Addr::from(b))
                }
                _ => return None,
            };
            let addr = SocketAddr::new(ip, port);
            if xor {
                return Some(addr);
            }
            mapped = Some(addr);
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    mapped
}

/// Sends Binding requests to `server` over UDP (again every 100 ms) until one is answered
/// or `timeout` passes. `Ok(Some(addr))` is the reflexive address of a success response,
/// `Ok(None)` an answer without one (an error response, say): the server is up either way.
pub fn stun_binding(server: SocketAddr, timeout: Duration) -> Result<Option<SocketAddr>, String> {
    probe(server, timeout, None)
}

/// Waits until `server` answers a STUN Binding over UDP, for up to `timeout`. With
/// `child`, gives up at once if that process exits (it is the server, and it failed).
pub fn wait_stun_ready(
    server: SocketAddr,
    timeout: Duration,
    child: Option<&mut Child>,
) -> Result<Duration, String> {
    let start = Instant::now();
    probe(server, timeout, child).map(|_| start.elapsed())
}

fn probe(
    server: SocketAddr,
    timeout: Duration,
    mut child: Option<&mut Child>,
) -> Result<Option<SocketAddr>, String> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::LOCALHOST, 0).into()
    } else {
        (Ipv6Addr::LOCALHOST, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(|e| format!("binding {local}: {e}"))?;
    socket
        .set_read_timeout(Some(RETRY_INTERVAL))
        .map_err(|e| e.to_string())?;
    let id = transaction_id();
    let request = binding_request(&id);
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        if let Some(child) = child.as_deref_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the server exited ({status}) before answering"));
            }
        }
        // Errors (ECONNREFUSED from an earlier ICMP, say) only mean "not yet".
        let _ = socket.send_to(&request, server);
        let until = Instant::now() + RETRY_INTERVAL;
        while Instant::now() < until {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) if from == server && n >= 20 && buf[8..20] == id => {
                    let kind = u16::from_be_bytes([buf[0], buf[1]]);
                    let answer = if kind == BINDING_SUCCESS {
                        mapped_address(&buf[..n], &id)
                    } else {
                        None
                    };
                    return Ok(answer);
                }
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(_) => {
                    // Never spin: wait out the interval before sending again.
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    break;
                }
            }
        }
    }
    Err(format!(
        "no answer to a STUN Binding from {server} within {timeout:?}"
    ))
}
