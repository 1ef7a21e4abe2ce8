//! The seed's TURN server sample, in code: STUN and TURN on port 3478 (UDP and TCP),
//! STUN Binding without authentication, TURN with long-term credentials answered by
//! the application's own authorization handler (the seed's `OnSTUNRequestAuthorization`),
//! and the relay IP taken from the configuration. It prints the server's events and
//! stops cleanly on Ctrl-C.
//!
//! ```text
//! cargo run --example turn_server -- --listen 127.0.0.1:3478 --allow-loopback-peers --user alice:wonderland
//! turnutils_peer -L 127.0.0.1 -p 3480 &
//! turnutils_uclient -u alice -w wonderland -e 127.0.0.1 -r 3480 -n 10 -c 127.0.0.1
//! ```
//!
//! (`-c`: no RTCP allocations; their EVEN-PORT reservations are per thread for now.)
//!
//! Without `--user`, one user with a random password is made up and printed.
//! `--config FILE` reads the settings of `floe serve` (TOML, see the README) first;
//! `relay-ip` there, or `--relay-ip`, is where relayed addresses are bound.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use clap::Parser;
use floe::turn::server::{AuthRequest, Authenticator, Authorization, Secret};
use floe_actors::config::{ServeConfig, UserCredential};
use floe_actors::metrics::Metrics;
use floe_actors::turn::{TurnEvent, TurnServer};
use rand::distributions::{Alphanumeric, DistString};

/// The seed's TURN server sample.
#[derive(Debug, Parser)]
struct Args {
    /// Address to serve on over UDP and TCP (repeatable) [default: 0.0.0.0:3478]
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// IP the relay sockets bind to [default: relay-ip from --config, else the listen IP]
    #[arg(long, value_name = "IP")]
    relay_ip: Option<IpAddr>,
    /// Realm of the long-term credentials [default: floe]
    #[arg(long, value_name = "R")]
    realm: Option<String>,
    /// A user the authorization handler knows (repeatable)
    #[arg(long = "user", value_name = "NAME:PASS")]
    users: Vec<UserCredential>,
    /// Allow relaying to loopback peers, to try the server on one machine
    #[arg(long)]
    allow_loopback_peers: bool,
    /// Settings of `floe serve` in TOML, read before the flags above
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The application's own user lookup: asked for the password of every authenticated
/// request (Allocate, Refresh, CreatePermission, ChannelBind). A real application
/// would look in its database; a shared `RwLock` lets it add and remove users while
/// the server runs.
#[derive(Default)]
struct Authorizations {
    users: RwLock<HashMap<String, String>>,
}

impl Authorizations {
    fn add(&self, name: &str, password: &str) {
        self.users
            .write()
            .expect("not poisoned")
            .insert(name.to_owned(), password.to_owned());
    }
}

impl Authenticator for Authorizations {
    fn authorize(&self, request: &AuthRequest<'_>) -> Authorization {
        match self
            .users
            .read()
            .expect("not poisoned")
            .get(request.username)
        {
            // The server derives the long-term key (MD5 or SHA-256, RFC 8489 §9.2.2)
            // from the password and checks the request's integrity with it.
            Some(password) => Authorization::Allow(vec![Secret::Password(password.clone())]),
            // Unknown user: the client gets 401, and an AuthFailed event is published.
            None => Authorization::Reject,
        }
    }
}

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => ServeConfig::from_file(path)?,
        None => ServeConfig::default(),
    };
    if !args.listen.is_empty() {
        config.listen = args.listen.clone();
    }
    if args.relay_ip.is_some() {
        config.relay_ip = args.relay_ip;
    }
    if let Some(realm) = &args.realm {
        config.realm = realm.clone();
    }
    config.allow_loopback_peers |= args.allow_loopback_peers;
    config.validate()?;

    let authorizations = Arc::new(Authorizations::default());
    for user in &args.users {
        authorizations.add(&user.name, user.password.expose());
    }
    if args.users.is_empty() && !config.has_credentials() {
        let password = Alphanumeric.sample_string(&mut rand::rngs::OsRng, 16);
        authorizations.add("demo", &password);
        println!("TURN user for this run: demo / {password}");
    }

    let server =
        TurnServer::start_with_authenticator(&config, Metrics::new(), authorizations.clone())
            .await?;
    for addr in server.local_addrs() {
        println!(
            "STUN and TURN on {addr} (UDP and TCP), realm {}",
            config.realm
        );
    }
    for addr in server.tls_local_addrs() {
        println!("STUN and TURN over TLS on {addr}");
    }
    match config.relay_ip {
        Some(ip) => println!("relaying from {ip}"),
        None => println!("relaying from the listen IP (set relay-ip to choose)"),
    }
    println!("Ctrl-C to stop");

    let mut events = server.events();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => match event {
                Some(event) => print_event(&event),
                None => break,
            },
        }
    }
    let deleted = server.shutdown().await;
    println!("stopped; {deleted} allocations deleted");
    Ok(())
}

fn print_event(event: &TurnEvent) {
    match event {
        TurnEvent::AllocationCreated {
            five_tuple,
            username,
            relayed,
            lifetime,
        } => println!(
            "allocation created: user {username}, client {} over {:?}, relayed {relayed:?}, lifetime {}s",
            five_tuple.client,
            five_tuple.transport,
            lifetime.as_secs()
        ),
        TurnEvent::Refreshed {
            five_tuple,
            lifetime,
        } => println!(
            "allocation refreshed: client {}, lifetime {}s",
            five_tuple.client,
            lifetime.as_secs()
        ),
        TurnEvent::Deleted { five_tuple } => {
            println!("allocation deleted: client {}", five_tuple.client)
        }
        TurnEvent::Expired { five_tuple } => {
            println!("allocation expired: client {}", five_tuple.client)
        }
        TurnEvent::PermissionCreated { five_tuple, peer } => {
            println!("permission: client {} may reach {peer}", five_tuple.client)
        }
        TurnEvent::ChannelBound {
            five_tuple,
            peer,
            channel,
        } => println!(
            "channel {channel:#06x}: client {} <-> {peer}",
            five_tuple.client
        ),
        TurnEvent::AuthFailed {
            client,
            username,
            code,
        } => println!(
            "authentication failed ({code}): client {client}, user {}",
            username.as_deref().unwrap_or("(none)")
        ),
        other => println!("{other:?}"),
    }
}
