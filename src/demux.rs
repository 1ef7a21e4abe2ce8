//! RFC 7983 §7 (updated by RFC 9443): telling the protocols that share one UDP port apart
//! by the first byte of each datagram.
//!
//! ```text
//!   [0..3]     STUN            [64..79]    TURN ChannelData
//!   [16..19]   ZRTP            [80..127]   QUIC (RFC 9443)
//!   [20..63]   DTLS            [128..191]  RTP / RTCP
//!   [4..15]    unassigned      [192..255]  QUIC (RFC 9443)
//! ```
//!
//! This module is the one place floe tells them apart: the ICE agent uses [`is_stun`] to
//! separate its checks from application data on a candidate's socket.

use crate::stun::MAGIC_COOKIE;

/// RFC 7983 §7 / RFC 9443: what a datagram carries, judged by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// RFC 7983 §7: 0..=3, a STUN message (RFC 8489).
    Stun,
    /// RFC 7983 §7: 16..=19, ZRTP (RFC 6189).
    ZRtp,
    /// RFC 7983 §7: 20..=63, DTLS (RFC 6347, RFC 9147).
    Dtls,
    /// RFC 7983 §7: 64..=79, TURN ChannelData (RFC 8656 §12.4).
    ChannelData,
    /// RFC 9443: 80..=127 and 192..=255, QUIC. A QUIC short header may also start with
    /// 64..=79; that range stays TURN ChannelData, as RFC 9443 keeps it.
    Quic,
    /// RFC 7983 §7: 128..=191, RTP or RTCP (RFC 3550), SRTP or SRTCP.
    Rtp,
    /// RFC 7983 §7: 4..=15 (unassigned), or an empty datagram: drop it.
    Unknown,
}

/// RFC 7983 §7 / RFC 9443: classifies a datagram by its first byte.
#[inline]
pub const fn classify(first_byte: u8) -> PacketKind {
    match first_byte {
        0..=3 => PacketKind::Stun,
        4..=15 => PacketKind::Unknown,
        16..=19 => PacketKind::ZRtp,
        20..=63 => PacketKind::Dtls,
        64..=79 => PacketKind::ChannelData,
        80..=127 | 192..=255 => PacketKind::Quic,
        128..=191 => PacketKind::Rtp,
    }
}

/// RFC 7983 §7 / RFC 9443: classifies a datagram; an empty one is [`PacketKind::Unknown`].
#[inline]
pub const fn classify_packet(packet: &[u8]) -> PacketKind {
    match packet {
        [first, ..] => classify(*first),
        [] => PacketKind::Unknown,
    }
}

/// RFC 7983 §7 and RFC 8489 §5: whether a datagram is a STUN message: its first byte is
/// 0..=3, it holds at least the 20-byte header, and bytes 4..8 are the magic cookie
/// (which rules out RFC 3489 messages and most stray data).
#[inline]
pub fn is_stun(packet: &[u8]) -> bool {
    classify_packet(packet) == PacketKind::Stun
        && packet.len() >= 20
        && packet[4..8] == MAGIC_COOKIE.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(b: u8) -> PacketKind {
        // Straight from the RFC 7983 §7 / RFC 9443 table, written as ranges.
        if b <= 3 {
            PacketKind::Stun
        } else if (16..=19).contains(&b) {
            PacketKind::ZRtp
        } else if (20..=63).contains(&b) {
            PacketKind::Dtls
        } else if (64..=79).contains(&b) {
            PacketKind::ChannelData
        } else if (128..=191).contains(&b) {
            PacketKind::Rtp
        } else if b >= 80 {
            PacketKind::Quic
        } else {
            PacketKind::Unknown
        }
    }

    #[test]
    fn every_first_byte() {
        for b in 0..=u8::MAX {
            assert_eq!(classify(b), expected(b), "first byte {b}");
            assert_eq!(classify_packet(&[b, 0xAA, 0xBB]), expected(b));
        }
    }

    #[test]
    fn boundaries() {
        use PacketKind::*;
        let cases = [
            (0, Stun),
            (3, Stun),
            (4, Unknown),
            (15, Unknown),
            (16, ZRtp),
            (19, ZRtp),
            (20, Dtls),
            (63, Dtls),
            (64, ChannelData),
            (79, ChannelData),
            (80, Quic),
            (127, Quic),
            (128, Rtp),
            (191, Rtp),
            (192, Quic),
            (255, Quic),
        ];
        for (b, kind) in cases {
            assert_eq!(classify(b), kind, "first byte {b}");
        }
    }

    #[test]
    fn real_headers() {
        // STUN Binding request, ChannelData on 0x4000, DTLS handshake, RTP v2.
        assert_eq!(classify_packet(&[0x00, 0x01, 0, 0]), PacketKind::Stun);
        assert_eq!(
            classify_packet(&[0x40, 0x00, 0, 0]),
            PacketKind::ChannelData
        );
        assert_eq!(
            classify_packet(&[0x4F, 0xFF, 0, 0]),
            PacketKind::ChannelData
        );
        assert_eq!(classify_packet(&[22, 0xFE, 0xFD]), PacketKind::Dtls);
        assert_eq!(classify_packet(&[0x80, 0x60]), PacketKind::Rtp);
    }

    #[test]
    fn stun_needs_the_header_and_the_magic_cookie() {
        let mut binding = [0u8; 20];
        binding[1] = 0x01;
        binding[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert!(is_stun(&binding));
        assert!(!is_stun(&binding[..19]), "shorter than the header");
        let mut no_cookie = binding;
        no_cookie[4] ^= 1;
        assert!(!is_stun(&no_cookie), "RFC 3489 or stray data");
        let mut rtp = binding;
        rtp[0] = 0x80;
        assert!(!is_stun(&rtp));
        assert!(!is_stun(b"ping"));
    }

    #[test]
    fn empty_is_unknown() {
        assert_eq!(classify_packet(&[]), PacketKind::Unknown);
    }
}
