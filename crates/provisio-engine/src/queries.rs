//! [`Queries`]: every read the API answers, so no handler reaches into the
//! store. Staff read services, jobs, events, history, the audit log and the
//! catalog (configurations, products, clients, tokens, sources, webhooks,
//! staff users); a client reads its own services and nothing else. Reports
//! and the help desk's summary are in [`crate::reports`], metrics in
//! [`crate::metrics`].

use provisio_store::models::{
    ApiToken, Attempt, AuditEntry, Client, Configuration, Event, EventSource, HistoryEntry, Job, Product, Service,
    StaffUser, WebhookDelivery, WebhookSubscriber,
};
use provisio_store::{
    audit, clients, configurations, events, jobs, products, services, sources, staff, tokens, webhooks,
};
use serde_json::{Value, json};

use crate::catalog::ConfigurationRecord;
pub use crate::client_view::ClientService;
use crate::{EngineError, Queries};

/// How much of a service's jobs, history and events its detail shows; the
/// rest is paged (`/services/{id}/events`, `/history`, `/jobs?service_id=`),
/// so one service's past never makes an answer unbounded.
const DETAIL_JOBS: i64 = 50;
const DETAIL_HISTORY: i64 = 50;
const DETAIL_EVENTS: i64 = 20;

/// A service with its latest jobs, history and event summaries.
#[derive(Debug, Clone)]
pub struct ServiceDetail {
    pub service: Service,
    /// The product's slug.
    pub product: Option<String>,
    pub client: Option<Client>,
    /// Oldest first.
    pub jobs: Vec<Job>,
    pub history: Vec<HistoryEntry>,
    /// Summaries: payloads are read a page at a time from `/events`.
    pub events: Vec<Value>,
    /// Which lists were cut at their limit.
    pub more: Value,
}

/// The newest `limit` of a list read newest first, oldest first, and
/// whether more were left out.
fn latest<T>(mut rows: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    rows.reverse();
    (rows, more)
}

/// A service that must exist (a page of its past is 404 for no service).
async fn existing(conn: &mut provisio_store::Conn, service_id: i64) -> Result<Service, EngineError> {
    services::get(conn, service_id).await?.ok_or_else(|| EngineError::NotFound(format!("no service {service_id}")))
}

impl Queries {
    /// Whether the store answers (read-only: never queued behind writes).
    pub async fn health(&self) -> Result<(), EngineError> {
        Ok(self.engine.store().check().await?)
    }

    /// Services, newest first.
    pub async fn services(&self, filter: services::ServiceFilter) -> Result<Vec<Service>, EngineError> {
        Ok(self.engine.store().read(move |conn| Box::pin(async move { services::list(conn, &filter).await })).await?)
    }

    /// A service with its latest jobs, history and events.
    pub async fn service_detail(&self, service_id: i64) -> Result<ServiceDetail, EngineError> {
        self.engine
            .store()
            .read(move |conn| {
                Box::pin(async move {
                    let service = existing(conn, service_id).await?;
                    let product = products::get(conn, service.product_id).await?.map(|p| p.slug);
                    let client = clients::get(conn, service.client_id).await?;
                    let filter =
                        jobs::JobFilter { service_id: Some(service_id), limit: DETAIL_JOBS + 1, ..Default::default() };
                    let (jobs, more_jobs) = latest(jobs::list(conn, &filter).await?, DETAIL_JOBS);
                    let (history, more_history) = latest(
                        services::history_page(conn, service_id, None, DETAIL_HISTORY + 1).await?,
                        DETAIL_HISTORY,
                    );
                    let (recent, more_events) = latest(
                        events::page_for_service(conn, service_id, None, DETAIL_EVENTS + 1).await?,
                        DETAIL_EVENTS,
                    );
                    let events = recent
                        .into_iter()
                        .map(|e| {
                            json!({"id": e.id, "external_id": e.external_id, "type": e.event_type,
                                   "occurred_at": e.occurred_at, "received_at": e.received_at})
                        })
                        .collect();
                    let more = json!({"jobs": more_jobs, "history": more_history, "events": more_events});
                    Ok(ServiceDetail { service, product, client, jobs, history, events, more })
                })
            })
            .await
    }

    /// A page of a service's events (payloads included), newest first.
    pub async fn service_events(
        &self,
        service_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Event>, EngineError> {
        self.engine
            .store()
            .read(move |conn| {
                Box::pin(async move {
                    existing(conn, service_id).await?;
                    Ok(events::page_for_service(conn, service_id, before, limit).await?)
                })
            })
            .await
    }

    /// A page of a service's history, newest first.
    pub async fn service_history(
        &self,
        service_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<HistoryEntry>, EngineError> {
        self.engine
            .store()
            .read(move |conn| {
                Box::pin(async move {
                    existing(conn, service_id).await?;
                    Ok(services::history_page(conn, service_id, before, limit).await?)
                })
            })
            .await
    }

    /// Jobs, newest first.
    pub async fn jobs(&self, filter: jobs::JobFilter) -> Result<Vec<Job>, EngineError> {
        Ok(self.engine.store().read(move |conn| Box::pin(async move { jobs::list(conn, &filter).await })).await?)
    }

    /// Drift found by sync, newest first: the open only, or all.
    pub async fn drifts(&self, open_only: bool, limit: i64) -> Result<Vec<provisio_store::drifts::Drift>, EngineError> {
        Ok(self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { provisio_store::drifts::list(conn, open_only, limit).await }))
            .await?)
    }

    /// The audit log, newest first.
    pub async fn audit(&self, limit: i64, before: Option<i64>) -> Result<Vec<AuditEntry>, EngineError> {
        Ok(self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { audit::list(conn, limit, before).await }))
            .await?)
    }

    /// A client's services with their products, newest first.
    pub async fn client_services(
        &self,
        client_id: i64,
        limit: i64,
        before_id: Option<i64>,
    ) -> Result<Vec<(Service, Product)>, EngineError> {
        self.engine
            .store()
            .read(move |conn| {
                Box::pin(async move {
                    let filter =
                        services::ServiceFilter { client_id: Some(client_id), before_id, limit, ..Default::default() };
                    let mut found = Vec::new();
                    for service in services::list(conn, &filter).await? {
                        let product = products::get(conn, service.product_id)
                            .await?
                            .ok_or_else(|| EngineError::NotFound("no product".into()))?;
                        found.push((service, product));
                    }
                    Ok(found)
                })
            })
            .await
    }

    /// One of a client's services; another client's is not found, exactly
    /// as one that does not exist.
    pub async fn client_service(&self, client_id: i64, service_id: i64) -> Result<(Service, Product), EngineError> {
        self.engine
            .store()
            .read(move |conn| {
                Box::pin(async move {
                    let service = services::get(conn, service_id)
                        .await?
                        .filter(|s| s.client_id == client_id)
                        .ok_or_else(|| EngineError::NotFound(format!("no service {service_id}")))?;
                    let product = products::get(conn, service.product_id)
                        .await?
                        .ok_or_else(|| EngineError::NotFound("no product".into()))?;
                    Ok((service, product))
                })
            })
            .await
    }
}

impl Queries {
    /// How many jobs are in each state (the queue is `queued` and `retrying`).
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, EngineError> {
        Ok(self.engine.store().read(|conn| Box::pin(async move { jobs::count_by_state(conn).await })).await?)
    }

    /// Every service's events, newest first, as summaries (no payloads):
    /// at most `limit`, older than `before`.
    pub async fn recent_events(&self, limit: i64, before: Option<i64>) -> Result<Vec<Value>, EngineError> {
        let rows = self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { events::recent(conn, before, limit).await }))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, external_id, event_type, service_id, received_at)| {
                json!({"id": id, "external_id": external_id, "type": event_type, "service_id": service_id,
                       "received_at": received_at})
            })
            .collect())
    }

    /// Jobs finished per hour in `[from, to)`: (hour, succeeded, failed).
    pub async fn jobs_per_hour(&self, from: i64, to: i64) -> Result<Vec<(String, i64, i64)>, EngineError> {
        Ok(self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { provisio_store::reports::jobs_per_hour(conn, from, to).await }))
            .await?)
    }

    /// A configuration row.
    pub async fn configuration(&self, id: i64) -> Result<Configuration, EngineError> {
        self.engine
            .store()
            .read(move |conn| Box::pin(async move { Ok::<_, EngineError>(configurations::get(conn, id).await?) }))
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no configuration {id}")))
    }

    fn record(&self, configuration: Configuration, services: i64) -> ConfigurationRecord {
        let address = format!("{}/{}", configuration.blueprint, configuration.provider);
        let secrets_set = self
            .engine
            .registry()
            .provider(&address)
            .map(|entry| entry.config_schema().secret_paths())
            .unwrap_or_default()
            .into_iter()
            .filter(|path| configuration.config_values.pointer(path).is_some_and(|v| !v.is_null()))
            .collect();
        ConfigurationRecord { configuration, address, secrets_set, services }
    }

    /// A configuration as the API shows it.
    pub async fn configuration_record(&self, id: i64) -> Result<ConfigurationRecord, EngineError> {
        let configuration = self.configuration(id).await?;
        let counts = self
            .engine
            .store()
            .read(|conn| Box::pin(async move { Ok::<_, EngineError>(configurations::service_counts(conn).await?) }))
            .await?;
        let services = counts.get(&id).copied().unwrap_or(0);
        Ok(self.record(configuration, services))
    }

    /// Every configuration, optionally of one blueprint.
    pub async fn configurations(&self, blueprint: Option<String>) -> Result<Vec<ConfigurationRecord>, EngineError> {
        let (list, counts) = self
            .engine
            .store()
            .read(move |conn| {
                Box::pin(async move {
                    let list = configurations::list(conn, blueprint.as_deref()).await?;
                    Ok::<_, EngineError>((list, configurations::service_counts(conn).await?))
                })
            })
            .await?;
        Ok(list
            .into_iter()
            .map(|c| {
                let services = counts.get(&c.id).copied().unwrap_or(0);
                self.record(c, services)
            })
            .collect())
    }

    /// A product by id or slug.
    pub async fn product(&self, key: &str) -> Result<Product, EngineError> {
        let wanted = key.to_owned();
        let key = key.to_owned();
        let found = self
            .engine
            .store()
            .read(move |conn| {
                Box::pin(async move {
                    let by_slug = products::get_by_slug(conn, &key).await?;
                    Ok::<_, EngineError>(match (by_slug, key.parse::<i64>()) {
                        (Some(product), _) => Some(product),
                        (None, Ok(id)) => products::get(conn, id).await?,
                        (None, Err(_)) => None,
                    })
                })
            })
            .await?;
        found.ok_or_else(|| EngineError::NotFound(format!("no product {wanted}")))
    }

    /// Every product.
    pub async fn products(&self) -> Result<Vec<Product>, EngineError> {
        self.engine.store().read(|conn| Box::pin(async move { Ok(products::list(conn).await?) })).await
    }

    /// A client and its services.
    pub async fn client(&self, id: i64) -> Result<(Client, Vec<provisio_store::models::Service>), EngineError> {
        self.engine
            .store()
            .read(move |conn| {
                Box::pin(async move {
                    let client = clients::get(conn, id)
                        .await?
                        .ok_or_else(|| EngineError::NotFound(format!("no client {id}")))?;
                    let filter = services::ServiceFilter { client_id: Some(id), limit: 1000, ..Default::default() };
                    Ok((client, services::list(conn, &filter).await?))
                })
            })
            .await
    }

    /// Clients, newest first.
    pub async fn clients(&self, limit: i64, before_id: Option<i64>) -> Result<Vec<Client>, EngineError> {
        self.engine
            .store()
            .read(move |conn| Box::pin(async move { Ok(clients::list(conn, limit, before_id).await?) }))
            .await
    }

    /// Every event source.
    pub async fn sources(&self) -> Result<Vec<EventSource>, EngineError> {
        Ok(self.engine.store().read(|conn| Box::pin(async move { sources::list(conn).await })).await?)
    }

    /// One event source.
    pub async fn source(&self, id: i64) -> Result<EventSource, EngineError> {
        self.engine
            .store()
            .read(move |conn| Box::pin(async move { sources::get(conn, id).await }))
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no event source {id}")))
    }

    /// Every subscriber.
    pub async fn webhooks(&self) -> Result<Vec<WebhookSubscriber>, EngineError> {
        Ok(self.engine.store().read(|conn| Box::pin(async move { webhooks::list(conn).await })).await?)
    }

    /// One subscriber.
    pub async fn webhook(&self, id: i64) -> Result<WebhookSubscriber, EngineError> {
        self.engine
            .store()
            .read(move |conn| Box::pin(async move { webhooks::get(conn, id).await }))
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no webhook {id}")))
    }

    /// A subscriber's deliveries, newest first (bodies without credentials).
    pub async fn webhook_deliveries(
        &self,
        id: i64,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<WebhookDelivery>, EngineError> {
        self.webhook(id).await?;
        Ok(self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { webhooks::deliveries(conn, id, limit, before).await }))
            .await?)
    }

    /// Tokens, newest first (never their secrets or digests).
    pub async fn tokens(&self, limit: i64, before: Option<i64>) -> Result<Vec<ApiToken>, EngineError> {
        Ok(self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { tokens::list(conn, limit, before).await }))
            .await?)
    }

    /// Every staff user.
    pub async fn staff_users(&self) -> Result<Vec<StaffUser>, EngineError> {
        Ok(self.engine.store().read(|conn| Box::pin(async move { staff::list(conn).await })).await?)
    }

    /// A job and its attempts.
    pub async fn job(&self, id: i64) -> Result<(Job, Vec<Attempt>), EngineError> {
        self.engine
            .store()
            .read(move |conn| {
                Box::pin(async move {
                    let job =
                        jobs::get(conn, id).await?.ok_or_else(|| EngineError::NotFound(format!("no job {id}")))?;
                    let attempts = jobs::attempts(conn, id).await?;
                    Ok((job, attempts))
                })
            })
            .await
    }
}
