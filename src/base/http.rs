//! HTTPS as the host trusts it: the certificate authorities of the system's store
//! (`/etc/ssl/certs/ca-certificates.crt`, which `update-ca-certificates` builds from Debian's
//! bundle and any local CA a site adds), so a registry or a snapshot mirror behind a company's
//! own CA works as it does for apt and docker. Without that file, the built-in web roots.

use std::sync::OnceLock;

use ureq::tls::{PemItem, RootCerts, TlsConfig};

/// The system's bundle of trusted certificate authorities (Debian's path).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The TLS settings every HTTPS request of bake uses.
pub fn tls() -> TlsConfig {
    static ROOTS: OnceLock<RootCerts> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| roots_from(&std::fs::read(SYSTEM_ROOTS).unwrap_or_default()));
    TlsConfig::builder().root_certs(roots.clone()).build()
}

/// The certificates of a PEM bundle as roots; the built-in web roots when it holds none.
fn roots_from(pem: &[u8]) -> RootCerts {
    let certs: Vec<_> = ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    if certs.is_empty() { RootCerts::WebPki } else { RootCerts::new_with_certs(&certs) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_unreadable_bundle_falls_back_to_the_web_roots() {
        assert!(matches!(roots_from(b""), RootCerts::WebPki));
        assert!(matches!(roots_from(b"not a certificate"), RootCerts::WebPki));
    }

    #[test]
    fn the_systems_bundle_is_read_when_there_is_one() {
        if let Ok(pem) = std::fs::read(SYSTEM_ROOTS) {
            assert!(matches!(roots_from(&pem), RootCerts::Specific(ref c) if c.len() > 10));
        }
    }
}
