//! Continual gathering (libwebrtc's GATHER_CONTINUALLY): the host's addresses are
//! listed again every [`GatherConfig::continual`](crate::ice::GatherConfig::continual);
//! the actor binds and signals for a new address and tells the core of a gone one. The
//! rules (what goes with a removed candidate, renomination) are the core's
//! ([`floe::ice::Agent::remove_local_candidates`]).

use std::net::IpAddr;
use std::time::Instant;

use actix::{AsyncContext, Context};

use super::IceAgent;
use crate::ice::gather::host_addresses;

impl IceAgent {
    /// One poll of the interfaces: new addresses gathered on, gone ones removed.
    pub(super) fn poll_interfaces(&mut self, ctx: &mut Context<Self>) {
        let ips = match host_addresses(&self.config.gather) {
            Ok(ips) => ips,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the network interfaces");
                return;
            }
        };
        let now = Instant::now();
        let gone: Vec<IpAddr> = self
            .gathered_ips
            .iter()
            .copied()
            .filter(|ip| !ips.contains(ip))
            .collect();
        for ip in gone {
            tracing::debug!(%ip, "address gone: its candidates are removed");
            for i in 0..self.sockets.len() {
                let s = &mut self.sockets[i];
                if s.addr.ip() != ip || s.gone {
                    continue;
                }
                s.gone = true;
                ctx.cancel_future(s.reader);
                let base = s.addr;
                self.core.remove_local_candidates(now, base);
            }
            self.gathered_ips.retain(|g| *g != ip);
        }
        let components = self.components();
        for ip in ips {
            if self.gathered_ips.contains(&ip) {
                continue;
            }
            tracing::debug!(%ip, "new address: gathering on it");
            self.gathered_ips.push(ip);
            for &(stream, component) in &components {
                // TCP candidates are gathered at the start only.
                if !self.binds_udp_host(stream, component) {
                    continue;
                }
                if let Some(i) = self.bind_host(ctx, stream, component, ip) {
                    self.start_bindings(now, i);
                }
            }
        }
        self.drive(ctx);
    }
}
