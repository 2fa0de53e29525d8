//! `software-licenses`: licence keys issued by a vendor.
//!
//! A licence has no natural name, so `create` takes the billing system's
//! `reference` for the service: a create with a reference that already has a
//! licence answers ok with that licence (adopted) instead of issuing a second
//! one. The service identifier is the `license_key` it returns.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::State;
use crate::blueprint::Empty;
use crate::formats::{DomainName, Email, IpAddress};

/// Params of `create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLicenseParams {
    /// The billing system's reference for this service; makes `create` idempotent.
    #[schemars(length(min = 1, max = 128))]
    pub reference: String,
    /// The vendor's package (product/edition).
    #[schemars(length(min = 1, max = 64))]
    pub package_identifier: String,
    /// Licensee name.
    #[schemars(length(min = 1, max = 255))]
    pub customer_name: String,
    /// Licensee email.
    pub customer_email: Email,
    /// The IP address the licence is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddress>,
    /// The domain the licence is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainName>,
}

/// Names a licence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseRef {
    /// The licence key.
    #[schemars(length(min = 1, max = 128))]
    pub license_key: String,
}

/// Params of `suspend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendLicenseParams {
    /// The licence key.
    #[schemars(length(min = 1, max = 128))]
    pub license_key: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Params of `change_package`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeLicensePackageParams {
    /// The licence key.
    #[schemars(length(min = 1, max = 128))]
    pub license_key: String,
    /// The new package.
    #[schemars(length(min = 1, max = 64))]
    pub package_identifier: String,
}

/// Params of `reissue`: release the binding and bind anew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReissueParams {
    /// The licence key.
    #[schemars(length(min = 1, max = 128))]
    pub license_key: String,
    /// The new IP binding, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddress>,
    /// The new domain binding, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainName>,
}

/// A licence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LicenseInfo {
    /// The licence key (the service identifier).
    pub license_key: String,
    /// The billing reference it was created for.
    pub reference: String,
    /// The package.
    pub package_identifier: String,
    /// Active or suspended.
    pub state: State,
    /// Licensee email.
    pub customer_email: Email,
    /// Bound IP.
    pub ip: Option<IpAddress>,
    /// Bound domain.
    pub domain: Option<DomainName>,
    /// How many times it was reissued.
    pub reissue_count: u32,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}

crate::blueprint! {
    /// Software licences (cPanel, Plesk, WHMCS licences...).
    pub trait SoftwareLicenses {
        id: "software-licenses", name: "Software Licenses", icon: "ticket", identifier: "license_key", setup: create,
        description: "Licence keys issued by a software vendor, identified by the licence key.",
        identifiers: Flat,
        ownership: "A licence is its order's: `create` deduplicates by the billing `reference`, and licence keys are issued by the vendor, so no service can name another's key at setup.",
    }
    required {
        /// Issues a licence; a `reference` seen before answers its existing licence.
        fn create(CreateLicenseParams) -> LicenseInfo { kind: Lifecycle, callers: [Staff], statuses: [Pending, Provisioning, Failed] }
        /// Reads the licence; `not_found` if unknown.
        fn get_info(LicenseRef) -> LicenseInfo { kind: Query, callers: [Client, Staff], statuses: [Active, Suspended, Provisioning, Failed] }
        /// Moves the licence to another package.
        fn change_package(ChangeLicensePackageParams) -> LicenseInfo { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended] }
        /// Suspends the licence (idempotent).
        fn suspend(SuspendLicenseParams) -> LicenseInfo { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended] }
        /// Reactivates the licence (idempotent).
        fn unsuspend(LicenseRef) -> LicenseInfo { kind: Lifecycle, callers: [Staff], statuses: [Suspended, Active] }
        /// Revokes the licence; `not_found` if already gone.
        fn terminate(LicenseRef) -> Empty { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended, Failed] }
    }
    optional {
        /// Releases the IP/domain binding and binds to the new one.
        fn reissue(ReissueParams) -> LicenseInfo { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
    }
}
