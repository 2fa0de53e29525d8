//! Rows as the rest of Provisio sees them.
//!
//! Rows are deliberately not `Serialize`: what an API answers is a view
//! built from a row field by field (`provisio-http`'s staff and client
//! views), so a column added here (a sealed secret, a digest) can never be
//! answered by accident.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::{Row, StoreError};

/// A JSON column.
fn json(row: &Row, column: &str) -> Result<Value, StoreError> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|err| StoreError::Corrupt(format!("column {column}: {err}")))
}

/// Serialises Unix milliseconds as RFC 3339.
pub fn timestamp<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    let time = chrono::DateTime::from_timestamp_millis(*ms).unwrap_or_default();
    serializer.serialize_str(&time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Serialises optional Unix milliseconds as RFC 3339 or null.
pub fn optional_timestamp<S: Serializer>(ms: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => timestamp(ms, serializer),
        None => serializer.serialize_none(),
    }
}

/// A provision configuration: one concrete system and its credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    pub id: i64,
    pub blueprint: String,
    pub provider: String,
    pub name: String,
    /// Values with every secret field replaced by `"[REDACTED]"`.
    pub config_values: Value,
    /// The encrypted secret fields.
    pub secrets: Option<Vec<u8>>,
    /// Routing attributes, e.g. `{"location": "eu"}`.
    pub attributes: Value,
    pub max_services: Option<i64>,
    pub max_concurrency: i64,
    pub rate_per_minute: Option<i64>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A product and its provisioning options.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub blueprint: String,
    /// An explicit provider id, or none for automatic choice.
    pub provider: Option<String>,
    /// `static` or `dynamic`.
    pub deployment: String,
    pub configuration_id: Option<i64>,
    /// `least_used`, `round_robin` or `fill` (dynamic only).
    pub strategy: Option<String>,
    pub attribute_filters: Value,
    pub setup_function: String,
    pub provision_fields: Value,
    pub rules: Value,
    /// How a difference found by sync is met: `report`, `accept` or `repair`.
    pub drift_response: String,
    pub round_robin_cursor: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A client of the business.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub id: i64,
    pub external_id: Option<String>,
    pub name: String,
    pub email: String,
    pub created_at: i64,
}

/// A service (contract product): one thing a client bought.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub id: i64,
    pub external_id: Option<String>,
    pub client_id: i64,
    pub product_id: i64,
    pub status: String,
    pub projected_status: String,
    pub identifier: Option<String>,
    pub configuration_id: Option<i64>,
    /// Customer fields, preset fields and earlier results (secret result fields masked).
    pub provision_data: Value,
    pub secrets: Option<Vec<u8>>,
    pub last_error: Option<String>,
    /// The stable reference providers record at the vendor as this service's.
    pub owner_mark: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One change in a service's life.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub id: i64,
    pub service_id: i64,
    pub at: i64,
    pub from_status: Option<String>,
    pub to_status: String,
    pub job_id: Option<i64>,
    pub note: String,
}

/// A billing event as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub external_id: String,
    pub event_type: String,
    pub service_id: i64,
    pub payload: Value,
    pub occurred_at: Option<String>,
    pub received_at: i64,
    pub body_digest: Option<String>,
}

/// A durable call of one function for one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub service_id: i64,
    pub event_id: Option<i64>,
    pub function: String,
    pub args: Value,
    /// What made it: `event:<type>`, `staff:<actor>`, `retry`.
    pub origin: String,
    /// queued, running, retrying, succeeded, failed, skipped.
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub lease_until: Option<i64>,
    pub locked_by: Option<String>,
    pub reconcile: bool,
    /// Run at once by its caller (an on-demand action), never by a worker.
    pub on_demand: bool,
    pub configuration_id: Option<i64>,
    pub idempotency_key: String,
    /// Secret params, sealed.
    pub secrets: Option<Vec<u8>>,
    /// The last user-safe message.
    pub message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// One try of a job: the redacted envelope and HTTP log.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: i64,
    pub job_id: i64,
    pub number: i64,
    pub function: String,
    pub configuration_id: Option<i64>,
    pub started_at: i64,
    pub finished_at: i64,
    pub duration_ms: i64,
    /// `ok` or the error kind.
    pub outcome: String,
    pub envelope: Value,
    pub http_log: Value,
}

/// Who did what.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: Value,
}

impl Configuration {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Configuration {
            id: row.get("id")?,
            blueprint: row.get("blueprint")?,
            provider: row.get("provider")?,
            name: row.get("name")?,
            config_values: json(row, "config_values")?,
            secrets: row.get("secrets")?,
            attributes: json(row, "attributes")?,
            max_services: row.get("max_services")?,
            max_concurrency: row.get("max_concurrency")?,
            rate_per_minute: row.get("rate_per_minute")?,
            enabled: row.get("enabled")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

impl Product {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Product {
            id: row.get("id")?,
            slug: row.get("slug")?,
            name: row.get("name")?,
            blueprint: row.get("blueprint")?,
            provider: row.get("provider")?,
            deployment: row.get("deployment")?,
            configuration_id: row.get("configuration_id")?,
            strategy: row.get("strategy")?,
            attribute_filters: json(row, "attribute_filters")?,
            setup_function: row.get("setup_function")?,
            provision_fields: json(row, "provision_fields")?,
            rules: json(row, "rules")?,
            drift_response: row.get("drift_response")?,
            round_robin_cursor: row.get("round_robin_cursor")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

impl Client {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Client {
            id: row.get("id")?,
            external_id: row.get("external_id")?,
            name: row.get("name")?,
            email: row.get("email")?,
            created_at: row.get("created_at")?,
        })
    }
}

/// What a staff token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read everything staff may see (never secrets).
    Read,
    /// Also run actions, retry jobs, send events, add clients and open client sessions.
    Operate,
    /// Also change configurations, products, tokens, event sources and webhooks.
    Admin,
}

impl Scope {
    /// Every scope, least first.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Operate, Scope::Admin];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Admin => "admin",
        }
    }

    /// The scope of a stored name.
    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn scope_column(row: &Row) -> Result<Scope, StoreError> {
    let text: String = row.get("scope")?;
    Scope::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("scope {text}")))
}

/// A staff API token (its digest never leaves the store).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub id: i64,
    /// Who holds it; the audit log names this.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    pub digest: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl ApiToken {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(ApiToken {
            id: row.get("id")?,
            name: row.get("name")?,
            scope: scope_column(row)?,
            digest: row.get("digest")?,
            created_at: row.get("created_at")?,
            revoked_at: row.get("revoked_at")?,
        })
    }
}

/// A client's session (its digests never leave the store).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSession {
    pub id: i64,
    pub client_id: i64,
    pub digest: String,
    pub handoff_digest: Option<String>,
    pub handoff_expires_at: Option<i64>,
    pub handoff_used_at: Option<i64>,
    /// The staff token that opened it.
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl ClientSession {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(ClientSession {
            id: row.get("id")?,
            client_id: row.get("client_id")?,
            digest: row.get("digest")?,
            handoff_digest: row.get("handoff_digest")?,
            handoff_expires_at: row.get("handoff_expires_at")?,
            handoff_used_at: row.get("handoff_used_at")?,
            created_by: row.get("created_by")?,
            created_at: row.get("created_at")?,
            expires_at: row.get("expires_at")?,
            revoked_at: row.get("revoked_at")?,
        })
    }
}

/// A billing system that signs what it sends.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSource {
    pub id: i64,
    pub name: String,
    /// The format it speaks: `provisio` (our event format) or `stripe`.
    pub kind: String,
    pub secrets: Vec<u8>,
    /// How a foreign format maps to products.
    pub mapping: Value,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl EventSource {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(EventSource {
            id: row.get("id")?,
            name: row.get("name")?,
            kind: row.get("kind")?,
            secrets: row.get("secrets")?,
            mapping: json(row, "mapping")?,
            enabled: row.get("enabled")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

impl Service {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Service {
            id: row.get("id")?,
            external_id: row.get("external_id")?,
            client_id: row.get("client_id")?,
            product_id: row.get("product_id")?,
            status: row.get("status")?,
            projected_status: row.get("projected_status")?,
            identifier: row.get("identifier")?,
            configuration_id: row.get("configuration_id")?,
            provision_data: json(row, "provision_data")?,
            secrets: row.get("secrets")?,
            last_error: row.get("last_error")?,
            owner_mark: row.get::<_, Option<String>>("owner_mark")?.unwrap_or_default(),
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

impl HistoryEntry {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(HistoryEntry {
            id: row.get("id")?,
            service_id: row.get("service_id")?,
            at: row.get("at")?,
            from_status: row.get("from_status")?,
            to_status: row.get("to_status")?,
            job_id: row.get("job_id")?,
            note: row.get("note")?,
        })
    }
}

impl Event {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Event {
            id: row.get("id")?,
            external_id: row.get("external_id")?,
            event_type: row.get("type")?,
            service_id: row.get("service_id")?,
            payload: json(row, "payload")?,
            occurred_at: row.get("occurred_at")?,
            received_at: row.get("received_at")?,
            body_digest: row.get("body_digest")?,
        })
    }
}

impl Job {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Job {
            id: row.get("id")?,
            service_id: row.get("service_id")?,
            event_id: row.get("event_id")?,
            function: row.get("function")?,
            args: json(row, "args")?,
            origin: row.get("origin")?,
            state: row.get("state")?,
            attempts: row.get("attempts")?,
            max_attempts: row.get("max_attempts")?,
            run_at: row.get("run_at")?,
            lease_until: row.get("lease_until")?,
            locked_by: row.get("locked_by")?,
            reconcile: row.get("reconcile")?,
            on_demand: row.get("on_demand")?,
            configuration_id: row.get("configuration_id")?,
            idempotency_key: row.get("idempotency_key")?,
            secrets: row.get("secrets")?,
            message: row.get("message")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
            finished_at: row.get("finished_at")?,
        })
    }
}

impl Attempt {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Attempt {
            id: row.get("id")?,
            job_id: row.get("job_id")?,
            number: row.get("number")?,
            function: row.get("function")?,
            configuration_id: row.get("configuration_id")?,
            started_at: row.get("started_at")?,
            finished_at: row.get("finished_at")?,
            duration_ms: row.get("duration_ms")?,
            outcome: row.get("outcome")?,
            envelope: json(row, "envelope")?,
            http_log: json(row, "http_log")?,
        })
    }
}

impl AuditEntry {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(AuditEntry {
            id: row.get("id")?,
            at: row.get("at")?,
            actor: row.get("actor")?,
            action: row.get("action")?,
            subject: row.get("subject")?,
            details: json(row, "details")?,
        })
    }
}

/// Somebody told of what happens to services and jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSubscriber {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub secrets: Vec<u8>,
    pub event_types: Value,
    pub include_credentials: bool,
    pub allow_private: bool,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl WebhookSubscriber {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(WebhookSubscriber {
            id: row.get("id")?,
            name: row.get("name")?,
            url: row.get("url")?,
            secrets: row.get("secrets")?,
            event_types: json(row, "event_types")?,
            include_credentials: row.get("include_credentials")?,
            allow_private: row.get("allow_private")?,
            enabled: row.get("enabled")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

/// One message to one subscriber, and how sending it went.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub id: i64,
    pub subscriber_id: i64,
    pub event_type: String,
    pub service_id: Option<i64>,
    pub payload: Value,
    pub state: String,
    pub attempts: i64,
    pub next_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

impl WebhookDelivery {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(WebhookDelivery {
            id: row.get("id")?,
            subscriber_id: row.get("subscriber_id")?,
            event_type: row.get("event_type")?,
            service_id: row.get("service_id")?,
            payload: json(row, "payload")?,
            state: row.get("state")?,
            attempts: row.get("attempts")?,
            next_at: row.get("next_at")?,
            last_status: row.get("last_status")?,
            last_error: row.get("last_error")?,
            created_at: row.get("created_at")?,
            delivered_at: row.get("delivered_at")?,
        })
    }
}

/// A person on the staff (the password hash never leaves the store's callers).
#[derive(Debug, Clone, PartialEq)]
pub struct StaffUser {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub scope: Scope,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl StaffUser {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(StaffUser {
            id: row.get("id")?,
            username: row.get("username")?,
            password_hash: row.get("password_hash")?,
            scope: scope_column(row)?,
            failed_logins: row.get("failed_logins")?,
            locked_until: row.get("locked_until")?,
            disabled: row.get("disabled")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}
