//! TURN (RFC 8656): channel data, and later the server and client cores.

pub mod channel_data;
mod error;

pub use channel_data::{ChannelData, ChannelNumber};
pub use error::TurnError;
