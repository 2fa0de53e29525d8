//! Rows as the rest of Provisio sees them.

use serde::{Serialize, Serializer};
use serde_json::Value;

/// Serialises Unix milliseconds as RFC 3339.
pub fn timestamp<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    let time = chrono::DateTime::from_timestamp_millis(*ms).unwrap_or_default();
    serializer.serialize_str(&time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Serialises optional Unix milliseconds as RFC 3339 or null.
pub fn optional_timestamp<S: Serializer>(
    ms: &Option<i64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => timestamp(ms, serializer),
        None => serializer.serialize_none(),
    }
}

/// A provision configuration: one concrete system and its credentials.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Configuration {
    pub id: i64,
    pub blueprint: String,
    pub provider: String,
    pub name: String,
    /// Values with every secret field replaced by `"[REDACTED]"`.
    #[sqlx(json)]
    pub config_values: Value,
    /// The encrypted secret fields.
    #[serde(skip)]
    pub secrets: Option<Vec<u8>>,
    /// Routing attributes, e.g. `{"location": "eu"}`.
    #[sqlx(json)]
    pub attributes: Value,
    pub max_services: Option<i64>,
    pub max_concurrency: i64,
    pub rate_per_minute: Option<i64>,
    pub enabled: bool,
    #[serde(serialize_with = "timestamp")]
    pub created_at: i64,
    #[serde(serialize_with = "timestamp")]
    pub updated_at: i64,
}

/// A product and its provisioning options.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
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
    #[sqlx(json)]
    pub attribute_filters: Value,
    pub setup_function: String,
    #[sqlx(json)]
    pub provision_fields: Value,
    #[sqlx(json)]
    pub rules: Value,
    #[serde(skip)]
    pub round_robin_cursor: i64,
    #[serde(serialize_with = "timestamp")]
    pub created_at: i64,
    #[serde(serialize_with = "timestamp")]
    pub updated_at: i64,
}

/// A client of the business.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Client {
    pub id: i64,
    pub external_id: Option<String>,
    pub name: String,
    pub email: String,
    #[serde(serialize_with = "timestamp")]
    pub created_at: i64,
}

/// A service (contract product): one thing a client bought.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
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
    #[sqlx(json)]
    pub provision_data: Value,
    #[serde(skip)]
    pub secrets: Option<Vec<u8>>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "timestamp")]
    pub created_at: i64,
    #[serde(serialize_with = "timestamp")]
    pub updated_at: i64,
}

/// One change in a service's life.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct HistoryEntry {
    pub id: i64,
    pub service_id: i64,
    #[serde(serialize_with = "timestamp")]
    pub at: i64,
    pub from_status: Option<String>,
    pub to_status: String,
    pub job_id: Option<i64>,
    pub note: String,
}

/// A billing event as received.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub external_id: String,
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub event_type: String,
    pub service_id: i64,
    #[sqlx(json)]
    pub payload: Value,
    pub occurred_at: Option<String>,
    #[serde(serialize_with = "timestamp")]
    pub received_at: i64,
}

/// A durable call of one function for one service.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub service_id: i64,
    pub event_id: Option<i64>,
    pub function: String,
    #[sqlx(json)]
    pub args: Value,
    /// What made it: `event:<type>`, `staff:<actor>`, `retry`.
    pub origin: String,
    /// queued, running, retrying, succeeded, failed, skipped.
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    #[serde(serialize_with = "timestamp")]
    pub run_at: i64,
    #[serde(serialize_with = "optional_timestamp")]
    pub lease_until: Option<i64>,
    pub locked_by: Option<String>,
    pub reconcile: bool,
    pub configuration_id: Option<i64>,
    pub idempotency_key: String,
    /// The last user-safe message.
    pub message: Option<String>,
    #[serde(serialize_with = "timestamp")]
    pub created_at: i64,
    #[serde(serialize_with = "timestamp")]
    pub updated_at: i64,
    #[serde(serialize_with = "optional_timestamp")]
    pub finished_at: Option<i64>,
}

/// One try of a job: the redacted envelope and HTTP log.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Attempt {
    pub id: i64,
    pub job_id: i64,
    pub number: i64,
    pub function: String,
    pub configuration_id: Option<i64>,
    #[serde(serialize_with = "timestamp")]
    pub started_at: i64,
    #[serde(serialize_with = "timestamp")]
    pub finished_at: i64,
    pub duration_ms: i64,
    /// `ok` or the error kind.
    pub outcome: String,
    #[sqlx(json)]
    pub envelope: Value,
    #[sqlx(json)]
    pub http_log: Value,
}

/// Who did what.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(serialize_with = "timestamp")]
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    #[sqlx(json)]
    pub details: Value,
}
