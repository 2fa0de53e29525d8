//! `ssl-certificates`: TLS certificates from a certificate authority.
//!
//! Issuance is long: `create` places the order and starts domain
//! validation, answering `pending_validation`; `get_info` reports progress
//! and, once the authority has issued, answers `issued` with the chain (and,
//! that one time, the private key it generated). The service identifier is
//! the common name; `certificate_id` (the order) changes on renew and reissue.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::blueprint::Empty;
use crate::formats::DomainName;

/// Params of `create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCertificateParams {
    /// The certificate's main name (the service identifier).
    pub common_name: DomainName,
    /// Further names.
    #[serde(default)]
    #[schemars(length(max = 99))]
    pub alt_names: Vec<DomainName>,
}

/// Names a certificate order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRef {
    /// The order, as `create`, `renew` or `reissue` answered it.
    #[schemars(length(min = 1, max = 2048))]
    pub certificate_id: String,
}

/// Params of `renew` and `reissue`: a new order for the same names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewCertificateParams {
    /// The current order.
    #[schemars(length(min = 1, max = 2048))]
    pub certificate_id: String,
    /// The main name.
    pub common_name: DomainName,
    /// Further names.
    #[serde(default)]
    pub alt_names: Vec<DomainName>,
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificateStatus {
    /// Domain validation is in progress.
    PendingValidation,
    /// Validated; the authority is issuing.
    Processing,
    /// Issued.
    Issued,
    /// Validation failed; the order cannot be issued.
    Invalid,
    /// Revoked.
    Revoked,
}

/// A certificate order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CertificateInfo {
    /// The order.
    pub certificate_id: String,
    /// The main name.
    pub common_name: DomainName,
    /// Further names.
    pub alt_names: Vec<DomainName>,
    /// Where it stands.
    pub status: CertificateStatus,
    /// A sentence about the progress.
    pub message: Option<String>,
    /// End of validity, once issued.
    pub not_after: Option<DateTime<Utc>>,
    /// The chain, PEM, once issued.
    pub certificate_pem: Option<String>,
    /// The private key, PEM: present once, when the certificate was just issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-secret" = true))]
    pub private_key_pem: Option<String>,
}

/// The issued chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CertificateDownload {
    /// The order.
    pub certificate_id: String,
    /// The chain, PEM, leaf first.
    pub certificate_pem: String,
}

crate::blueprint! {
    /// TLS certificate authorities (ACME, reseller APIs).
    pub trait SslCertificates {
        id: "ssl-certificates", name: "SSL Certificates", icon: "lock", identifier: "common_name", setup: create,
        description: "TLS certificates from a certificate authority, identified by their common name.",
    }
    required {
        /// Orders a certificate and starts validation; answers `pending_validation`.
        fn create(CreateCertificateParams) -> CertificateInfo { kind: Lifecycle, callers: [Staff], statuses: [Pending, Provisioning, Failed] }
        /// Reports progress; issues when validation is done (the private key is answered that once).
        fn get_info(CertificateRef) -> CertificateInfo { kind: Query, callers: [Client, Staff], statuses: [Active, Provisioning, Suspended, Failed] }
        /// The issued chain; `provider_error` while not issued.
        fn download(CertificateRef) -> CertificateDownload { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
        /// Orders a new certificate for the same names.
        fn renew(RenewCertificateParams) -> CertificateInfo { kind: Lifecycle, callers: [Staff], statuses: [Active] }
        /// Revokes the issued certificate.
        fn revoke(CertificateRef) -> Empty { kind: OnDemand, callers: [Staff], statuses: [Active, Suspended] }
    }
    optional {
        /// Orders a replacement (a new key) for the same names.
        fn reissue(RenewCertificateParams) -> CertificateInfo { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
    }
}
