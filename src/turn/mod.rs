//! TURN (RFC 8656): ChannelData framing and the server core.

pub mod channel_data;
mod error;
pub mod server;

pub use channel_data::{ChannelData, ChannelNumber};
pub use error::TurnError;
