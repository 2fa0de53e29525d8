//! `dns-hosting`: DNS zones on an authoritative name server.
//!
//! The service identifier is the zone name. `create_zone` of a zone that
//! exists with the same records is adopted (ok); otherwise `conflict`.
//! `set_records` replaces whole record sets (one name and type at a time).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ListParams, Listing, State};
use crate::blueprint::Empty;
use crate::formats::{DomainName, Hostname};

/// DNS record types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Alias.
    Cname,
    /// Mail exchanger.
    Mx,
    /// Text.
    Txt,
    /// Name server.
    Ns,
    /// Service locator.
    Srv,
    /// Certification authority authorisation.
    Caa,
}

fn default_ttl() -> u32 {
    3600
}

/// All records of one name and type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordSet {
    /// Name relative to the zone (`www`), or `@` for the apex.
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^(@|\*|(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*)$"
        )
    )]
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: RecordType,
    /// Time to live, seconds.
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 60, max = 604800))]
    pub ttl: u32,
    /// The records' contents in zone-file syntax (`192.0.2.1`, `10 mail.example.com.`).
    #[schemars(length(min = 1, max = 100))]
    pub records: Vec<String>,
}

/// Names one record set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordKey {
    /// Name relative to the zone, or `@`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: RecordType,
}

/// Params of `create_zone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateZoneParams {
    /// The zone (the service identifier).
    pub zone: DomainName,
    /// Initial record sets.
    #[serde(default)]
    pub records: Vec<RecordSet>,
    /// The customer the zone belongs to (an account tag on the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

/// Names a zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneRef {
    /// The zone.
    pub zone: DomainName,
}

/// Params of `suspend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendZoneParams {
    /// The zone.
    pub zone: DomainName,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Params of `set_records`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRecordsParams {
    /// The zone.
    pub zone: DomainName,
    /// Record sets to create or replace.
    #[schemars(length(min = 1))]
    pub records: Vec<RecordSet>,
}

/// Params of `delete_records`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRecordsParams {
    /// The zone.
    pub zone: DomainName,
    /// Record sets to delete.
    #[schemars(length(min = 1))]
    pub records: Vec<RecordKey>,
}

/// A zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ZoneInfo {
    /// The zone.
    pub zone: DomainName,
    /// Served or suspended.
    pub state: State,
    /// The name servers that serve it.
    pub nameservers: Vec<Hostname>,
    /// Its record sets (SOA left out).
    pub records: Vec<RecordSet>,
    /// SOA serial.
    pub serial: u32,
}

/// Sync's differences: the zone's state against the service's status
/// (repaired by suspend or unsuspend). A zone gone is `existence`.
pub fn compare(
    status: crate::ServiceStatus,
    _recorded: &serde_json::Value,
    real: &serde_json::Value,
) -> Vec<crate::blueprint::Drift> {
    crate::blueprint::state_drift(status, real).into_iter().collect()
}

crate::blueprint! {
    /// Authoritative DNS hosting (PowerDNS, Cloudflare, Route 53...).
    pub trait DnsHosting {
        id: "dns-hosting", name: "DNS Hosting", icon: "sitemap", identifier: "zone", setup: create_zone,
        description: "DNS zones on an authoritative name server, identified by the zone name.",
        identifiers: Hierarchical,
        ownership: "A zone is this service's only if it carries the service's owner mark (PowerDNS: the zone's `account`). `create_zone` adopts an existing zone only with the same mark and records; anything else is `conflict`, and so is every other function on it. The engine also refuses a zone inside (or around) another client's live zone on the same configuration.",
        sync: get_info, compare: compare,
        import: list, adopt: adopt,
    }
    required {
        /// Creates the zone with its initial records. Identical existing zone:
        /// adopted (ok); a different one: `conflict`.
        fn create_zone(CreateZoneParams) -> ZoneInfo { kind: Lifecycle, callers: [Staff], statuses: [Pending, Provisioning, Failed] }
        /// Reads the zone and its records; `not_found` if it does not exist.
        fn get_info(ZoneRef) -> ZoneInfo { kind: Query, callers: [Client, Staff], statuses: [Active, Suspended, Provisioning, Failed] }
        /// Creates or replaces record sets.
        fn set_records(SetRecordsParams) -> ZoneInfo { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
        /// Deletes record sets (absent ones are ignored).
        fn delete_records(DeleteRecordsParams) -> ZoneInfo { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
        /// Stops serving the zone, reversibly.
        fn suspend(SuspendZoneParams) -> ZoneInfo { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended] }
        /// Serves the zone again.
        fn unsuspend(ZoneRef) -> ZoneInfo { kind: Lifecycle, callers: [Staff], statuses: [Suspended, Active] }
        /// Deletes the zone; `not_found` if already gone.
        fn terminate(ZoneRef) -> Empty { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended, Failed] }
    }
    optional {
        /// Lists what the configuration holds, a page at a time in a stable
        /// order, with each resource's owner mark (for import).
        fn list(ListParams) -> Listing { kind: Query, callers: [Staff], statuses: [] }
        /// Run by an import only (no caller may ask for it). Writes this
        /// service's owner mark on a zone that carries none
        /// (import); the same mark is ok, another mark is `conflict`.
        fn adopt(ZoneRef) -> ZoneInfo { kind: Lifecycle, callers: [], statuses: [Provisioning] }
    }
}
