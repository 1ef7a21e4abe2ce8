//! `external-ip auto`: the public address of each relay address, discovered at start
//! with a STUN Binding (RFC 8489) to the `external-ip-stun` servers, sent from the relay
//! address itself so that the mapping found is the relays' (behind a 1:1 NAT the port
//! differs, the IP is the one peers reach). The Binding is the [`TurnClient`]'s
//! ([`stun_binding`]), over UDP.
//!
//! - Only the relay addresses that no `PUBLIC[/PRIVATE]` mapping covers are asked for,
//!   each from a server of its own family; a relay family without such a server is an
//!   error.
//! - Each relay address tries the servers in order, up to [`ATTEMPTS`] rounds, a second
//!   apart (a round's Binding retransmits over about 2.75 s). When none answers, start-up
//!   fails with the error: floe does not run advertising an address it does not know.
//! - The result is a mapping `PUBLIC/RELAY` per relay address: [`resolve`] returns the
//!   configuration with `auto` replaced by them, for [`TurnServer::start`](crate::turn::TurnServer::start).
//!   It is asked once: a reload does not ask again (`external-ip` is fixed at start);
//!   restart to discover anew.
//!
//! No STUN server is picked for the operator.
//!
//! `external-ip aws|gcp|azure` instead asks the cloud's instance metadata service for the
//! instance's public IPv4 address ([`metadata`]), which becomes the IPv4 `PUBLIC` (every
//! IPv4 relay no `PUBLIC/PRIVATE` mapping names). Only then: `auto` never asks it.
//!
//! [`TurnClient`]: crate::turn::client::TurnClient

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use floe::stun::transaction::TransactionConfig;
use floe::turn::server::ExternalMapping;

use crate::config::{Cloud, ExternalIp, ServeConfig};
use crate::turn::client::{stun_binding, TurnClientConfig};

pub mod metadata;

/// Rounds over the servers (or the metadata service) before discovery gives up.
pub const ATTEMPTS: u32 = 3;
/// Pause between rounds.
const PAUSE: Duration = Duration::from_secs(1);

/// Why `external-ip auto` (or `aws`, `gcp`, `azure`) found no address.
#[derive(Debug, thiserror::Error)]
#[error("external-ip {source_name}: {why}")]
pub struct DiscoveryError {
    /// `auto`, `aws`, ...
    source_name: &'static str,
    why: String,
}

impl DiscoveryError {
    fn auto(why: impl Into<String>) -> Self {
        DiscoveryError {
            source_name: "auto",
            why: why.into(),
        }
    }

    fn cloud(cloud: Cloud, why: impl Into<String>) -> Self {
        DiscoveryError {
            source_name: cloud.name(),
            why: why.into(),
        }
    }
}

/// The Binding's timers: 4 sends at 0, 250, 750 and 1750 ms, then 1 s more (RFC 8489
/// §6.2.1 with Rc = 4, Rm = 4): a server that answers at all answers within that.
fn transaction() -> TransactionConfig {
    TransactionConfig {
        rto: Duration::from_millis(250),
        rc: 4,
        rm: 4,
        ..TransactionConfig::default()
    }
}

/// `config` with `external-ip auto` replaced by a `PUBLIC/RELAY` mapping per relay
/// address that no mapping covers, each discovered with a STUN Binding from that relay
/// address; or with `aws`, `gcp`, `azure` replaced by the IPv4 `PUBLIC` the cloud's
/// metadata service tells. Otherwise `config` as it is. Must run inside an actix System.
pub async fn resolve(config: &ServeConfig) -> Result<ServeConfig, DiscoveryError> {
    let cloud = config.external_ip.iter().find_map(|e| match e {
        ExternalIp::Cloud(c) => Some(*c),
        _ => None,
    });
    if let Some(cloud) = cloud {
        let public = metadata::discover(cloud).await?;
        let mut resolved = config.clone();
        resolved.external_ip.retain(|e| !e.is_discovered());
        resolved.external_ip.push(ExternalIp::public(public.into()));
        resolved
            .external_addresses()
            .map_err(|e| DiscoveryError::cloud(cloud, e.to_string()))?;
        return Ok(resolved);
    }
    if !config.external_ip.contains(&ExternalIp::Auto) {
        return Ok(config.clone());
    }
    let known = config
        .external_addresses()
        .map_err(|e| DiscoveryError::auto(e.to_string()))?;
    let (v4, v6) = crate::turn::relay_ips(config);
    let relays: Vec<IpAddr> = [v4, v6]
        .into_iter()
        .flatten()
        .filter(|r| known.public_for(*r).is_none())
        .collect();
    let servers = stun_servers(&config.external_ip_stun).await;
    let mut resolved = config.clone();
    resolved.external_ip.retain(|e| *e != ExternalIp::Auto);
    if relays.is_empty() {
        tracing::info!("external-ip auto: every relay address has a mapping; nothing to discover");
    }
    for relay in relays {
        let public = discover(relay, &servers).await?;
        if public == relay {
            tracing::info!(%relay, "external-ip auto: the relay address is seen as it is (no NAT)");
        }
        resolved.external_ip.push(ExternalIp::Map(ExternalMapping {
            public,
            private: Some(relay),
        }));
    }
    resolved
        .external_addresses()
        .map_err(|e| DiscoveryError::auto(e.to_string()))?;
    Ok(resolved)
}

/// The addresses of the `external-ip-stun` servers, in order; names that do not resolve
/// are logged and left out.
async fn stun_servers(names: &[String]) -> Vec<(String, SocketAddr)> {
    let mut servers = Vec::new();
    for name in names {
        match tokio::net::lookup_host(name.as_str()).await {
            Ok(addrs) => servers.extend(addrs.map(|a| (name.clone(), a))),
            Err(e) => {
                tracing::warn!(server = %name, error = %e, "external-ip-stun: cannot resolve")
            }
        }
    }
    servers
}

/// The public IP of `relay`: the XOR-MAPPED-ADDRESS a server of its family answers a
/// Binding sent from `relay` with.
async fn discover(
    relay: IpAddr,
    servers: &[(String, SocketAddr)],
) -> Result<IpAddr, DiscoveryError> {
    let family: Vec<&(String, SocketAddr)> = servers
        .iter()
        .filter(|(_, a)| a.is_ipv4() == relay.is_ipv4())
        .collect();
    if family.is_empty() {
        let fam = if relay.is_ipv4() { "IPv4" } else { "IPv6" };
        return Err(DiscoveryError::auto(format!(
            "no --external-ip-stun server with an {fam} address to ask for relay address \
             {relay}; add one, or give its mapping (--external-ip PUBLIC/{relay})"
        )));
    }
    let mut last = String::new();
    for round in 1..=ATTEMPTS {
        for (name, server) in &family {
            let who = if *name == server.to_string() {
                name.clone()
            } else {
                format!("{name} ({server})")
            };
            let mut c = TurnClientConfig::stun(*server);
            c.bind = Some(SocketAddr::new(relay, 0));
            c.session.transaction = transaction();
            match stun_binding(c).await {
                Ok((mapped, _)) if mapped.is_ipv4() == relay.is_ipv4() => {
                    tracing::info!(%relay, public = %mapped.ip(), server = %name, "external-ip auto: discovered");
                    return Ok(mapped.ip());
                }
                Ok((mapped, _)) => {
                    last = format!("{who} answered {mapped}, of the other family");
                }
                Err(e) => last = format!("{who}: {e}"),
            }
            tracing::warn!(%relay, round, "external-ip auto: {last}");
        }
        if round < ATTEMPTS {
            tokio::time::sleep(PAUSE).await;
        }
    }
    Err(DiscoveryError::auto(format!(
        "no STUN server told the public address of relay address {relay} after {ATTEMPTS} \
         attempts (last: {last})"
    )))
}
