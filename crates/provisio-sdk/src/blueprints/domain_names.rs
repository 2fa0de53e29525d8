//! `domain-names`: domain registrations at a registrar.
//!
//! The service identifier is the domain name (IDN accepted, stored as
//! punycode). `register` of a domain this account already holds with the same
//! registrant is adopted (ok); a domain held by anyone else answers `conflict`.
//! Long operations (transfers, registrations the registry queues) answer ok
//! with `status` `pending_*`; `get_status` reports their progress instead of
//! failing.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::formats::{CountryCode, DomainName, Email, Hostname, Phone};

/// A contact (registrant, admin, tech, billing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Full name.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Organisation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    /// Email.
    pub email: Email,
    /// Phone, E.164.
    pub phone: Phone,
    /// First address line.
    #[schemars(length(min = 1, max = 255))]
    pub address1: String,
    /// Second address line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address2: Option<String>,
    /// City.
    #[schemars(length(min = 1, max = 255))]
    pub city: String,
    /// State or province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postcode.
    #[schemars(length(min = 1, max = 16))]
    pub postcode: String,
    /// ISO 3166 alpha-2 country code.
    pub country_code: CountryCode,
}

/// The domain's contacts; admin, tech and billing default to the registrant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contacts {
    /// The domain's legal holder.
    pub registrant: Contact,
    /// Administrative contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<Contact>,
    /// Technical contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tech: Option<Contact>,
    /// Billing contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<Contact>,
}

/// Contacts to change; absent ones stay as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactChanges {
    /// New registrant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registrant: Option<Contact>,
    /// New admin contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<Contact>,
    /// New tech contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tech: Option<Contact>,
    /// New billing contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<Contact>,
}

fn default_years() -> u8 {
    1
}

fn default_true() -> bool {
    true
}

/// Params of `check_availability`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckAvailabilityParams {
    /// Domains to check.
    #[schemars(length(min = 1, max = 50))]
    pub domains: Vec<DomainName>,
}

/// Params of `register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterParams {
    /// The domain (the service identifier).
    pub domain: DomainName,
    /// Registration period in years.
    #[serde(default = "default_years")]
    #[schemars(range(min = 1, max = 10))]
    pub years: u8,
    /// The contacts.
    pub contacts: Contacts,
    /// Name servers, 2 to 13.
    #[schemars(length(min = 2, max = 13))]
    pub nameservers: Vec<Hostname>,
    /// Hide the registrant's details from public WHOIS.
    #[serde(default = "default_true")]
    pub privacy: bool,
}

/// Params of `transfer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferParams {
    /// The domain.
    pub domain: DomainName,
    /// The authorisation (EPP) code from the losing registrar.
    #[schemars(length(min = 1, max = 64), extend("x-secret" = true, "writeOnly" = true))]
    pub epp_code: String,
    /// Years added by the transfer (most registries add one).
    #[serde(default = "default_years")]
    #[schemars(range(min = 1, max = 10))]
    pub years: u8,
    /// New contacts; the current ones are kept when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Contacts>,
}

/// Names a domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainRef {
    /// The domain.
    pub domain: DomainName,
}

/// Params of `release`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseParams {
    /// The domain.
    pub domain: DomainName,
    /// The receiving registrar's tag (Nominet's IPS tag), upper case.
    #[schemars(length(min = 2, max = 16), regex(pattern = r"^[A-Z0-9][A-Z0-9-]*$"))]
    pub registrar_tag: String,
}

/// Params of `renew`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewParams {
    /// The domain.
    pub domain: DomainName,
    /// Years to add.
    #[serde(default = "default_years")]
    #[schemars(range(min = 1, max = 10))]
    pub years: u8,
}

/// Params of `update_nameservers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNameserversParams {
    /// The domain.
    pub domain: DomainName,
    /// The new name servers, 2 to 13.
    #[schemars(length(min = 2, max = 13))]
    pub nameservers: Vec<Hostname>,
}

/// Params of `update_contacts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContactsParams {
    /// The domain.
    pub domain: DomainName,
    /// The contacts to change.
    pub contacts: ContactChanges,
}

/// Params of `set_lock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLockParams {
    /// The domain.
    pub domain: DomainName,
    /// Locked against transfer.
    pub locked: bool,
}

/// Params of `set_auto_renew`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAutoRenewParams {
    /// The domain.
    pub domain: DomainName,
    /// Renew automatically at the registry.
    pub auto_renew: bool,
}

/// Availability of one domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Availability {
    /// The domain.
    pub domain: DomainName,
    /// Can be registered now.
    pub available: bool,
    /// Priced above the standard rate.
    pub premium: bool,
    /// Why it is not available.
    pub reason: Option<String>,
}

/// Result of `check_availability`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AvailabilityResult {
    /// One entry per domain asked.
    pub domains: Vec<Availability>,
}

/// Where a domain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    /// Registered with this account and in use.
    Active,
    /// Registration queued at the registry.
    PendingRegistration,
    /// Transfer in progress.
    PendingTransfer,
    /// Past its expiry date.
    Expired,
    /// Moved to another registrar.
    TransferredAway,
    /// Deleted or the transfer was refused.
    Cancelled,
}

/// A domain registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DomainInfo {
    /// The domain.
    pub domain: DomainName,
    /// Where it stands.
    pub status: DomainStatus,
    /// Locked against transfer.
    pub locked: bool,
    /// Renews automatically.
    pub auto_renew: bool,
    /// WHOIS privacy on.
    pub privacy: bool,
    /// Name servers.
    pub nameservers: Vec<Hostname>,
    /// The registrant.
    pub registrant: Option<Contact>,
    /// When it was registered.
    pub created_at: Option<DateTime<Utc>>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Progress of a domain and its long operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatusResult {
    /// The domain.
    pub domain: DomainName,
    /// Where it stands.
    pub status: DomainStatus,
    /// Progress of a pending operation, percent.
    #[schemars(range(min = 0, max = 100))]
    pub progress: Option<u8>,
    /// A sentence for the client.
    pub message: Option<String>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// The domain came here by a transfer this service asked for (it may
    /// still name the old registrar's contacts): it is the service's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transferred_in: bool,
}

/// The authorisation code to move the domain away.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EppCode {
    /// The code.
    #[schemars(extend("x-secret" = true))]
    pub epp_code: String,
}

crate::blueprint! {
    /// Domain name registrars (EPP registries, reseller APIs).
    pub trait DomainNames {
        id: "domain-names", name: "Domain Names", icon: "world", identifier: "domain", setup: register,
        description: "Domain registrations at a registrar, identified by the domain name.",
        identifiers: Flat,
        ownership: "A registration is this service's only if the registrar account records the service's owner mark for it; `register` of a domain already in the account with another mark (or none) is `conflict`, and so is every other function on it.",
        follow: get_status, progress: progress, within_secs: 1_209_600,
        sync: get_info, compare: compare,
    }
    required {
        /// Says which domains can be registered.
        fn check_availability(CheckAvailabilityParams) -> AvailabilityResult { kind: Query, callers: [Client, Staff], statuses: [Pending, Active] }
        /// Registers a domain. Already held by this account with the same
        /// registrant: adopted (ok). Held by anyone else: `conflict`.
        fn register(RegisterParams) -> DomainInfo { kind: Lifecycle, callers: [Staff], statuses: [Pending, Provisioning, Failed] }
        /// Extends the registration. A retry with the same idempotency key renews once.
        fn renew(RenewParams) -> DomainInfo { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended] }
        /// Reads the registration; `not_found` if this account does not hold it.
        fn get_info(DomainRef) -> DomainInfo { kind: Query, callers: [Client, Staff], statuses: [Active, Suspended, Provisioning, Failed] }
        /// Replaces the name servers.
        fn update_nameservers(UpdateNameserversParams) -> DomainInfo { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
        /// Where the domain stands, with the progress of a pending transfer or registration.
        fn get_status(DomainRef) -> StatusResult { kind: Query, callers: [Client, Staff], statuses: [Active, Suspended, Provisioning, Failed] }
    }
    optional {
        /// Starts a transfer in (or reports it if already started): ok with
        /// status `pending_transfer` until the losing registrar lets go.
        fn transfer(TransferParams) -> StatusResult { kind: Lifecycle, callers: [Staff], statuses: [Pending, Provisioning, Failed] }
        /// Changes contacts.
        fn update_contacts(UpdateContactsParams) -> DomainInfo { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
        /// Locks or unlocks the domain against transfer.
        fn set_lock(SetLockParams) -> DomainInfo { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
        /// Turns automatic renewal at the registry on or off.
        fn set_auto_renew(SetAutoRenewParams) -> DomainInfo { kind: OnDemand, callers: [Staff], statuses: [Active] }
        /// The authorisation code to transfer the domain away.
        fn get_epp_code(DomainRef) -> EppCode { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
        /// Hands the domain to another registrar by its tag, where domains
        /// move by push (.uk): `transferred_away` once it moved,
        /// `pending_transfer` while the receiver must accept. The service
        /// ends when the registry's message says the domain left.
        fn release(ReleaseParams) -> StatusResult { kind: OnDemand, callers: [Client, Staff], statuses: [Active, Suspended] }
    }
}

/// Whether the service asked for a transfer in (its stored result says
/// `pending_transfer`, or that the transfer brought the domain): the domain
/// may then still carry the old registrar's contacts, and is the service's.
pub fn asked_for_transfer(provision_data: &serde_json::Map<String, serde_json::Value>) -> bool {
    transfer_pending(provision_data)
        || provision_data.get("transferred_in").and_then(serde_json::Value::as_bool) == Some(true)
}

/// Whether the service's stored result is a transfer still pending: its
/// stored expiry then predates the year the transfer adds.
fn transfer_pending(provision_data: &serde_json::Map<String, serde_json::Value>) -> bool {
    serde_json::from_value::<DomainStatus>(provision_data.get("status").cloned().unwrap_or_default()).ok()
        == Some(DomainStatus::PendingTransfer)
}

/// Sync's differences: the expiry (renewed or not elsewhere: nothing puts
/// it back, it is reported or accepted) and the name servers (put back by
/// update_nameservers).
pub fn compare(
    _status: crate::ServiceStatus,
    recorded: &serde_json::Value,
    real: &serde_json::Value,
) -> Vec<crate::blueprint::Drift> {
    let mut drifts = Vec::new();
    let date = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|d| d.with_timezone(&Utc))
    };
    if let (Some(wanted), Some(found)) = (date(recorded.get("expires_at")), date(real.get("expires_at")))
        && wanted != found
    {
        drifts.push(crate::blueprint::Drift {
            field: "expires_at",
            recorded: recorded["expires_at"].clone(),
            real: real["expires_at"].clone(),
            repair: None,
        });
    }
    let names = |v: Option<&serde_json::Value>| {
        let mut names: Vec<String> = v
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_lowercase)).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    let (wanted, found) = (names(recorded.get("nameservers")), names(real.get("nameservers")));
    if !wanted.is_empty() && wanted != found {
        drifts.push(crate::blueprint::Drift {
            field: "nameservers",
            recorded: recorded["nameservers"].clone(),
            real: real["nameservers"].clone(),
            repair: Some(("update_nameservers", serde_json::json!({"nameservers": recorded["nameservers"]}))),
        });
    }
    drifts
}

/// How far a domain's operation has got, from any of the blueprint's
/// results: pending while a registration or transfer waits at the registry,
/// failed when it was cancelled or refused, done otherwise.
pub fn progress(result: &serde_json::Value) -> crate::blueprint::Progress {
    use crate::blueprint::Progress;
    let status = result.get("status").cloned().map(serde_json::from_value::<DomainStatus>);
    match status {
        Some(Ok(DomainStatus::PendingRegistration | DomainStatus::PendingTransfer)) => Progress::Pending(None),
        Some(Ok(DomainStatus::Cancelled)) => Progress::Failed(
            result
                .get("message")
                .and_then(serde_json::Value::as_str)
                .filter(|m| !m.is_empty())
                .unwrap_or("The registry cancelled it (a transfer refused, or the domain deleted)")
                .to_owned(),
        ),
        _ => Progress::Done,
    }
}

/// What a renew should do, for registrars whose renew names the current
/// expiry (EPP's `curExpDate`, Hexonet's `EXPIRATION`) or refuses a repeat
/// (Enom's day-long guard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// An earlier attempt of this renew did it (its answer was lost): the
    /// registry's expiry is the stored one plus the years asked.
    AlreadyDone,
    /// Renew from this expiry: the one the service knew (so a repeat names
    /// a stale date and is refused), or the registry's when none is stored.
    From(DateTime<Utc>),
}

/// Plans a renew of `years` from the service's stored result and the
/// registry's `current` expiry.
pub fn plan_renewal(
    provision_data: &serde_json::Map<String, serde_json::Value>,
    current: DateTime<Utc>,
    years: u8,
) -> Renewal {
    let known = (!transfer_pending(provision_data))
        .then(|| provision_data.get("expires_at").and_then(serde_json::Value::as_str))
        .flatten()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|d| d.with_timezone(&Utc));
    match known {
        Some(known)
            if known.date_naive() != current.date_naive()
                && known
                    .checked_add_months(chrono::Months::new(12 * u32::from(years)))
                    .is_some_and(|renewed| renewed.date_naive() == current.date_naive()) =>
        {
            Renewal::AlreadyDone
        }
        known => Renewal::From(known.unwrap_or(current)),
    }
}

#[cfg(test)]
mod renewal_tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_transfer_that_arrived_stays_the_services_and_progress_is_read_by_type() {
        use crate::blueprint::Progress;
        let stored = |v: serde_json::Value| v.as_object().cloned().unwrap();
        // Followed to the end: the status is active, the transfer's mark stays.
        let arrived = stored(json!({"status": "active", "transferred_in": true, "expires_at": "2028-01-01T00:00:00Z"}));
        assert!(asked_for_transfer(&arrived));
        assert_eq!(plan_renewal(&arrived, at("2029-01-01T00:00:00Z"), 1), Renewal::AlreadyDone);
        assert!(!asked_for_transfer(&stored(json!({"status": "active"}))));
        assert_eq!(progress(&json!({"status": "pending_transfer"})), Progress::Pending(None));
        assert_eq!(progress(&json!({"status": "pending_registration"})), Progress::Pending(None));
        assert_eq!(progress(&json!({"status": "active"})), Progress::Done);
        assert!(
            matches!(progress(&json!({"status": "cancelled", "message": "Refused"})), Progress::Failed(m) if m == "Refused")
        );
        // A status the blueprint does not know is no progress to wait for.
        assert_eq!(progress(&json!({"status": "pending_something"})), Progress::Done);
    }

    #[test]
    fn a_renew_is_planned_from_what_the_service_knew() {
        let stored = |v: serde_json::Value| v.as_object().cloned().unwrap();
        let known = stored(json!({"expires_at": "2027-01-01T00:00:00Z", "status": "active"}));
        assert_eq!(plan_renewal(&known, at("2027-01-01T00:00:00Z"), 1), Renewal::From(at("2027-01-01T00:00:00Z")));
        assert_eq!(plan_renewal(&known, at("2028-01-01T00:00:00Z"), 1), Renewal::AlreadyDone);
        // Moved by something else: renew from what the service knew (the registry refuses it).
        assert_eq!(plan_renewal(&known, at("2030-01-01T00:00:00Z"), 1), Renewal::From(at("2027-01-01T00:00:00Z")));
        let transferred = stored(json!({"expires_at": "2027-01-01T00:00:00Z", "status": "pending_transfer"}));
        assert!(asked_for_transfer(&transferred));
        assert_eq!(
            plan_renewal(&transferred, at("2028-01-01T00:00:00Z"), 1),
            Renewal::From(at("2028-01-01T00:00:00Z"))
        );
        assert_eq!(
            plan_renewal(&stored(json!({})), at("2028-01-01T00:00:00Z"), 1),
            Renewal::From(at("2028-01-01T00:00:00Z"))
        );
    }
}
