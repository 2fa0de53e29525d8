//! `message-queues`: a message broker account — a virtual host and its owner
//! user with full permissions on it (RabbitMQ, LavinMQ...).
//!
//! The service identifier is the virtual host. `create` of a virtual host
//! that exists with the same owner is adopted (ok, no password); anything
//! else answers `conflict`. Suspension revokes the owner's permissions (its
//! open connections are closed); nothing is deleted until `terminate`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ListParams, Listing, State, Units};
use crate::blueprint::Empty;
use crate::formats::{DbIdentifier, Password};

/// Params of `create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBrokerParams {
    /// The virtual host (the service identifier).
    pub vhost: DbIdentifier,
    /// The owner user; defaults to the virtual host's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<DbIdentifier>,
    /// The owner's password; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
    /// The package, which sets the limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_name: Option<String>,
    /// Most client connections to the virtual host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_connections: Option<u32>,
    /// Most queues in the virtual host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_queues: Option<u32>,
}

/// Names a virtual host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VhostRef {
    /// The virtual host.
    pub vhost: DbIdentifier,
}

/// Params of `suspend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendBrokerParams {
    /// The virtual host.
    pub vhost: DbIdentifier,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Params of `change_password`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeBrokerPasswordParams {
    /// The virtual host.
    pub vhost: DbIdentifier,
    /// The new password; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
}

/// A broker account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BrokerInfo {
    /// The virtual host.
    pub vhost: DbIdentifier,
    /// The owner user.
    pub username: DbIdentifier,
    /// Where clients connect.
    pub host: String,
    /// AMQP port.
    pub port: u16,
    /// Permissions granted or revoked.
    pub state: State,
    /// The package.
    pub package_name: Option<String>,
    /// Most client connections (null: no limit).
    pub max_connections: Option<u32>,
    /// Most queues (null: no limit).
    pub max_queues: Option<u32>,
    /// The generated password: present once, when it was just set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-secret" = true))]
    pub password: Option<String>,
}

/// New credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BrokerCredentials {
    /// The user.
    pub username: DbIdentifier,
    /// The new password.
    #[schemars(extend("x-secret" = true))]
    pub password: String,
}

/// Usage of a virtual host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BrokerUsage {
    /// Queues.
    pub queues: Units,
    /// Open connections.
    pub connections: Units,
    /// Messages waiting in all queues.
    pub messages: Units,
}

crate::blueprint! {
    /// Message broker accounts.
    pub trait MessageQueues {
        id: "message-queues", name: "Message Queues", icon: "exchange", identifier: "vhost", setup: create,
        description: "A message broker virtual host and its owner user, identified by the virtual host.",
        identifiers: Flat,
        ownership: "A virtual host is this service's only if it carries the service's owner mark (RabbitMQ: the virtual host's description). `create` adopts an existing one only with the same owner user and mark; anything else is `conflict`, and so is every other function on it.",
        password: change_password,
        import: list, adopt: adopt,
    }
    required {
        /// Creates the virtual host, its owner and the owner's permissions.
        /// The same pair is adopted (ok, no password); anything else: `conflict`.
        fn create(CreateBrokerParams) -> BrokerInfo { kind: Lifecycle, callers: [Staff], statuses: [Pending, Provisioning, Failed] }
        /// Reads the account; `not_found` if the virtual host does not exist.
        fn get_info(VhostRef) -> BrokerInfo { kind: Query, callers: [Client, Staff], statuses: [Active, Suspended, Provisioning, Failed] }
        /// Revokes the owner's permissions and closes its connections (idempotent).
        fn suspend(SuspendBrokerParams) -> BrokerInfo { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended] }
        /// Grants the permissions again (idempotent).
        fn unsuspend(VhostRef) -> BrokerInfo { kind: Lifecycle, callers: [Staff], statuses: [Suspended, Active] }
        /// Deletes the user and the virtual host with its queues; `not_found` if already gone.
        fn terminate(VhostRef) -> Empty { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended, Failed] }
    }
    optional {
        /// Queues, connections and messages against the limits.
        fn get_usage(VhostRef) -> BrokerUsage { kind: Query, callers: [Client, Staff], statuses: [Active, Suspended] }
        /// Sets (or generates) a new owner password.
        fn change_password(ChangeBrokerPasswordParams) -> BrokerCredentials { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
        /// Lists what the configuration holds, a page at a time in a stable
        /// order, with each resource's owner mark (for import).
        fn list(ListParams) -> Listing { kind: Query, callers: [Staff], statuses: [] }
        /// Run by an import only (no caller may ask for it). Writes this
        /// service's owner mark on a virtual host that carries none
        /// (import); the same mark is ok, another mark is `conflict`.
        fn adopt(VhostRef) -> BrokerInfo { kind: Lifecycle, callers: [], statuses: [Provisioning] }
    }
}
