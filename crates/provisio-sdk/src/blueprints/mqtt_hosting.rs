//! `mqtt-hosting`: an account on an MQTT broker, allowed to publish and
//! subscribe under its own topic prefix (devices, coffee machines, sensors).
//!
//! The service identifier is the username. `create` of an account that
//! exists with the same prefix is adopted (ok, no password); anything else
//! answers `conflict`. Suspension disables the account (the broker refuses
//! its connections); nothing is deleted until `terminate`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ListParams, Listing, State};
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

/// Whether two topic prefixes overlap: one's `PREFIX/#` reaches the other's
/// topics (`homes` covers `homes/kitchen1`). Accounts with overlapping
/// prefixes on one broker would read and write each other's messages.
pub fn prefixes_overlap(a: &str, b: &str) -> bool {
    let within = |inner: &str, outer: &str| {
        inner == outer || inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('/'))
    };
    within(a, b) || within(b, a)
}

/// Topic prefixes no account may take by default: the coffee machines'
/// topic space (`coffee/MACHINE/...`), which a shared broker also carries.
pub const RESERVED_PREFIXES: &[&str] = &["coffee"];

/// Why `prefix` may not be given to a new account, if it may not: it
/// overlaps a reserved prefix or another account's (`taken`: account, prefix).
pub fn prefix_refusal<'a>(
    prefix: &str,
    reserved: &[String],
    taken: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<crate::ProviderError> {
    if let Some(reserved) = reserved.iter().find(|r| prefixes_overlap(prefix, r)) {
        return Some(crate::ProviderError::conflict(crate::UserMessage::new(format!(
            "Topic prefix {prefix} overlaps {reserved}, which is reserved on this broker"
        ))));
    }
    let (account, theirs) = taken.into_iter().find(|(_, theirs)| prefixes_overlap(prefix, theirs))?;
    Some(crate::ProviderError::conflict(crate::UserMessage::new(format!(
        "Topic prefix {prefix} overlaps {theirs}, the prefix of account {account} on this broker"
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_prefixes() {
        assert!(prefixes_overlap("homes", "homes/kitchen1"));
        assert!(prefixes_overlap("homes/kitchen1", "homes"));
        assert!(prefixes_overlap("homes", "homes"));
        assert!(!prefixes_overlap("homes", "homesick"));
        assert!(!prefixes_overlap("homes/a", "homes/b"));
        let reserved = vec!["coffee".to_owned()];
        assert!(prefix_refusal("coffee/kitchen", &reserved, []).is_some());
        assert!(prefix_refusal("homes", &reserved, [("dev1", "homes/kitchen1")]).is_some());
        assert!(prefix_refusal("homes/b", &reserved, [("dev1", "homes/a")]).is_none());
    }
}

crate::blueprint! {
    /// MQTT broker accounts.
    pub trait MqttHosting {
        id: "mqtt-hosting", name: "MQTT Hosting", icon: "wifi", identifier: "username", setup: create,
        description: "An MQTT broker account limited to its own topic prefix, identified by its username. A prefix overlapping another account's, or a reserved one (`coffee`), is `conflict`.",
        identifiers: Flat,
        ownership: "An account is this service's only if it carries the service's owner mark (Mosquitto: the client's `textname`). `create` adopts an existing account only with the same prefix and mark; anything else is `conflict`, and so is every other function on it. A topic prefix overlapping another live account's prefix is refused.",
        password: change_password,
        import: list, adopt: adopt,
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
        /// Lists what the configuration holds, a page at a time in a stable
        /// order, with each resource's owner mark (for import).
        fn list(ListParams) -> Listing { kind: Query, callers: [Staff], statuses: [] }
        /// Run by an import only (no caller may ask for it). Writes this
        /// service's owner mark on an account that carries none
        /// (import); the same mark is ok, another mark is `conflict`.
        fn adopt(MqttRef) -> MqttInfo { kind: Lifecycle, callers: [], statuses: [Provisioning] }
    }
}
