//! Choosing the certificate by the client's SNI (RFC 6066 §3): a rustls
//! [`ResolvesServerCert`] over the loaded pairs, matching the name against each leaf
//! certificate's subjectAltName DNS names with rustls' own (webpki) name check, so
//! wildcards (`*.example.org` covers one label) and case follow RFC 6125 as browsers do.

use std::sync::Arc;

use rustls::client::verify_server_name;
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The certificates of `tls-cert`/`tls-key`, in order: a client's SNI picks the first
/// whose leaf certificate names it; without SNI, or when none does, the first is served.
///
/// webpki checks a name against a certificate but does not list its names, so each
/// handshake tries the certificates in order (a parse of each leaf, microseconds; a
/// server holds a handful).
#[derive(Debug)]
pub struct SniResolver {
    keys: Vec<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// A resolver over `keys`, the first being the default; `None` when empty.
    pub fn new(keys: Vec<Arc<CertifiedKey>>) -> Option<Self> {
        (!keys.is_empty()).then_some(SniResolver { keys })
    }

    /// The certificate for a client that asked for `server_name` (none: the default).
    pub fn choose(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let default = &self.keys[0];
        let Some(name) = server_name.and_then(|n| ServerName::try_from(n).ok()) else {
            return default;
        };
        self.keys
            .iter()
            .find(|key| names(key, &name))
            .unwrap_or(default)
    }
}

/// Whether `key`'s leaf certificate is valid for `name` (its subjectAltName).
fn names(key: &CertifiedKey, name: &ServerName<'_>) -> bool {
    key.cert.first().is_some_and(|leaf| {
        ParsedCertificate::try_from(leaf).is_ok_and(|cert| verify_server_name(&cert, name).is_ok())
    })
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.choose(client_hello.server_name()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(names: &[&str]) -> Arc<CertifiedKey> {
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let ck = rcgen::generate_simple_self_signed(names).unwrap();
        let der =
            rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        Arc::new(CertifiedKey::from_der(vec![ck.cert.der().clone()], der, &provider).unwrap())
    }

    #[test]
    fn the_sni_picks_by_dns_name_and_wildcard_else_the_first() {
        let a = key(&["a.example.test"]);
        let b = key(&["*.b.example.test", "b.example.test"]);
        let r = SniResolver::new(vec![a.clone(), b.clone()]).unwrap();
        let pick = |name: Option<&str>| r.choose(name).clone();
        assert!(Arc::ptr_eq(&pick(Some("a.example.test")), &a));
        assert!(Arc::ptr_eq(&pick(Some("A.Example.TEST")), &a), "case");
        assert!(Arc::ptr_eq(&pick(Some("x.b.example.test")), &b));
        assert!(Arc::ptr_eq(&pick(Some("b.example.test")), &b));
        assert!(
            Arc::ptr_eq(&pick(Some("y.x.b.example.test")), &a),
            "a wildcard covers one label only"
        );
        assert!(Arc::ptr_eq(&pick(Some("unknown.test")), &a));
        assert!(Arc::ptr_eq(&pick(None), &a));
        assert!(SniResolver::new(Vec::new()).is_none());
    }
}
