//! What staff see of services and jobs: view types built field by field
//! from stored rows, so a field added to a row (a sealed secret, a lease
//! detail) is never answered until a view names it.

use provisio_engine::catalog::ConfigurationRecord;
use provisio_engine::queries::ServiceDetail;
use provisio_store::drifts::Drift;
use provisio_store::models::{
    ApiToken, Attempt, AuditEntry, Client, Event, EventSource, HistoryEntry, Job, Product, Scope, Service, StaffUser,
    WebhookDelivery, WebhookSubscriber, optional_timestamp, timestamp,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// A service as staff see it.
#[derive(Debug, Serialize)]
pub struct ServiceView {
    id: i64,
    external_id: Option<String>,
    client_id: i64,
    product_id: i64,
    status: String,
    /// The status once every queued job has succeeded.
    projected_status: String,
    identifier: Option<String>,
    configuration_id: Option<i64>,
    /// Customer and preset fields and earlier results, secret fields masked.
    provision_data: Value,
    last_error: Option<String>,
    /// The reference providers record at the vendor as this service's.
    owner_mark: String,
    #[serde(serialize_with = "timestamp")]
    created_at: i64,
    #[serde(serialize_with = "timestamp")]
    updated_at: i64,
}

impl From<Service> for ServiceView {
    fn from(s: Service) -> Self {
        ServiceView {
            id: s.id,
            external_id: s.external_id,
            client_id: s.client_id,
            product_id: s.product_id,
            status: s.status,
            projected_status: s.projected_status,
            identifier: s.identifier,
            configuration_id: s.configuration_id,
            provision_data: s.provision_data,
            last_error: s.last_error,
            owner_mark: s.owner_mark,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A job as staff see it (never its sealed params).
#[derive(Debug, Serialize)]
pub struct JobView {
    id: i64,
    service_id: i64,
    event_id: Option<i64>,
    function: String,
    /// Params from the rule, event or action; secret ones masked.
    args: Value,
    origin: String,
    state: String,
    attempts: i64,
    max_attempts: i64,
    #[serde(serialize_with = "timestamp")]
    run_at: i64,
    #[serde(serialize_with = "optional_timestamp")]
    lease_until: Option<i64>,
    locked_by: Option<String>,
    reconcile: bool,
    on_demand: bool,
    configuration_id: Option<i64>,
    idempotency_key: String,
    message: Option<String>,
    #[serde(serialize_with = "timestamp")]
    created_at: i64,
    #[serde(serialize_with = "timestamp")]
    updated_at: i64,
    #[serde(serialize_with = "optional_timestamp")]
    finished_at: Option<i64>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        JobView {
            id: j.id,
            service_id: j.service_id,
            event_id: j.event_id,
            function: j.function,
            args: j.args,
            origin: j.origin,
            state: j.state,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
            lease_until: j.lease_until,
            locked_by: j.locked_by,
            reconcile: j.reconcile,
            on_demand: j.on_demand,
            configuration_id: j.configuration_id,
            idempotency_key: j.idempotency_key,
            message: j.message,
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: j.finished_at,
        }
    }
}

/// A service's detail as staff see it.
#[derive(Debug, Serialize)]
pub struct ServiceDetailView {
    service: ServiceView,
    product: Option<String>,
    client: Option<ClientView>,
    jobs: Vec<JobView>,
    history: Vec<HistoryView>,
    events: Vec<Value>,
    more: Value,
}

impl From<ServiceDetail> for ServiceDetailView {
    fn from(d: ServiceDetail) -> Self {
        ServiceDetailView {
            service: d.service.into(),
            product: d.product,
            client: d.client.map(ClientView::from),
            jobs: all(d.jobs),
            history: all(d.history),
            events: d.events,
            more: d.more,
        }
    }
}

/// Views of a list of rows.
pub fn all<T, V: From<T>>(rows: Vec<T>) -> Vec<V> {
    rows.into_iter().map(V::from).collect()
}

/// Declares a staff view: a struct naming the fields staff see, and its
/// `From` the row it is built from, field by field. A field the row gains
/// is not answered until it is named here.
macro_rules! view {
    ($(#[$doc:meta])* $view:ident from $row:ty { $($(#[$attr:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Serialize)]
        pub struct $view {
            $($(#[$attr])* $field: $ty,)*
        }

        impl From<$row> for $view {
            fn from(row: $row) -> Self {
                $view { $($field: row.$field,)* }
            }
        }
    };
}

view! {
    /// A product as staff see it.
    ProductView from Product {
        id: i64, slug: String, name: String, blueprint: String, provider: Option<String>,
        /// `static` or `dynamic`.
        deployment: String,
        configuration_id: Option<i64>,
        strategy: Option<String>,
        attribute_filters: Value,
        setup_function: String,
        provision_fields: Value,
        rules: Value,
        /// `report`, `accept` or `repair`.
        drift_response: String,
        #[serde(serialize_with = "timestamp")] created_at: i64,
        #[serde(serialize_with = "timestamp")] updated_at: i64,
    }
}

view! {
    /// A difference sync found between a service's record and its system.
    DriftView from Drift {
        id: i64, service_id: i64,
        /// What differs (`state`, `package_name`, `expires_at`, `nameservers`, `existence`).
        field: String,
        /// What the record says.
        recorded: Value,
        /// What the system says.
        real: Value,
        #[serde(serialize_with = "timestamp")] detected_at: i64,
        #[serde(serialize_with = "timestamp")] seen_at: i64,
        #[serde(serialize_with = "optional_timestamp")] resolved_at: Option<i64>,
        /// How it was resolved (`accepted`, `repaired by job N`, `gone`).
        resolution: Option<String>,
    }
}

view! {
    /// A client as staff see it.
    ClientView from Client {
        id: i64, external_id: Option<String>, name: String, email: String,
        #[serde(serialize_with = "timestamp")] created_at: i64,
    }
}

view! {
    /// One change of a service's status.
    HistoryView from HistoryEntry {
        id: i64, service_id: i64,
        #[serde(serialize_with = "timestamp")] at: i64,
        from_status: Option<String>, to_status: String, job_id: Option<i64>, note: String,
    }
}

view! {
    /// One call of a job (the envelope and HTTP log are redacted when recorded).
    AttemptView from Attempt {
        id: i64, job_id: i64, number: i64, function: String, configuration_id: Option<i64>,
        #[serde(serialize_with = "timestamp")] started_at: i64,
        #[serde(serialize_with = "timestamp")] finished_at: i64,
        duration_ms: i64, outcome: String, envelope: Value, http_log: Value,
    }
}

view! {
    /// One audit entry.
    AuditView from AuditEntry {
        id: i64,
        #[serde(serialize_with = "timestamp")] at: i64,
        actor: String, action: String, subject: String, details: Value,
    }
}

view! {
    /// A staff token: never its digest.
    TokenView from ApiToken {
        id: i64, name: String, scope: Scope,
        #[serde(serialize_with = "timestamp")] created_at: i64,
        #[serde(serialize_with = "optional_timestamp")] revoked_at: Option<i64>,
    }
}

view! {
    /// An event source: never its secret.
    SourceView from EventSource {
        id: i64, name: String, kind: String, mapping: Value, enabled: bool,
        #[serde(serialize_with = "timestamp")] created_at: i64,
        #[serde(serialize_with = "timestamp")] updated_at: i64,
    }
}

view! {
    /// A webhook subscriber: never its secret.
    WebhookView from WebhookSubscriber {
        id: i64, name: String, url: String, event_types: Value, include_credentials: bool, allow_private: bool,
        enabled: bool,
        #[serde(serialize_with = "timestamp")] created_at: i64,
        #[serde(serialize_with = "timestamp")] updated_at: i64,
    }
}

view! {
    /// One webhook delivery (its payload never carries credentials: those
    /// are added when it is sent).
    DeliveryView from WebhookDelivery {
        id: i64, subscriber_id: i64, event_type: String, service_id: Option<i64>, payload: Value, state: String,
        attempts: i64,
        #[serde(serialize_with = "timestamp")] next_at: i64,
        last_status: Option<i64>, last_error: Option<String>,
        #[serde(serialize_with = "timestamp")] created_at: i64,
        #[serde(serialize_with = "optional_timestamp")] delivered_at: Option<i64>,
    }
}

view! {
    /// A staff user: never the password hash.
    StaffUserView from StaffUser {
        id: i64, username: String, scope: Scope, failed_logins: i64,
        #[serde(serialize_with = "optional_timestamp")] locked_until: Option<i64>,
        disabled: bool,
        #[serde(serialize_with = "timestamp")] created_at: i64,
        #[serde(serialize_with = "timestamp")] updated_at: i64,
    }
}

/// An event as staff see it (secret fields were sealed at ingest).
#[derive(Debug, Serialize)]
pub struct EventView {
    id: i64,
    external_id: String,
    #[serde(rename = "type")]
    event_type: String,
    service_id: i64,
    payload: Value,
    occurred_at: Option<String>,
    #[serde(serialize_with = "timestamp")]
    received_at: i64,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        EventView {
            id: e.id,
            external_id: e.external_id,
            event_type: e.event_type,
            service_id: e.service_id,
            payload: e.payload,
            occurred_at: e.occurred_at,
            received_at: e.received_at,
        }
    }
}

/// A configuration as staff see it: secret values masked, and which
/// secret fields hold a value.
#[derive(Debug, Serialize)]
pub struct ConfigurationView {
    id: i64,
    blueprint: String,
    provider: String,
    name: String,
    /// Values with every secret field masked.
    config_values: Value,
    attributes: Value,
    max_services: Option<i64>,
    max_concurrency: i64,
    rate_per_minute: Option<i64>,
    enabled: bool,
    #[serde(serialize_with = "timestamp")]
    created_at: i64,
    #[serde(serialize_with = "timestamp")]
    updated_at: i64,
    /// `BLUEPRINT/PROVIDER`.
    address: String,
    /// JSON pointers of the secret fields that hold a value.
    secrets_set: Vec<String>,
    /// Services it holds (not terminated).
    services: i64,
}

impl From<ConfigurationRecord> for ConfigurationView {
    fn from(r: ConfigurationRecord) -> Self {
        let c = r.configuration;
        ConfigurationView {
            id: c.id,
            blueprint: c.blueprint,
            provider: c.provider,
            name: c.name,
            config_values: c.config_values,
            attributes: c.attributes,
            max_services: c.max_services,
            max_concurrency: c.max_concurrency,
            rate_per_minute: c.rate_per_minute,
            enabled: c.enabled,
            created_at: c.created_at,
            updated_at: c.updated_at,
            address: r.address,
            secrets_set: r.secrets_set,
            services: r.services,
        }
    }
}

/// A view with a secret shown this once beside it (a new token, source,
/// webhook or staff user).
#[derive(Debug, Serialize)]
pub struct WithSecret<V> {
    #[serde(flatten)]
    view: V,
    #[serde(flatten)]
    secret: Map<String, Value>,
}

impl<V> WithSecret<V> {
    /// `view` with `name: secret` beside it, when there is one.
    pub fn new(view: V, name: &str, secret: Option<String>) -> Self {
        let secret = secret.map(|s| Map::from_iter([(name.to_owned(), Value::String(s))])).unwrap_or_default();
        WithSecret { view, secret }
    }
}
