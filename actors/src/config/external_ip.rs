//! `external-ip` values: coturn's `PUBLIC[/PRIVATE]`, `auto` (discovered at start with
//! a STUN Binding to the `external-ip-stun` servers), or `aws`, `gcp`, `azure` (the public
//! IPv4 address asked of the cloud's instance metadata service at start); see
//! [`crate::external_ip`].
//!
//! In TOML, `external-ip` is one string (`"203.0.113.7"`) or an array of them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use floe::turn::server::ExternalMapping;
use serde::{Deserialize, Serialize};

/// One `external-ip` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[non_exhaustive]
pub enum ExternalIp {
    /// `PUBLIC[/PRIVATE]`: advertise PUBLIC for the relays bound on PRIVATE, or for every
    /// relay of PUBLIC's family that no mapping names.
    Map(ExternalMapping),
    /// `auto`: for each relay address no mapping covers, the public address a STUN
    /// server sees it as, asked once at start.
    Auto,
    /// `aws`, `gcp`, `azure`: the instance's public IPv4 address, asked once at start of
    /// the cloud's metadata service, advertised as `PUBLIC` (the IPv4 default).
    Cloud(Cloud),
}

/// A cloud whose instance metadata service `external-ip` may ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cloud {
    /// Amazon EC2, IMDSv2.
    Aws,
    /// Google Compute Engine.
    Gcp,
    /// Azure virtual machines (IMDS).
    Azure,
}

impl Cloud {
    /// Every cloud, in the order the docs name them.
    pub const ALL: [Cloud; 3] = [Cloud::Aws, Cloud::Gcp, Cloud::Azure];

    /// `aws`, `gcp`, `azure`: the `external-ip` value.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Gcp => "gcp",
            Cloud::Azure => "azure",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl ExternalIp {
    /// `PUBLIC` (no private address).
    pub fn public(ip: IpAddr) -> Self {
        ExternalIp::Map(ExternalMapping {
            public: ip,
            private: None,
        })
    }

    /// Whether the value is discovered at start (`auto`, `aws`, `gcp`, `azure`) rather
    /// than given.
    pub fn is_discovered(&self) -> bool {
        matches!(self, ExternalIp::Auto | ExternalIp::Cloud(_))
    }
}

/// Why an `external-ip` value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not PUBLIC, PUBLIC/PRIVATE (IP addresses), auto, aws, gcp or azure")]
pub struct ExternalIpError(String);

impl FromStr for ExternalIp {
    type Err = ExternalIpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ExternalIpError(s.to_owned());
        if s.eq_ignore_ascii_case("auto") {
            return Ok(ExternalIp::Auto);
        }
        if let Some(cloud) = Cloud::ALL
            .into_iter()
            .find(|c| s.eq_ignore_ascii_case(c.name()))
        {
            return Ok(ExternalIp::Cloud(cloud));
        }
        let (public, private) = match s.split_once('/') {
            Some((public, private)) => (public, Some(private)),
            None => (s, None),
        };
        let public = public.trim().parse().map_err(|_| bad())?;
        let private = match private {
            Some(p) => Some(p.trim().parse().map_err(|_| bad())?),
            None => None,
        };
        Ok(ExternalIp::Map(ExternalMapping { public, private }))
    }
}

impl fmt::Display for ExternalIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExternalIp::Map(m) => m.fmt(f),
            ExternalIp::Auto => f.write_str("auto"),
            ExternalIp::Cloud(c) => c.fmt(f),
        }
    }
}

impl TryFrom<String> for ExternalIp {
    type Error = ExternalIpError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ExternalIp> for String {
    fn from(e: ExternalIp) -> String {
        e.to_string()
    }
}

/// A list that TOML may also give as one value (`external-ip = "203.0.113.7"`, as
/// configs written before the key took several); each value's own error is kept.
pub(super) mod one_or_many {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<T: Serialize, S: Serializer>(
        list: &[T],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        list.serialize(s)
    }

    pub(crate) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        struct OneOrMany<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrMany<T> {
            type Value = Vec<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<T>, E> {
                T::deserialize(de::value::StrDeserializer::<E>::new(s)).map(|v| vec![v])
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let mut list = Vec::new();
                while let Some(v) = seq.next_element()? {
                    list.push(v);
                }
                Ok(list)
            }
        }
        d.deserialize_any(OneOrMany(PhantomData))
    }
}

/// Whether `s` looks like `HOST:PORT` (a name or an IP, `[v6]:port`); resolved when used.
pub(super) fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && port.parse::<u16>().is_ok_and(|p| p != 0)
                && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_coturn_writes_them() {
        let m = |s: &str| match s.parse::<ExternalIp>().unwrap() {
            ExternalIp::Map(m) => (m.public.to_string(), m.private.map(|p| p.to_string())),
            other => panic!("{s} is {other:?}, not a mapping"),
        };
        assert_eq!(m("203.0.113.7"), ("203.0.113.7".into(), None));
        assert_eq!(
            m("203.0.113.7/10.0.0.7"),
            ("203.0.113.7".into(), Some("10.0.0.7".into()))
        );
        assert_eq!(
            m("2001:db8:ff::7/2001:db8::7"),
            ("2001:db8:ff::7".into(), Some("2001:db8::7".into()))
        );
        assert_eq!("auto".parse::<ExternalIp>(), Ok(ExternalIp::Auto));
        assert_eq!("AUTO".parse::<ExternalIp>(), Ok(ExternalIp::Auto));
        assert_eq!("aws".parse(), Ok(ExternalIp::Cloud(Cloud::Aws)));
        assert_eq!("GCP".parse(), Ok(ExternalIp::Cloud(Cloud::Gcp)));
        assert_eq!("azure".parse(), Ok(ExternalIp::Cloud(Cloud::Azure)));
        for bad in [
            "",
            "203.0.113.7/",
            "/10.0.0.7",
            "example.org",
            "203.0.113.7/24",
            "ec2",
            "aws/10.0.0.7",
        ] {
            let err = bad.parse::<ExternalIp>().unwrap_err().to_string();
            assert!(err.contains("PUBLIC/PRIVATE"), "{bad}: {err}");
            assert!(err.contains("auto, aws, gcp or azure"), "{bad}: {err}");
        }
        for s in [
            "203.0.113.7",
            "203.0.113.7/10.0.0.7",
            "auto",
            "aws",
            "gcp",
            "azure",
        ] {
            assert_eq!(s.parse::<ExternalIp>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn stun_servers_are_host_and_port() {
        for ok in ["127.0.0.1:3478", "stun.example.org:3478", "[::1]:3478"] {
            assert!(is_host_port(ok), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "::1:3478",
            ":3478",
            "host:0",
            "host:x",
            "[::1]",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }
}
