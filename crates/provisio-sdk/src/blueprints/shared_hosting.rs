//! `shared-hosting`: web hosting accounts on a control panel server.
//!
//! The service identifier is the account `username`. `create` is idempotent:
//! creating an account that already exists with the same domain, package and
//! email answers ok with the existing account; one that differs answers
//! `conflict`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ListParams, Listing, State, Units};
use crate::blueprint::Empty;
use crate::formats::{DomainName, Email, IpAddress, Password, Url, Username};

/// Params of `create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateParams {
    /// The account's main domain.
    pub domain: DomainName,
    /// The account username (the service identifier). When absent the
    /// provider makes one from the domain ([`username_candidates`]) and
    /// answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Username>,
    /// The hosting package (plan) on the server.
    #[schemars(length(min = 1, max = 64))]
    pub package_name: String,
    /// The account owner's contact email.
    pub email: Email,
    /// Initial password; the provider generates one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
    /// The customer's name, for the panel's records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
}

/// The usernames a provider tries, in order, for an account on `domain`
/// when none is given: the domain's first label reduced to letters and
/// digits (a leading digit or a leading `test`, which panels refuse,
/// dropped), cut to `max_len`; then that cut one shorter with a digit 1-9.
///
/// The order is fixed, so a retried create tries the same names and finds
/// the account its earlier attempt made (adopted by its owner mark) instead
/// of making a second one.
pub fn username_candidates(domain: &DomainName, max_len: usize) -> Vec<Username> {
    let max_len = max_len.clamp(2, 16);
    let label = domain.as_str().split('.').next().unwrap_or_default();
    let mut base: String = label.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase();
    base = base.trim_start_matches(|c: char| c.is_ascii_digit()).to_owned();
    if let Some(rest) = base.strip_prefix("test") {
        base = rest.to_owned();
    }
    if base.is_empty() {
        base = "site".into();
    }
    base.truncate(max_len);
    let stem: String = base.chars().take(max_len - 1).collect();
    std::iter::once(base)
        .chain((1..=9).map(|n| format!("{stem}{n}")))
        .filter_map(|name| Username::parse(&name).ok())
        .collect()
}

/// Names an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountRef {
    /// The account username.
    pub username: Username,
}

/// Params of `suspend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendParams {
    /// The account username.
    pub username: Username,
    /// Why, recorded on the panel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Params of `get_login_url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetLoginUrlParams {
    /// The account username.
    pub username: Username,
    /// The address the client will log in from, for panels that bind sessions to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddress>,
    /// Where the link leads: the control panel (the default) or webmail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<LoginArea>,
}

/// The part of a panel a sign-on link opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoginArea {
    /// The account's control panel.
    #[default]
    ControlPanel,
    /// The account's webmail.
    Webmail,
}

/// Params of `change_password`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordParams {
    /// The account username.
    pub username: Username,
    /// The new password.
    pub password: Password,
}

/// Params of `change_package`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePackageParams {
    /// The account username.
    pub username: Username,
    /// The new package.
    #[schemars(length(min = 1, max = 64))]
    pub package_name: String,
}

/// A hosting account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AccountInfo {
    /// The account username.
    pub username: Username,
    /// The main domain.
    pub domain: DomainName,
    /// The package.
    pub package_name: String,
    /// The owner's email.
    pub email: Email,
    /// Active or suspended.
    pub state: State,
    /// Why it is suspended.
    pub suspend_reason: Option<String>,
    /// The server that hosts it.
    pub server_hostname: String,
    /// The account's IP address.
    pub ip: Option<IpAddress>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl AccountInfo {
    /// Whether this existing account is the one `params` asks for (same
    /// domain, package and email): what `create` adopts instead of refusing.
    pub fn is_what_create_asks(&self, params: &CreateParams) -> bool {
        self.domain == params.domain && self.package_name == params.package_name && self.email == params.email
    }
}

/// A single sign-on link into the control panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoginUrl {
    /// Open this to be logged in.
    #[schemars(extend("x-secret" = true))]
    pub login_url: Url,
    /// After this the link no longer works.
    pub expires_at: DateTime<Utc>,
    /// The only address it works from, if bound.
    pub for_ip: Option<IpAddress>,
    /// Fields to POST to `login_url` (panels whose sign-on is a form post);
    /// absent when opening the link is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-secret" = true))]
    pub post_fields: Option<std::collections::BTreeMap<String, String>>,
}

/// Resource usage of an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AccountUsage {
    /// Disk space, MiB.
    pub disk_mb: Units,
    /// Traffic this month, MiB.
    pub bandwidth_mb: Units,
    /// Files and folders; absent when the panel does not count them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes: Option<Units>,
    /// Mailboxes; absent when the panel does not count them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailboxes: Option<Units>,
    /// Databases; absent when the panel does not count them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<Units>,
}

/// Sync's differences: the account's state against the service's status
/// (repaired by suspend or unsuspend), and its package (by change_package).
pub fn compare(
    status: crate::ServiceStatus,
    recorded: &serde_json::Value,
    real: &serde_json::Value,
) -> Vec<crate::blueprint::Drift> {
    let mut drifts: Vec<crate::blueprint::Drift> = crate::blueprint::state_drift(status, real).into_iter().collect();
    if let (Some(wanted), Some(found)) = (recorded.get("package_name"), real.get("package_name"))
        && wanted != found
    {
        drifts.push(crate::blueprint::Drift {
            field: "package_name",
            recorded: wanted.clone(),
            real: found.clone(),
            repair: Some(("change_package", serde_json::json!({"package_name": wanted}))),
        });
    }
    drifts
}

crate::blueprint! {
    /// Web hosting accounts on a control panel (cPanel, Plesk, DirectAdmin...).
    pub trait SharedHosting {
        id: "shared-hosting", name: "Shared Web Hosting", icon: "laptop", identifier: "username", setup: create,
        description: "Web hosting accounts on a control panel server, identified by username.",
        identifiers: Flat,
        ownership: "An account is this service's only if it carries the service's owner mark at the panel. `create` adopts an existing account only with the same domain and mark; anything else is `conflict`, and so is every other function on it.",
        login: get_login_url,
        password: change_password,
        sync: get_info, compare: compare,
        import: list, adopt: adopt,
    }
    required {
        /// Creates the account (its username made from the domain when not
        /// given). An identical existing account is adopted (ok); a different
        /// account with the same username answers `conflict`.
        fn create(CreateParams) -> AccountInfo { kind: Lifecycle, callers: [Staff], statuses: [Pending, Provisioning, Failed] }
        /// Reads the account; `not_found` if it does not exist.
        fn get_info(AccountRef) -> AccountInfo { kind: Query, callers: [Client, Staff], statuses: [Active, Suspended, Provisioning, Failed] }
        /// Suspends the account (idempotent).
        fn suspend(SuspendParams) -> AccountInfo { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended] }
        /// Lifts a suspension (idempotent).
        fn unsuspend(AccountRef) -> AccountInfo { kind: Lifecycle, callers: [Staff], statuses: [Suspended, Active] }
        /// Moves the account to another package.
        fn change_package(ChangePackageParams) -> AccountInfo { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended] }
        /// Deletes the account and its data; `not_found` if already gone.
        fn terminate(AccountRef) -> Empty { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended, Failed] }
    }
    optional {
        /// Reads disk, bandwidth and other usage against the package's limits.
        fn get_usage(AccountRef) -> AccountUsage { kind: Query, callers: [Client, Staff], statuses: [Active, Suspended] }
        /// A single sign-on link into the control panel, valid for a short time.
        fn get_login_url(GetLoginUrlParams) -> LoginUrl { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
        /// Sets a new account password.
        fn change_password(ChangePasswordParams) -> Empty { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
        /// Lists what the configuration holds, a page at a time in a stable
        /// order, with each resource's owner mark (for import).
        fn list(ListParams) -> Listing { kind: Query, callers: [Staff], statuses: [] }
        /// Run by an import only (no caller may ask for it). Writes this
        /// service's owner mark on an account that carries none
        /// (import); the same mark is ok, another mark is `conflict`.
        fn adopt(AccountRef) -> AccountInfo { kind: Lifecycle, callers: [], statuses: [Provisioning] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(domain: &str, max_len: usize) -> Vec<String> {
        let domain = DomainName::parse(domain).unwrap();
        username_candidates(&domain, max_len).into_iter().map(|u| u.as_str().to_owned()).collect()
    }

    #[test]
    fn usernames_come_from_the_domain_in_a_fixed_order() {
        let found = names("my-shop.example.com", 8);
        assert_eq!(found.len(), 10);
        assert_eq!(&found[..3], ["myshop", "myshop1", "myshop2"]);
        assert_eq!(&names("averyverylongname.com", 8)[..2], ["averyver", "averyve1"]);
        assert_eq!(names("123test-site.org", 8)[0], "site");
        assert_eq!(names("42.net", 8)[0], "site");
        assert_eq!(names("xn--bcher-kva.de", 8)[0], "xnbcherk");
        assert_eq!(names("my-shop.example.com", 8), names("my-shop.example.com", 8));
    }
}
