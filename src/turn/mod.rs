//! TURN (RFC 8656): ChannelData framing, the server core and the client core.

pub mod channel_data;
pub mod client;
mod error;
pub mod server;

pub use channel_data::{ChannelData, ChannelNumber};
pub use error::TurnError;
