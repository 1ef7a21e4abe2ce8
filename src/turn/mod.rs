//! TURN (RFC 8656): channel data, and later the server and client cores.

pub mod client;
