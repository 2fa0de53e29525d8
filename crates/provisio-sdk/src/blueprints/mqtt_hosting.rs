//! `mqtt-hosting`: an account on an MQTT broker, allowed to publish and
//! subscribe under its own topic prefix (devices, coffee machines, sensors).
//!
//! The service identifier is the username. `create` of an account that
//! exists with the same prefix is adopted (ok, no password); anything else
//! answers `conflict`. Suspension disables the account (the broker refuses
//! its connections); nothing is deleted until `terminate`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::State;
use crate::blueprint::Empty;
use crate::formats::{DbIdentifier, Password};

/// Params of `create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMqttParams {
    /// The account's username (the service identifier).
    pub username: DbIdentifier,
    /// Its password; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
    /// The topics it owns: `PREFIX/#`. Defaults to the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[a-z0-9_-]+(/[a-z0-9_-]+)*$"))]
    pub topic_prefix: Option<String>,
    /// The package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_name: Option<String>,
}

/// Names an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttRef {
    /// The username.
    pub username: DbIdentifier,
}

/// Params of `suspend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendMqttParams {
    /// The username.
    pub username: DbIdentifier,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Params of `change_password`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeMqttPasswordParams {
    /// The username.
    pub username: DbIdentifier,
    /// The new password; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
}

/// A broker account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MqttInfo {
    /// The username.
    pub username: DbIdentifier,
    /// The topics it owns: `PREFIX/#`.
    pub topic_prefix: String,
    /// Where devices connect.
    pub host: String,
    /// MQTT port.
    pub port: u16,
    /// Enabled or disabled.
    pub state: State,
    /// The generated password: present once, when it was just set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-secret" = true))]
    pub password: Option<String>,
}

/// New credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MqttCredentials {
    /// The username.
    pub username: DbIdentifier,
    /// The new password.
    #[schemars(extend("x-secret" = true))]
    pub password: String,
}

crate::blueprint! {
    /// MQTT broker accounts.
    pub trait MqttHosting {
        id: "mqtt-hosting", name: "MQTT Hosting", icon: "wifi", identifier: "username", setup: create,
        description: "An MQTT broker account limited to its own topic prefix, identified by its username.",
        identifiers: Flat,
        ownership: "An account is this service's only if it carries the service's owner mark (Mosquitto: the client's `textname`). `create` adopts an existing account only with the same prefix and mark; anything else is `conflict`, and so is every other function on it. A topic prefix overlapping another live account's prefix is refused.",
    }
    required {
        /// Creates the account and its access to `PREFIX/#`. The same account
        /// is adopted (ok, no password); anything else: `conflict`.
        fn create(CreateMqttParams) -> MqttInfo { kind: Lifecycle, callers: [Staff], statuses: [Pending, Provisioning, Failed] }
        /// Reads the account; `not_found` if it does not exist.
        fn get_info(MqttRef) -> MqttInfo { kind: Query, callers: [Client, Staff], statuses: [Active, Suspended, Provisioning, Failed] }
        /// Disables the account (idempotent).
        fn suspend(SuspendMqttParams) -> MqttInfo { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended] }
        /// Enables it again (idempotent).
        fn unsuspend(MqttRef) -> MqttInfo { kind: Lifecycle, callers: [Staff], statuses: [Suspended, Active] }
        /// Deletes the account and its access; `not_found` if already gone.
        fn terminate(MqttRef) -> Empty { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended, Failed] }
    }
    optional {
        /// Sets (or generates) a new password.
        fn change_password(ChangeMqttPasswordParams) -> MqttCredentials { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
    }
}
