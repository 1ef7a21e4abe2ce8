//! `TurnClient`: one client session with a STUN/TURN server, as an actor.
//!
//! A thin driver of the sans-IO [`floe::turn::client::Client`]: it owns the socket (a
//! [`BatchSocket`](crate::udp::BatchSocket) for UDP, or a TCP stream, optionally wrapped in TLS, cut into messages
//! with [`StreamFramer`](floe::framing::StreamFramer)) and one timer, re-armed from the core's `poll_timeout`. Commands
//! are typed messages ([`Allocate`], [`Refresh`], [`CreatePermission`], [`ChannelBind`],
//! [`SendTo`], [`Binding`], [`Close`]); what the server answers comes back as
//! [`TurnClientEvent`]s through [`Subscribe`](crate::events::Subscribe) or [`TurnClientHandle::events`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), floe_actors::turn::TurnClientError> {
//! use floe_actors::turn::client::ClientEvent;
//! use floe_actors::turn::{TurnClient, TurnClientConfig, TurnClientEvent};
//!
//! let config = TurnClientConfig::new("127.0.0.1:3478".parse().unwrap(), "bob", "secret");
//! let client = TurnClient::connect(config).await?;
//! let mut events = client.events();
//! client.allocate().await?;
//! while let Some(event) = events.recv().await {
//!     if let TurnClientEvent::Session(ClientEvent::Allocated { relayed, .. }) = event {
//!         println!("relayed address: {}", relayed[0]);
//!         break;
//!     }
//! }
//! client.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! The session's events are the core's [`ClientEvent`]s, passed on as they are inside
//! [`TurnClientEvent::Session`]; the actor adds only what it alone knows: a lost connection
//! and its own end. Likewise [`TurnClientConfig`] embeds the core's [`ClientConfig`].
//!
//! [`command`] is `floe turn`, a TURN client on the command line built on this actor.

mod actor;
pub mod command;
mod config;
mod event;
mod handle;
mod messages;
mod tls;
mod transport;

pub use actor::TurnClient;
pub use config::{TlsOptions, TlsRoots, TurnClientConfig};
pub use event::{TurnClientError, TurnClientEvent};
pub use floe::turn::client::{ClientConfig, ClientError, ClientEvent, ClientState};
pub use handle::{stun_binding, TurnClientHandle};
pub use messages::{Allocate, Binding, ChannelBind, Close, CreatePermission, Refresh, SendTo};
pub use tls::AcceptAnyCertificate;
