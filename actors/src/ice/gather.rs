//! Host addresses to gather on (RFC 8445 §5.1.1.1): every interface that is up, through
//! [`if_addrs`], filtered by a [`GatherConfig`].

use std::net::IpAddr;

use if_addrs::IfOperStatus;

use super::config::GatherConfig;

/// The local addresses host candidates are gathered on: the addresses of interfaces
/// that are up (Linux reports loopback's state as unknown, which counts as up), that
/// `config` allows, each once, IPv4 first.
pub fn host_addresses(config: &GatherConfig) -> std::io::Result<Vec<IpAddr>> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()?
        .into_iter()
        .filter(|i| {
            !matches!(
                i.oper_status,
                IfOperStatus::Down | IfOperStatus::NotPresent | IfOperStatus::LowerLayerDown
            )
        })
        .map(|i| i.ip())
        .filter(|ip| config.allows(*ip))
        .collect();
    let mut seen = Vec::with_capacity(ips.len());
    ips.retain(|ip| {
        let new = !seen.contains(ip);
        seen.push(*ip);
        new
    });
    ips.sort_by_key(|ip| ip.is_ipv6());
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_finds_loopback_and_nothing_else() {
        let ips = host_addresses(&GatherConfig::loopback_only()).unwrap();
        assert!(
            ips.contains(&"127.0.0.1".parse::<IpAddr>().unwrap()),
            "{ips:?}"
        );
        assert!(ips.iter().all(IpAddr::is_loopback), "{ips:?}");
    }

    #[test]
    fn the_default_leaves_loopback_out() {
        let ips = host_addresses(&GatherConfig::default()).unwrap();
        assert!(!ips.iter().any(IpAddr::is_loopback), "{ips:?}");
    }
}
