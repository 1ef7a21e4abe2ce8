//! The seed's TURN client sample, on floe's `TurnClient` actor.
//!
//! Allocates a relayed address on `--server`, prints it, sends `hello` to `--peer` through
//! the relay (over a channel with `--channel`, as a Send indication otherwise), prints what
//! comes back, refreshes the allocation, deletes it, and exits 0 only if the echo came back.
//!
//! ```text
//! turnutils_peer -L 127.0.0.1 -p 3480 &
//! cargo run --example turn_client -- --server 127.0.0.1:3478 --user bob --password secret \
//!     --peer 127.0.0.1:3480 [--tcp] [--channel]
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use floe::Transport;
use floe_actors::events::EventStream;
use floe_actors::turn::client::ClientEvent;
use floe_actors::turn::{TurnClient, TurnClientConfig, TurnClientEvent};

/// Allocate on a TURN server, echo `hello` off a peer through the relay, refresh, delete.
#[derive(Debug, Parser)]
struct Args {
    /// The TURN server
    #[arg(long, value_name = "HOST:PORT")]
    server: String,
    /// Long-term credential username
    #[arg(long, value_name = "U")]
    user: String,
    /// Long-term credential password
    #[arg(long, value_name = "P")]
    password: String,
    /// The peer to send `hello` to (it should echo it)
    #[arg(long, value_name = "ADDR:PORT")]
    peer: SocketAddr,
    /// TCP to the server instead of UDP
    #[arg(long)]
    tcp: bool,
    /// Bind a channel to the peer instead of sending Send indications
    #[arg(long)]
    channel: bool,
    /// How long to wait for the echo, in seconds
    #[arg(long, value_name = "S", default_value_t = 5)]
    echo_timeout: u64,
}

/// Longer than any transaction (39.5 s with RFC 8489's timers): only catches hangs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let args = Args::parse();
    match actix_rt::System::new().block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("turn_client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for the event `pick` accepts; an error or the end of the client fails.
async fn wait_for<T>(
    events: &mut EventStream<TurnClientEvent>,
    timeout: Duration,
    what: &str,
    mut pick: impl FnMut(&TurnClientEvent) -> Option<T>,
) -> Result<Option<T>, String> {
    let wait = async {
        loop {
            match events.recv().await {
                Some(e) => {
                    if let Some(t) = pick(&e) {
                        return Ok(t);
                    }
                    if let TurnClientEvent::Session(ClientEvent::Error { code, reason, .. }) = e {
                        let code = code.map(|c| format!("{c} ")).unwrap_or_default();
                        return Err(format!("{what}: {code}{reason}"));
                    }
                    if let TurnClientEvent::ConnectionLost { reason } = e {
                        return Err(format!("{what}: {reason}"));
                    }
                    if e == TurnClientEvent::Closed {
                        return Err(format!("{what}: the client closed"));
                    }
                }
                None => return Err(format!("{what}: the client is gone")),
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r.map(Some),
        Err(_) => Ok(None),
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let server = args
        .server
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", args.server))?
        .next()
        .ok_or_else(|| format!("{} has no address", args.server))?;
    let mut config = TurnClientConfig::new(server, &args.user, &args.password);
    if args.tcp {
        config.session.transport = Transport::Tcp;
    }
    let client = TurnClient::connect(config)
        .await
        .map_err(|e| e.to_string())?;
    let mut events = client.events();
    let hang = |what: &str| format!("{what}: no answer in {} s", REQUEST_TIMEOUT.as_secs());

    client.allocate().await.map_err(|e| e.to_string())?;
    let relayed = wait_for(&mut events, REQUEST_TIMEOUT, "allocate", |e| match e {
        TurnClientEvent::Session(ClientEvent::Allocated { relayed, .. }) => Some(relayed.clone()),
        _ => None,
    })
    .await?
    .ok_or_else(|| hang("allocate"))?;
    for r in &relayed {
        println!("relayed address: {r}");
    }

    let peer = args.peer;
    if args.channel {
        let channel = client.channel_bind(peer).await.map_err(|e| e.to_string())?;
        wait_for(&mut events, REQUEST_TIMEOUT, "channel bind", |e| {
            matches!(
                e,
                TurnClientEvent::Session(ClientEvent::ChannelBound { .. })
            )
            .then_some(())
        })
        .await?
        .ok_or_else(|| hang("channel bind"))?;
        println!("channel {channel:#06x} bound to {peer}");
    } else {
        client
            .create_permission(vec![peer.ip()])
            .await
            .map_err(|e| e.to_string())?;
        wait_for(&mut events, REQUEST_TIMEOUT, "create permission", |e| {
            matches!(
                e,
                TurnClientEvent::Session(ClientEvent::PermissionCreated { .. })
            )
            .then_some(())
        })
        .await?
        .ok_or_else(|| hang("create permission"))?;
        println!("permission installed for {}", peer.ip());
    }

    client
        .send_to(peer, &b"hello"[..])
        .await
        .map_err(|e| e.to_string())?;
    println!("sent hello to {peer}");
    let echo_timeout = Duration::from_secs(args.echo_timeout);
    let echo = wait_for(&mut events, echo_timeout, "echo", |e| match e {
        TurnClientEvent::Session(ClientEvent::Data { peer: from, data }) if *from == peer => {
            Some(data.clone())
        }
        _ => None,
    })
    .await?;
    match &echo {
        Some(bytes) => println!(
            "received from {peer}: {}",
            String::from_utf8_lossy(bytes).escape_debug()
        ),
        None => println!("no echo from {peer} within {} s", echo_timeout.as_secs()),
    }

    client
        .refresh(Duration::from_secs(600))
        .await
        .map_err(|e| e.to_string())?;
    let lifetime = wait_for(&mut events, REQUEST_TIMEOUT, "refresh", |e| match e {
        TurnClientEvent::Session(ClientEvent::Refreshed { lifetime }) => Some(*lifetime),
        _ => None,
    })
    .await?
    .ok_or_else(|| hang("refresh"))?;
    println!("refreshed: lifetime {} s", lifetime.as_secs());

    client
        .refresh(Duration::ZERO)
        .await
        .map_err(|e| e.to_string())?;
    wait_for(&mut events, REQUEST_TIMEOUT, "delete", |e| {
        (*e == TurnClientEvent::Session(ClientEvent::Deleted)).then_some(())
    })
    .await?
    .ok_or_else(|| hang("delete"))?;
    println!("allocation deleted");
    client.close().await;
    Ok(echo.is_some())
}
