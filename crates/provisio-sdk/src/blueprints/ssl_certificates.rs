//! `ssl-certificates`: TLS certificates from a certificate authority.
//!
//! Issuance is long: `create` generates the private key and the signing
//! request, places the order and starts domain validation. It answers the
//! key once (the engine seals it with the service's secrets) and, if the
//! authority was quick, `issued` with the chain; otherwise
//! `pending_validation`, and `get_info` (given the order and the stored
//! signing request) carries the order on. The service identifier is the
//! common name; `certificate_id` (the order) changes on renew and reissue.

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

/// Params of `get_info`: the order, and the signing request `create`
/// answered (to finalise the order once validated). Without an order (a
/// `create` whose outcome is unknown), the answer is `not_found`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateQuery {
    /// The order, as `create`, `renew` or `reissue` answered it.
    #[serde(default)]
    #[schemars(length(min = 1, max = 2048))]
    pub certificate_id: Option<String>,
    /// The main name.
    #[serde(default)]
    pub common_name: Option<DomainName>,
    /// The signing request (PEM) the order is to be finalised with.
    #[serde(default)]
    #[schemars(length(max = 16384))]
    pub csr_pem: Option<String>,
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
    #[schemars(length(max = 99))]
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

/// How far an order has got, from a result's `status`: pending while
/// validated or issued, failed when invalid or revoked, done once issued.
pub fn progress(result: &serde_json::Value) -> crate::blueprint::Progress {
    use crate::blueprint::Progress;
    match result.get("status").cloned().map(serde_json::from_value::<CertificateStatus>) {
        Some(Ok(CertificateStatus::PendingValidation | CertificateStatus::Processing)) => Progress::Pending(None),
        Some(Ok(CertificateStatus::Invalid)) => Progress::Failed("The authority could not validate the names".into()),
        Some(Ok(CertificateStatus::Revoked)) => Progress::Failed("The certificate was revoked".into()),
        _ => Progress::Done,
    }
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
    /// End of validity, once issued (absent before: a pending renewal
    /// leaves the current certificate's in provision data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<DateTime<Utc>>,
    /// The chain, PEM, once issued (absent before, like `not_after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
    /// The signing request (PEM, public) the order is finalised with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr_pem: Option<String>,
    /// The private key, PEM: answered once, by the call that generated it.
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
        identifiers: Flat,
        ownership: "A certificate is this service's order's; names are proved through DNS zones that must be live services of the same client, so no client can obtain a certificate for another client's zone.",
        follow: get_info, progress: progress, within_secs: 86_400,
    }
    required {
        /// Generates the key, orders a certificate and starts validation; answers the key once.
        fn create(CreateCertificateParams) -> CertificateInfo { kind: Lifecycle, callers: [Staff], statuses: [Pending, Provisioning, Failed] }
        /// Reports progress; finalises the order (with the stored signing request) once validated.
        fn get_info(CertificateQuery) -> CertificateInfo { kind: Query, callers: [Client, Staff], statuses: [Active, Provisioning, Suspended, Failed] }
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
