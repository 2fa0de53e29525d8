//! What staff see of services and jobs: view types built field by field
//! from stored rows, so a field added to a row (a sealed secret, a lease
//! detail) is never answered until a view names it.

use provisio_engine::queries::ServiceDetail;
use provisio_store::models::{Client, HistoryEntry, Job, Service, optional_timestamp, timestamp};
use serde::Serialize;
use serde_json::Value;

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
    client: Option<Client>,
    jobs: Vec<JobView>,
    history: Vec<HistoryEntry>,
    events: Vec<Value>,
    more: Value,
}

impl From<ServiceDetail> for ServiceDetailView {
    fn from(d: ServiceDetail) -> Self {
        ServiceDetailView {
            service: d.service.into(),
            product: d.product,
            client: d.client,
            jobs: d.jobs.into_iter().map(JobView::from).collect(),
            history: d.history,
            events: d.events,
            more: d.more,
        }
    }
}

/// Views of a list of rows.
pub fn all<T, V: From<T>>(rows: Vec<T>) -> Vec<V> {
    rows.into_iter().map(V::from).collect()
}
