//! `databases`: a database and its owner login on a database server.
//!
//! The service identifier is the database name. `create` of a database that
//! exists with the same owner is adopted (ok, no password returned); anything
//! else answers `conflict`. A generated password is returned once, by
//! `create` or `change_password`, in a field marked secret.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ListParams, Listing, State, Units};
use crate::blueprint::Empty;
use crate::formats::{DbIdentifier, Password};

/// Params of `create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDatabaseParams {
    /// The database name (the service identifier).
    pub database: DbIdentifier,
    /// The owner login; defaults to the database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<DbIdentifier>,
    /// The owner's password; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
    /// The package, which sets limits such as connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_name: Option<String>,
    /// Maximum concurrent connections; the package's or the server's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub connection_limit: Option<u32>,
}

/// Names a database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseRef {
    /// The database name.
    pub database: DbIdentifier,
}

/// Params of `suspend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendDatabaseParams {
    /// The database name.
    pub database: DbIdentifier,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Params of `change_password`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeDatabasePasswordParams {
    /// The database name.
    pub database: DbIdentifier,
    /// The new password; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
}

/// A database and its owner login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DatabaseInfo {
    /// The database name.
    pub database: DbIdentifier,
    /// The owner login.
    pub username: DbIdentifier,
    /// Where clients connect.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Login allowed or blocked.
    pub state: State,
    /// The package.
    pub package_name: Option<String>,
    /// Maximum concurrent connections (null: server default).
    pub connection_limit: Option<u32>,
    /// The generated password: present once, when it was just set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-secret" = true))]
    pub password: Option<String>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
}

/// New credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DatabaseCredentials {
    /// The login.
    pub username: DbIdentifier,
    /// The new password.
    #[schemars(extend("x-secret" = true))]
    pub password: String,
}

/// Usage of a database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DatabaseUsage {
    /// Size on disk, MiB.
    pub size_mb: Units,
    /// Open connections.
    pub connections: Units,
}

crate::blueprint! {
    /// Databases with an owner login (PostgreSQL, MariaDB...).
    pub trait Databases {
        id: "databases", name: "Databases", icon: "database", identifier: "database", setup: create,
        description: "A database and its owner login on a database server, identified by the database name.",
        identifiers: Flat,
        ownership: "A database is this service's only if it carries the service's owner mark at the server (PostgreSQL: a comment on the owner role; MariaDB: the database comment). `create` adopts an existing database only with the same owner login and mark; any other existing database (another service's, or one made outside Provisio) is `conflict`, and so is every other function on it.",
        password: change_password,
        import: list, adopt: adopt,
    }
    required {
        /// Creates the database and its owner. The same existing pair is
        /// adopted (ok, no password); anything else: `conflict`.
        fn create(CreateDatabaseParams) -> DatabaseInfo { kind: Lifecycle, callers: [Staff], statuses: [Pending, Provisioning, Failed] }
        /// Reads the database; `not_found` if it does not exist.
        fn get_info(DatabaseRef) -> DatabaseInfo { kind: Query, callers: [Client, Staff], statuses: [Active, Suspended, Provisioning, Failed] }
        /// Blocks the owner's login (idempotent).
        fn suspend(SuspendDatabaseParams) -> DatabaseInfo { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended] }
        /// Allows the owner's login again (idempotent).
        fn unsuspend(DatabaseRef) -> DatabaseInfo { kind: Lifecycle, callers: [Staff], statuses: [Suspended, Active] }
        /// Drops the database and its owner; `not_found` if already gone.
        fn terminate(DatabaseRef) -> Empty { kind: Lifecycle, callers: [Staff], statuses: [Active, Suspended, Failed] }
    }
    optional {
        /// Size and connections against the limits.
        fn get_usage(DatabaseRef) -> DatabaseUsage { kind: Query, callers: [Client, Staff], statuses: [Active, Suspended] }
        /// Sets (or generates) a new owner password.
        fn change_password(ChangeDatabasePasswordParams) -> DatabaseCredentials { kind: OnDemand, callers: [Client, Staff], statuses: [Active] }
        /// Lists what the configuration holds, a page at a time in a stable
        /// order, with each resource's owner mark (for import).
        fn list(ListParams) -> Listing { kind: Query, callers: [Staff], statuses: [] }
        /// Run by an import only (no caller may ask for it). Writes this
        /// service's owner mark on a database that carries none
        /// (import); the same mark is ok, another mark is `conflict`.
        fn adopt(DatabaseRef) -> DatabaseInfo { kind: Lifecycle, callers: [], statuses: [Provisioning] }
    }
}
