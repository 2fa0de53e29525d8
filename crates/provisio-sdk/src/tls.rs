//! TLS to the systems providers drive over their own protocols (database
//! servers, MQTT brokers): one setting every such provider offers, and one
//! way to build a verifying client configuration.
//!
//! `verify` (the default) requires TLS and checks the server's certificate
//! against the configured CA (`ca_cert_pem`) or the system's roots, host name
//! included: a downgrade or an impostor is refused. `disabled` talks in
//! clear, credentials included, and is for servers on a trusted network only.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ProviderError;

/// Whether, and how, a provider's connection is encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// TLS required; the certificate and host name are checked.
    #[default]
    Verify,
    /// No TLS: everything, credentials included, crosses the network in clear.
    Disabled,
}

/// The certificates `ca_cert_pem` holds; an error names the field.
pub fn ca_certificates(ca_cert_pem: &str) -> Result<Vec<CertificateDer<'static>>, ProviderError> {
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(ca_cert_pem.as_bytes()).collect::<Result<_, _>>().map_err(|err| {
            ProviderError::provider(crate::UserMessage::new(format!("ca_cert_pem is not a PEM certificate: {err}")))
        })?;
    if certificates.is_empty() {
        return Err(ProviderError::provider("ca_cert_pem holds no certificate"));
    }
    Ok(certificates)
}

/// A rustls client configuration that trusts `ca_cert_pem` (or the system's
/// roots when absent), with the process's crypto provider (ring).
pub fn client_config(ca_cert_pem: Option<&str>) -> Result<rustls::ClientConfig, ProviderError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_cert_pem {
        Some(pem) => {
            for certificate in ca_certificates(pem)? {
                roots
                    .add(certificate)
                    .map_err(|err| ProviderError::provider(crate::UserMessage::new(format!("ca_cert_pem: {err}"))))?;
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ProviderError::internal)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Whether an I/O error is a TLS failure (an untrusted or mismatched
/// certificate, a server without TLS): a setting to fix, not a fault to retry.
pub fn is_tls_failure(err: &std::io::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.get_ref().map(|e| e as _);
    while let Some(inner) = source {
        if inner.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        // An I/O error's `source` skips the error it wraps: look inside.
        source = match inner.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|e| e as _),
            None => inner.source(),
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_that_is_not_pem_is_refused_by_name() {
        let err = ca_certificates("not a certificate").unwrap_err();
        assert!(err.to_string().contains("ca_cert_pem"), "{err}");
        assert!(client_config(None).is_ok());
    }
}
